"""``aggcore run --live`` as a user sees it: a quit hint, ``q`` quits (exit 0), and an 80x24
terminal shows whole venue names and a frame that fits."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggcore.builtins.sinks.console import ConsoleSink, ConsoleSinkConfig
from aggcore.models import ArbitrageOpportunity, BookState, HealthStatus, PriceLevel, Summary, SymbolHealth
from aggcore.plugins import load_plugins
from aggcore.sink import Event

NOW = datetime.now(timezone.utc)
VENUES = ["binance", "bybit", "okx", "cryptocom", "coinbase", "kraken", "bitstamp"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def summary(symbol: str, mid: float) -> Summary:
    bids = [PriceLevel(mid - 1 - i, 12.3456789 + i, VENUES[i % 7], NOW) for i in range(5)]
    asks = [PriceLevel(mid + 1 + i, 0.000123 + i, VENUES[(i + 3) % 7], NOW) for i in range(5)]
    return Summary(
        symbol=symbol, spread=2.0, bids=bids, asks=asks, timestamp=NOW, mid=mid, venues=VENUES[:6],
        excluded={"bitstamp": "stale: last update 6120 ms ago (max_age_ms 5000)"},
    )  # fmt: skip


def frame(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    sink = ConsoleSink(ConsoleSinkConfig(color=True), tty=True)
    sink.apply(Event("summary", summary("BTC/USD", 60000.5)))
    sink.apply(Event("summary", summary("ETH/USD", 3000.25)))
    opp = ArbitrageOpportunity(
        buy_exchange="cryptocom", sell_exchange="bitstamp", symbol="BTC/USD", buy_price=59449.36, sell_price=59743.57,
        profit_percentage=0.29, volume=2.412287, timestamp=NOW,
    )  # fmt: skip
    sink.apply(Event("arbitrage", opp))
    for name in VENUES:
        sym = {"BTC/USD": SymbolHealth(symbol="BTC/USD", state=BookState.LIVE)}
        sink.apply(Event("health", HealthStatus(exchange=name, is_healthy=True, last_update=NOW, connected=True, symbols=sym)))
    text = sink.render_frame()
    return [ANSI.sub("", line) for line in text.split("\n") if ANSI.sub("", line)]


def test_an_80x24_terminal_shows_whole_venue_names_in_a_frame_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = frame(monkeypatch)
    assert len(lines) <= 23, "\n".join(lines)
    assert "Ctrl-C to quit" in lines[0]
    table = [line for line in lines if " | " in line]
    assert table and all(len(line) <= 80 for line in table), "\n".join(table)
    for line in (row for row in table if "bid qty" not in row):  # every row names its venues whole
        left, right = line.split(" | ")
        assert left.split()[0] in VENUES and right.split()[-1] in VENUES
    assert any("cryptocom 59449.36 -> bitstamp 59743.57" in line and len(line) <= 80 for line in lines)
    assert all(len(line) <= 80 for line in lines if line.lstrip().startswith(tuple(VENUES)))  # health lines


def test_q_quits_the_live_view_with_exit_0(tmp_path: Path) -> None:
    if "kraken" not in load_plugins().connectors:
        pytest.skip("the kraken plugin is not installed")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}}}))
    master, slave = os.openpty()  # a terminal for stdin and stderr, as a user's shell gives
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore", "run", "--simulate", "--live", str(config)],
        stdin=slave, stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "80", "LINES": "24"},
    )  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
            if not sent and b"q or Ctrl-C to quit" in seen:
                os.write(master, b"q")
                sent = True
        assert sent, seen[-2000:]
        assert proc.wait(timeout=15) == 0
        assert b"Traceback" not in seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
