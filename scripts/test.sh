#!/usr/bin/env bash
# The whole test suite: pytest over core and every plugin, then mypy (strict) on core and plugins.
# Works on a fresh machine with only Python >= 3.11 and pip: installs uv if it is missing.
# Exit status is non-zero when any test or type check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if command -v uv >/dev/null 2>&1; then
    uv=(uv)
else
    echo "uv not found: installing it with pip" >&2
    python3 -m pip install --quiet uv \
        || python3 -m pip install --quiet --user uv \
        || python3 -m pip install --quiet --user --break-system-packages uv
    uv=(python3 -m uv)  # works even when pip's script directory is not on PATH
fi

status=0
"${uv[@]}" run --all-packages pytest "$@" || status=$?
echo "== mypy (strict) on core and plugins" >&2
"${uv[@]}" run --all-packages mypy || status=$?
exit "$status"
