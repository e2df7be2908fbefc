"""Arbitrage: fees remove false opportunities, depth caps volume, stale legs are rejected,
and opportunities open, update and close."""

from __future__ import annotations

import time

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.builtins.analyzers.arbitrage import ArbitrageAnalyzer, ArbitrageConfig, walk
from aggcore.config import AggregationConfig
from aggcore.consolidated import Router
from aggcore.models import ArbitrageOpportunity
from aggcore.sink import Event

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)


def setup(fees: dict[str, float] | None = None, **cfg: float) -> tuple[Router, ArbitrageAnalyzer, list[ArbitrageOpportunity]]:
    router = Router()
    events: list[ArbitrageOpportunity] = []

    def emit(event: Event) -> None:
        assert isinstance(event.payload, ArbitrageOpportunity)
        events.append(event.payload)

    config = ArbitrageConfig(taker_fees=fees or {}, default_taker_fee=0.0, **cfg)
    return router, ArbitrageAnalyzer(config, emit, AggregationConfig()), events


def book(router: Router, exchange: str, bids: list[list[str]], asks: list[list[str]]) -> SymbolBook:
    b = SymbolBook(exchange, "X", "BTC/USDT", RULES, listener=router)
    router.attach(b)
    b.apply(BookUpdate("X", bids, asks, snapshot=True), time.monotonic_ns())
    return b


def test_walk_caps_volume_by_depth_and_weights_prices() -> None:
    leg = walk([(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)], [(101.0, 2.0), (100.8, 10.0)], 0.0, 0.0)
    assert leg is not None
    # 1 @100 vs 101, 1 @100.5 vs 101, then 1 @100.5 vs 100.8; 102 is above every bid
    assert leg.volume == 3.0
    assert abs(leg.buy_price - (100 + 100.5 + 100.5) / 3) < 1e-9
    assert abs(leg.sell_price - (101 + 101 + 100.8) / 3) < 1e-9


def test_fees_remove_a_false_opportunity() -> None:
    router, arb, events = setup({"a": 0.001, "b": 0.001})
    book(router, "a", [["99", "1"]], [["100", "1"]])  # buy at 100 on a
    book(router, "b", [["100.1", "1"]], [["101", "1"]])  # sell at 100.1 on b: +0.1% gross, -0.2% fees
    arb.on_update(router.views["BTC/USDT"], time.time())
    assert events == []
    router2, arb2, events2 = setup()
    book(router2, "a", [["99", "1"]], [["100", "1"]])
    book(router2, "b", [["100.1", "1"]], [["101", "1"]])
    arb2.on_update(router2.views["BTC/USDT"], time.time())
    assert [e.event for e in events2] == ["opened"] and events2[0].buy_exchange == "a"


def test_depth_caps_volume_and_profit_is_after_fees() -> None:
    router, arb, events = setup({"a": 0.001, "b": 0.002})
    book(router, "a", [["99", "1"]], [["100", "0.5"], ["100.2", "0.3"], ["105", "9"]])
    book(router, "b", [["101", "0.6"], ["100.9", "5"]], [["102", "1"]])
    arb.on_update(router.views["BTC/USDT"], time.time())
    (opp,) = events
    assert opp.sell_exchange == "b" and abs(opp.volume - 0.8) < 1e-12
    cost = 0.5 * 100 + 0.3 * 100.2
    proceeds = 0.6 * 101 + 0.2 * 100.9
    expected = (proceeds * 0.998 - cost * 1.001) / (cost * 1.001) * 100
    assert abs(opp.profit_percentage - expected) < 1e-9


def test_stale_leg_is_rejected() -> None:
    router, arb, events = setup(max_leg_age_ms=500)
    book(router, "a", [["99", "1"]], [["100", "1"]])
    b = book(router, "b", [["101", "1"]], [["102", "1"]])
    b.last_update_ns = time.monotonic_ns() - 2_000_000_000
    arb.on_update(router.views["BTC/USDT"], time.time())
    assert events == []


def test_open_update_close_lifecycle_with_duration_and_peak() -> None:
    router, arb, events = setup()
    book(router, "a", [["99", "1"]], [["100", "1"]])
    b = book(router, "b", [["101", "1"]], [["102", "1"]])
    view = router.views["BTC/USDT"]
    t0 = time.time()
    arb.on_update(view, t0)
    b.apply(BookUpdate("X", [["101", "3"]], []), time.monotonic_ns())  # a's ask caps the size at 1 -> same
    b.apply(BookUpdate("X", [["102", "1"]], [["102", "0"], ["103", "1"]]), time.monotonic_ns())  # better: updated
    arb.on_update(view, t0 + 0.5)
    b.apply(BookUpdate("X", [["102", "0"], ["101", "0"], ["99.5", "1"]], []), time.monotonic_ns())
    arb.on_update(view, t0 + 1.0)
    assert [e.event for e in events] == ["opened", "updated", "closed"]
    closed = events[-1]
    assert abs(closed.duration_ms - 1000) < 1 and closed.peak_profit_percentage >= 1.9
