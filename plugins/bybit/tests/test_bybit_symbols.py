"""Symbols come from Bybit's instrument lists; spot and linear share symbol strings."""

from __future__ import annotations

import pytest

from aggcore_plugin_bybit.symbols import BybitSymbolTable, decimals, instruments_from_list

SPOT = [
    {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
     "lotSizeFilter": {"basePrecision": "0.000001"}, "priceFilter": {"tickSize": "0.01"}},
    {"symbol": "ETHBTC", "baseCoin": "ETH", "quoteCoin": "BTC", "status": "Trading",
     "lotSizeFilter": {"basePrecision": "0.0001"}, "priceFilter": {"tickSize": "0.00001"}},
]
LINEAR = [
    {"symbol": "BTCUSDT-21FEB25", "contractType": "LinearFutures", "status": "Trading", "baseCoin": "BTC",
     "quoteCoin": "USDT", "settleCoin": "USDT", "priceFilter": {"tickSize": "0.10"}, "lotSizeFilter": {"qtyStep": "0.001"}},
    {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
     "quoteCoin": "USDT", "settleCoin": "USDT", "priceFilter": {"tickSize": "0.10"}, "lotSizeFilter": {"qtyStep": "0.001"}},
    {"symbol": "BTCPERP", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
     "quoteCoin": "USDC", "settleCoin": "USDC", "priceFilter": {"tickSize": "0.5"}, "lotSizeFilter": {"qtyStep": "0.001"}},
    {"symbol": "NEWUSDT", "contractType": "LinearPerpetual", "status": "PreLaunch", "baseCoin": "NEW",
     "quoteCoin": "USDT", "settleCoin": "USDT", "priceFilter": {"tickSize": "0.0001"}, "lotSizeFilter": {"qtyStep": "1"}},
]


def table(home: str) -> BybitSymbolTable:
    return BybitSymbolTable(instruments_from_list("spot", SPOT, home) + instruments_from_list("linear", LINEAR, home), home)


def test_spot_home() -> None:
    t = table("spot")
    assert t.resolve("BTC/USDT").symbol == "BTCUSDT" and t.resolve("BTC/USDT").kind == "spot"
    assert t.resolve("BTCUSDT").extra["category"] == "spot"
    assert t.resolve("btcusdt").symbol == "BTCUSDT"
    perp = t.resolve("BTC/USDT:USDT")
    assert perp.symbol == "linear:BTCUSDT" and perp.extra["native"] == "BTCUSDT" and perp.kind == "perpetual"
    assert t.resolve("linear:BTCUSDT") is perp
    assert t.resolve("BTC/USDC:USDC").extra["native"] == "BTCPERP"  # no string splitting: from baseCoin/quoteCoin
    assert t.resolve("ETH/BTC").symbol == "ETHBTC"
    assert t.resolve("linear:BTCUSDT-21FEB25").kind == "future"


def test_linear_home() -> None:
    t = table("linear")
    assert t.resolve("BTCUSDT").extra["category"] == "linear"
    assert t.resolve("BTC/USDT").symbol == "BTCUSDT"  # the perpetual, not the dated future
    assert t.resolve("spot:BTCUSDT").symbol == "spot:BTCUSDT"
    assert not t.resolve("NEWUSDT").active


def test_unknown() -> None:
    t = table("spot")
    with pytest.raises(KeyError, match="unknown symbol"):
        t.resolve("XRP/USDT")
    with pytest.raises(KeyError, match="category"):
        t.resolve("option:BTCUSDT")


def test_categories_for() -> None:
    assert BybitSymbolTable.categories_for(["BTC/USDT", "ETHUSDT"], "spot") == ["spot"]
    assert BybitSymbolTable.categories_for(["BTC/USDT", "BTC/USDT:USDT"], "spot") == ["spot", "linear"]
    assert BybitSymbolTable.categories_for(["spot:BTCUSDT"], "linear") == ["linear", "spot"]


def test_decimals() -> None:
    assert decimals("0.01") == 2 and decimals("0.10") == 1 and decimals("1") == 0 and decimals("0.000001") == 6
    assert decimals(None) is None
