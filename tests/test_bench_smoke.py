"""Keeps bench/ from rotting: the hot-path benchmark's functions on ~200 frames, no peers.

No timing is asserted; only that every design runs and ends with the correct books."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytest.importorskip("orjson")
pytest.importorskip("aggcore_plugin_binance")


def _hotpath():  # type: ignore[no-untyped-def]
    if not (BENCH / "hotpath.py").exists():
        pytest.skip("bench/ is absent")
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_hotpath", BENCH / "hotpath.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workload", ["synthetic", "seven"])
def test_hot_path_benchmark_runs_and_books_are_correct(workload: str) -> None:
    hp = _hotpath()
    wl = hp.synthetic(200) if workload == "synthetic" else hp.seven(200)
    designs = [hp.Floor(), hp.Aggcore("apply"), hp.Aggcore("msg"), hp.Aggcore("every"), hp.Aggcore("top")]
    out = hp.bench_workload(wl, designs, repeats=1, lat_passes=1, log=lambda _msg: None)
    assert out["correct"], out["mismatches"]
    assert out["merged_top10_ok"]
    assert set(out["designs"]) == {d.name for d in designs}
    assert out["designs"]["aggcore full, analysis/msg"]["summaries"] > 0


def test_summary_and_arbitrage_benchmarks_run_and_agree() -> None:
    hp = _hotpath()
    out = hp.summary_bench(20, 1)
    assert out["build_x_cheaper"] > 0
    arb = hp.arbitrage_bench(400, lambda _msg: None)
    assert arb["correct"] and arb["checks"] > 0 and arb["walks_per_full_pass"] > arb["walks_per_incremental_pass"]
