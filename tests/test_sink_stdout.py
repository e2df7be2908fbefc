"""The stdout sink: human lines by default, JSON Lines with ``format: json``, broken pipe."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone

import pytest

from aggcore.builtins.sinks.stdout import StdoutSink, StdoutSinkConfig, fmt_price
from aggcore.models import ArbitrageOpportunity, BookState, HealthStatus, Metrics, PriceLevel, Summary, SymbolHealth
from aggcore.sink import Event

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 1, 1, 12, 0, 1, 234000, tzinfo=timezone.utc)
TS = NOW.timestamp()


def summary() -> Summary:
    return Summary(
        symbol="BTC/USDT",
        spread=0.4,
        bids=[PriceLevel(price=60000.1, quantity=0.5, exchange="binance", timestamp=NOW)],
        asks=[PriceLevel(price=60000.5, quantity=0.2, exchange="okx", timestamp=NOW)],
        timestamp=NOW,
        mid=60000.3,
        venues=["binance", "okx", "kraken", "bybit", "coinbase", "bitstamp", "cryptocom"],
    )


def arbitrage(event: str = "opened") -> ArbitrageOpportunity:
    return ArbitrageOpportunity(
        buy_exchange="okx", sell_exchange="kraken", symbol="BTC/USDT", buy_price=60000.5, sell_price=60100,
        profit_percentage=0.12, volume=0.35, timestamp=NOW, event=event,  # type: ignore[arg-type]
        gross_spread_percentage=0.32, buy_fee=0.001, sell_fee=0.001,
    )  # fmt: skip


def health() -> HealthStatus:
    return HealthStatus(
        exchange="kraken", is_healthy=False, last_update=NOW, connected=True, error_message="ETH/USDT: RESYNCING",
        symbols={
            "BTC/USDT": SymbolHealth(symbol="BTC/USDT", state=BookState.LIVE),
            "ETH/USDT": SymbolHealth(symbol="ETH/USDT", state=BookState.RESYNCING),
        },
    )  # fmt: skip


def events() -> list[Event]:
    metrics = Metrics(exchange="okx", symbol="BTC/USDT", updates_per_second=12.5, latency_ms=3.0, error_count=0, last_update=NOW)
    return [
        Event("summary", summary(), TS),
        Event("arbitrage", arbitrage(), TS),
        Event("health", health(), TS),
        Event("metrics", metrics, TS),
    ]


async def test_human_lines(capsys: pytest.CaptureFixture[str]) -> None:
    sink = StdoutSink(StdoutSinkConfig())
    await sink.write(events())
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "12:00:01.234 summary BTC/USDT bid 60000.10 (binance) ask 60000.50 (okx) spread 0.40 venues 7",
        "12:00:01.234 arbitrage BTC/USDT OPENED buy okx 60000.50 sell kraken 60100.00 vol 0.35 net +0.12% (gross +0.32%, fees 0.10%+0.10%)",
        "12:00:01.234 health kraken DEGRADED connected, 1/2 books LIVE: ETH/USDT: RESYNCING",
        "12:00:01.234 metrics okx BTC/USDT 12.5 upd/s latency 3.0 ms errors 0 messages 0",
    ]


async def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    sink = StdoutSink(StdoutSinkConfig(format="json"))
    evs = events()
    await sink.write(evs)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    parsed = [json.loads(line) for line in lines]
    assert [p["kind"] for p in parsed] == ["summary", "arbitrage", "health", "metrics"]
    assert parsed[0] == json.loads(evs[0].to_json())
    assert parsed[1]["data"]["profit_percentage"] == 0.12


def test_price_format() -> None:
    assert fmt_price(60000.1) == "60000.10"
    assert fmt_price(3000.125) == "3000.125"
    assert fmt_price(0.61234) == "0.612340"
    assert fmt_price(None) == "-"


class Broken(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


async def test_broken_pipe_disables_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", Broken())
    sink = StdoutSink(StdoutSinkConfig())
    await sink.write(events())  # no exception
    assert sink.disabled and "stdout" in (sink.health_error or "")
    await sink.write(events())
    assert sink.dropped_events == 8
