#!/usr/bin/env bash
# The one benchmark command (from the repository root):   bash bench/run.sh [--quick]
# Creates bench/.venv with the peers (cryptofeed, ccxt) and aggcore's workspace packages,
# runs the hot-path, end-to-end (also --floor: the receive path alone) and bus benchmarks,
# and writes bench/results/ (results.json, results.md, chart.png).  --quick: a ~1-2 minute smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    *) echo "usage: bash bench/run.sh [--quick]" >&2; exit 2 ;;
  esac
done
if ! command -v uv >/dev/null 2>&1; then
  if python3 -m uv --version >/dev/null 2>&1; then uv() { python3 -m uv "$@"; }; else
    python3 -m pip install --quiet uv && uv() { python3 -m uv "$@"; }
  fi
fi
VENV=bench/.venv
PY=$VENV/bin/python
if [ ! -x "$PY" ]; then
  uv venv --quiet --python 3.11 "$VENV" || uv venv --quiet "$VENV"
fi
editable=(-e core)
for p in plugins/*/; do editable+=(-e "${p%/}"); done
uv pip install --quiet --python "$PY" cryptofeed ccxt orjson matplotlib "${editable[@]}"
mkdir -p bench/results
rm -f bench/results/e2e.json bench/results/e2e-floor.json bench/results/bus.json
"$PY" bench/hotpath.py "${QUICK[@]}"
"$PY" bench/e2e.py "${QUICK[@]}"
"$PY" bench/e2e.py --floor --rates 10000,20000 "${QUICK[@]}"
"$PY" bench/bus.py "${QUICK[@]}"
"$PY" bench/report.py
