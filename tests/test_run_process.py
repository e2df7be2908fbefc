"""``aggcore run`` as a process: it prints events, and SIGINT/SIGTERM stop it cleanly with exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggcore.plugins import load_plugins

CONFIG = {
    "exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}, "bitstamp": {"trading_pairs": ["BTC/USD"]}},
    "aggregation": {"max_price_levels": 5},
    "sinks": {"stdout": {"format": "json", "events": ["summary", "health"]}},
    "monitoring": {"health_check_interval_ms": 500},
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_simulate_prints_summaries_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    installed = load_plugins().connectors
    if not {"kraken", "bitstamp"} <= set(installed):
        pytest.skip("the kraken and bitstamp plugins are not installed")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore.cli", "run", "--simulate", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        venues: set[str] = set()
        while time.monotonic() < deadline and venues != {"kraken", "bitstamp"}:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["kind"] == "summary":
                venues = set(event["data"]["venues"])
        assert venues == {"kraken", "bitstamp"}, "no summary with both venues"
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err[-2000:]
        assert time.monotonic() - t0 < 10
        assert all(json.loads(line)["kind"] in ("summary", "health") for line in out.splitlines())  # no torn line
        assert f"{sig.name} received: stopping" in err
    finally:
        if proc.poll() is None:
            proc.kill()
