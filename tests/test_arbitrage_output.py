"""Arbitrage output a trader can read: no fee-only openings by default, bursts best first,
gross and net with the fees used, prices rounded to the pair's decimals in JSON and lines."""

from __future__ import annotations

import json
import time

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.builtins.analyzers.arbitrage import ArbitrageAnalyzer, ArbitrageConfig
from aggcore.builtins.sinks.stdout import format_event
from aggcore.config import AggregationConfig
from aggcore.consolidated import Router
from aggcore.models import ArbitrageOpportunity
from aggcore.sink import Event

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)


def setup(**cfg: object) -> tuple[Router, ArbitrageAnalyzer, list[Event]]:
    router = Router()
    events: list[Event] = []
    return router, ArbitrageAnalyzer(ArbitrageConfig.model_validate(cfg), events.append, AggregationConfig()), events


def book(router: Router, exchange: str, bids: list[list[str]], asks: list[list[str]]) -> None:
    b = SymbolBook(exchange, "X", "BTC/USDT", RULES, listener=router)
    router.attach(b)
    b.apply(BookUpdate("X", bids, asks, snapshot=True), time.monotonic_ns())


def test_the_default_minimum_profit_drops_openings_that_only_pay_the_fees() -> None:
    router, arb, events = setup()  # default fees 0.1 % a side, minimum 0.05 % net
    book(router, "a", [["59990.0", "1"]], [["60000.0", "1"]])
    book(router, "b", [["60122.0", "1"]], [["60130.0", "1"]])  # +0.203 % gross: +0.003 % net
    arb.on_update(router.views["BTC/USDT"], time.time())
    assert events == []
    router, arb, events = setup()
    book(router, "a", [["59990.0", "1"]], [["60000.0", "1"]])
    book(router, "b", [["60160.0", "1"]], [["60170.0", "1"]])  # +0.267 % gross: +0.067 % net
    arb.on_update(router.views["BTC/USDT"], time.time())
    assert [e.payload.event for e in events] == ["opened"]  # type: ignore[union-attr]


def test_a_burst_that_shares_a_leg_comes_best_first_with_gross_net_and_fees() -> None:
    router, arb, events = setup(taker_fees={"c": 0.0005})
    book(router, "cheap", [["59690.0", "2"]], [["59700.0", "2"]])  # one venue 50 bp down
    book(router, "a", [["60001.5", "1"]], [["60002.0", "1"]])
    book(router, "b", [["60010.5", "1"]], [["60011.0", "1"]])
    book(router, "c", [["60005.0", "1"]], [["60006.0", "1"]])
    arb.on_update(router.views["BTC/USDT"], time.time())
    opps = [e.payload for e in events]
    assert all(isinstance(o, ArbitrageOpportunity) and o.buy_exchange == "cheap" for o in opps)
    profits = [o.profit_percentage for o in opps]  # type: ignore[union-attr]
    assert len(profits) == 3 and profits == sorted(profits, reverse=True)
    assert [o.sell_exchange for o in opps] == ["c", "b", "a"]  # type: ignore[union-attr]  # c's lower fee wins
    b = opps[1]
    assert isinstance(b, ArbitrageOpportunity)
    assert abs(b.gross_spread_percentage - (60010.5 / 59700 - 1) * 100) < 1e-9
    assert b.buy_fee == 0.001 and b.sell_fee == 0.001
    assert opps[0].sell_fee == 0.0005  # type: ignore[union-attr]
    line = format_event(events[1])
    assert "OPENED buy cheap 59700.00 sell b 60010.50 vol 1 net +0.32% (gross +0.52%, fees 0.10%+0.10%)" in line


def test_json_prices_and_sizes_are_rounded() -> None:
    router, arb, events = setup(default_taker_fee=0.0)
    # sizes whose sum is not exact in binary floating point, prices whose average is not on a tick
    book(router, "a", [["1.5600", "0.1"]], [["1.5650", "0.1"], ["1.5660", "0.2"], ["1.5670", "0.3"]])
    book(router, "b", [["1.5900", "0.7"]], [["1.5910", "1"]])
    arb.on_update(router.views["BTC/USDT"], time.time())
    data = json.loads(events[0].to_json())["data"]
    assert data["volume"] == 0.6 and data["buy_price"] == 1.566 and data["sell_price"] == 1.59
    assert len(repr(data["buy_price"])) <= 8 and len(repr(data["volume"])) <= 8
