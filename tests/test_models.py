"""The public types: typed msgspec Structs that convert to dicts and JSON without pydantic."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import msgspec
import pytest
from pydantic import BaseModel

from aggcore.models import (
    ArbitrageOpportunity,
    BookState,
    HealthStatus,
    Metrics,
    PriceLevel,
    Summary,
    SymbolHealth,
    TradingPair,
)
from aggcore.sink import Event

T = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def _summary() -> Summary:
    return Summary(
        symbol="BTC/USDT",
        spread=0.5,
        bids=[PriceLevel(100.0, 1.5, "binance", T)],
        asks=[PriceLevel(price=100.5, quantity=2.0, exchange="okx", timestamp=T)],
        timestamp=T,
        venues=["binance", "okx"],
    )


def test_event_dict_and_json_agree_and_are_plain_json() -> None:
    payloads = [
        ("summary", _summary()),
        ("arbitrage", ArbitrageOpportunity(
            buy_exchange="a", sell_exchange="b", symbol="X/Y", buy_price=1.0, sell_price=2.0,
            profit_percentage=50.0, volume=3.0, timestamp=T, event="closed",
        )),
        ("health", HealthStatus(
            exchange="a", is_healthy=False, last_update=None,
            symbols={"X/Y": SymbolHealth(symbol="X/Y", state=BookState.RESYNCING)},
        )),
        ("metrics", Metrics(exchange="a", symbol="X/Y", updates_per_second=1.0, latency_ms=2.0, error_count=0, last_update=T)),
    ]
    for kind, payload in payloads:
        event = Event(kind, payload, 12.5)  # type: ignore[arg-type]
        as_dict = event.to_dict()
        assert json.loads(event.to_json()) == as_dict
        assert as_dict["kind"] == kind and as_dict["ts"] == 12.5
        assert as_dict["data"] == payload.to_dict()
    data = Event("summary", _summary(), 1.0).to_dict()["data"]
    assert data["bids"][0] == {"price": 100.0, "quantity": 1.5, "exchange": "binance", "timestamp": "2026-01-02T03:04:05.678000Z"}
    assert data["timestamp"] == "2026-01-02T03:04:05.678000Z"
    assert data["excluded"] == {} and data["venues"] == ["binance", "okx"]
    health = Event("health", payloads[2][1], 1.0).to_dict()["data"]
    assert health["symbols"]["X/Y"]["state"] == "RESYNCING"


def test_defaults_are_not_shared_and_levels_are_immutable() -> None:
    a, b = _summary(), _summary()
    a.excluded["x"] = "why"
    assert b.excluded == {}
    level = a.bids[0]
    with pytest.raises(AttributeError):
        level.price = 1.0  # type: ignore[misc]
    assert level == PriceLevel(100.0, 1.5, "binance", T) and hash(level) == hash(PriceLevel(100.0, 1.5, "binance", T))


def test_trading_pair() -> None:
    assert TradingPair.parse(" btc/usdt ") == TradingPair(base="BTC", quote="USDT")
    assert str(TradingPair.parse("eth/usd")) == "ETH/USD"
    assert {TradingPair.parse("A/B"): 1}[TradingPair(base="A", quote="B")] == 1
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        TradingPair.parse("BTCUSDT")
    assert TradingPair.parse("BTCUSDT", symbols={"BTCUSDT": TradingPair(base="BTC", quote="USDT")}).base == "BTC"


def test_third_party_payloads_still_encode() -> None:
    class Mine(BaseModel):
        value: float
        at: datetime

    class Fast(msgspec.Struct):
        value: float

    for payload in (Mine(value=1.5, at=T), Fast(value=1.5)):
        event = Event("summary", payload, 2.0)
        assert json.loads(event.to_json()) == event.to_dict()
        assert event.to_dict()["data"]["value"] == 1.5
