"""The console sink (``aggcore run --live``): frames on stderr, TTY and plain."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import anyio
import pytest

from aggcore.builtins.sinks.console import ConsoleSink, ConsoleSinkConfig
from aggcore.models import ArbitrageOpportunity, BookState, HealthStatus, PriceLevel, Summary, SymbolHealth
from aggcore.sink import Event
from aggcore.testing.pytest_plugin import wait_until

pytestmark = pytest.mark.anyio

NOW = datetime.now(timezone.utc)


def summary() -> Summary:
    bids = [PriceLevel(price=60000.1 - i, quantity=0.5 + i, exchange=ex, timestamp=NOW) for i, ex in enumerate(["binance", "okx"] * 3)]
    asks = [PriceLevel(price=60000.5 + i, quantity=0.2 + i, exchange=ex, timestamp=NOW) for i, ex in enumerate(["kraken", "okx"] * 3)]
    return Summary(
        symbol="BTC/USDT", spread=0.4, bids=bids, asks=asks, timestamp=NOW, mid=60000.3,
        venues=["binance", "kraken", "okx"], excluded={"bybit": "stale"},
    )  # fmt: skip


def opportunity(event: str) -> ArbitrageOpportunity:
    return ArbitrageOpportunity(
        buy_exchange="okx", sell_exchange="kraken", symbol="ETH/USDT", buy_price=3000.5, sell_price=3010,
        profit_percentage=0.31, volume=1.5, timestamp=NOW, event=event,  # type: ignore[arg-type]
    )  # fmt: skip


def health(name: str, ok: bool) -> HealthStatus:
    return HealthStatus(
        exchange=name, is_healthy=ok, last_update=NOW, connected=ok,
        error_message=None if ok else "not connected: connection refused",
        symbols={"BTC/USDT": SymbolHealth(symbol="BTC/USDT", state=BookState.LIVE if ok else BookState.SYNCING)},
    )  # fmt: skip


def feed() -> list[Event]:
    return [
        Event("summary", summary()),
        Event("arbitrage", opportunity("opened")),
        Event("health", health("binance", True)),
        Event("health", health("coinbase", False)),
    ]


def test_defaults() -> None:
    cfg = ConsoleSinkConfig()
    assert cfg.events == ["summary", "arbitrage", "health"] and cfg.refresh_ms == 250


async def test_tty_frame_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    sink = ConsoleSink(ConsoleSinkConfig(refresh_ms=20), tty=True)
    await sink.open()
    try:
        await sink.write(feed())
        await wait_until(lambda: sink.frames >= 1, what="a frame")
    finally:
        await sink.close()
    err = capsys.readouterr().err
    assert "\x1b[H" in err and "\x1b[2J" in err  # drawn in place
    assert err.rstrip().endswith("\x1b[?25h")  # cursor given back
    for text in ("BTC/USDT", "binance", "okx", "kraken", "spread 0.40", "mid 60000.30", "excluded bybit: stale", "coinbase", "DOWN"):
        assert text in err, text
    assert "ETH/USDT" in err and "net +0.31%" in err  # the open opportunity


async def test_plain_snapshot_when_not_a_tty_and_closed_opportunities_go_away() -> None:
    out = io.StringIO()
    sink = ConsoleSink(ConsoleSinkConfig(refresh_ms=10), stream=out)
    assert not sink.is_tty
    await sink.open()
    try:
        await sink.write(feed())
        await wait_until(lambda: sink.frames >= 1, what="a snapshot")
        first = out.getvalue()
        await sink.write([Event("arbitrage", opportunity("closed"))])
        await wait_until(lambda: sink.frames >= 2, what="a second snapshot")
        await anyio.sleep(0.1)
        frames = sink.frames
        await anyio.sleep(0.1)
        assert sink.frames == frames  # nothing changed: nothing printed
    finally:
        await sink.close()
    assert "\x1b[" not in out.getvalue()  # no escapes when not a terminal
    assert "BTC/USDT" in first and "spread 0.40" in first and "binance" in first and "ETH/USDT" in first
    last = out.getvalue()[len(first) :]
    assert "ARBITRAGE  none open" in last


def test_render_shows_five_levels_per_side() -> None:
    sink = ConsoleSink(ConsoleSinkConfig(), tty=False)
    for e in feed():
        sink.apply(e)
    lines = sink.render_lines()
    book = [line for line in lines if " | " in line]
    assert len(book) == 1 + 5  # header + top-5
    assert "60000.10" in book[1] and "60000.50" in book[1] and "binance" in book[1] and "kraken" in book[1]
