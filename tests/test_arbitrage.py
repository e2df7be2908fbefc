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


def test_walk_on_book_sides_equals_walk_on_level_lists() -> None:
    import random

    from aggcore.book import BookSide
    from aggcore.builtins.analyzers.arbitrage import _walk_sides

    rng = random.Random(5)
    for _ in range(500):
        asks, bids = BookSide(False), BookSide(True)
        asks.apply([(100 + rng.randint(-20, 40) * 0.1, rng.choice([0.1, 0.5, 1.0, 2.5])) for _ in range(rng.randint(0, 15))])
        bids.apply([(100 + rng.randint(-40, 20) * 0.1, rng.choice([0.1, 0.5, 1.0, 2.5])) for _ in range(rng.randint(0, 15))])
        fees = (rng.choice([0.0, 0.001, 0.002]), rng.choice([0.0, 0.001]))
        n = rng.randint(1, 12)
        ref = walk(asks.top(n), bids.top(n), *fees) if asks.keys and bids.keys else None
        assert _walk_sides(asks, bids, fees[0], fees[1], n) == ref


def test_only_pairs_with_a_changed_venue_are_walked_again() -> None:
    router, arb, events = setup()
    a = book(router, "a", [["99", "1"]], [["100", "1"]])
    book(router, "b", [["101", "1"]], [["102", "1"]])
    book(router, "c", [["98", "1"]], [["103", "1"]])
    view = router.views["BTC/USDT"]
    arb.on_update(view, time.time())
    assert arb.walks == 6 and [(e.buy_exchange, e.sell_exchange) for e in events] == [("a", "b")]
    arb.on_update(view, time.time())
    assert arb.walks == 6  # nothing changed: nothing walked
    a.apply(BookUpdate("X", [], [["100", "0"], ["100.5", "1"]]), time.monotonic_ns())
    arb.on_update(view, time.time())
    assert arb.walks == 10  # a's four ordered pairs only
    assert [e.event for e in events] == ["opened", "updated"] and events[-1].buy_price == 100.5


def test_a_pass_reads_each_venue_at_the_views_own_version_and_updates_keep_the_legs_venues_and_fees() -> None:
    router, arb, events = setup(fees={"a": 0.001, "b": 0.002})
    a = book(router, "a", [["99", "1"]], [["100", "1"]])
    book(router, "b", [["101", "1"]], [["102", "1"]])
    view = router.views["BTC/USDT"]
    arb.on_update(view, time.time())
    a.apply(BookUpdate("X", [], [["100", "0.5"]]), time.monotonic_ns())
    router.take_dirty()
    a.apply(BookUpdate("X", [], [["100", "0.25"]]), time.monotonic_ns())  # told to no one: seen by its counters
    arb.on_update(view, time.time())
    # the pass computes the versions inline: they must be the view's (ConsolidatedView.version)
    assert arb.walked["BTC/USDT"].versions == {name: view.version(b) for name, b in view.venues.items()}
    assert [(e.event, e.volume) for e in events] == [("opened", 1.0), ("updated", 0.25)]
    opened, updated = events
    assert (updated.buy_exchange, updated.sell_exchange, updated.symbol, updated.buy_fee, updated.sell_fee) == (
        opened.buy_exchange, opened.sell_exchange, opened.symbol, 0.001, 0.002)  # fmt: skip


def test_incremental_passes_find_what_a_fresh_analyzer_finds() -> None:
    import random

    rng = random.Random(9)
    router, arb, _ = setup({"a": 0.0005, "b": 0.001})
    names = ["a", "b", "c", "d"]
    books = {n: book(router, n, [["100", "1"]], [["100.5", "1"]]) for n in names}
    view = router.views["BTC/USDT"]
    for _ in range(400):
        b = books[rng.choice(names)]
        side = [[f"{100 + rng.randint(-10, 10) * 0.1:.1f}", "0" if rng.random() < 0.3 else str(rng.randint(1, 3))]]
        if rng.random() < 0.5:
            b.apply(BookUpdate("X", side, []), time.monotonic_ns())
        else:
            b.apply(BookUpdate("X", [], side), time.monotonic_ns())
        if b.state.value != "LIVE":  # crossed by the random update: start it again
            b.apply(BookUpdate("X", [["100", "1"]], [["100.5", "1"]], snapshot=True), time.monotonic_ns())
        _, fresh, _ = setup({"a": 0.0005, "b": 0.001})
        assert arb.find(view) == fresh.find(view)


def test_a_find_between_passes_loses_no_event() -> None:
    router, arb, events = setup()
    a = book(router, "a", [["99", "1"]], [["100", "1"]])
    book(router, "b", [["101", "1"]], [["102", "1"]])
    view = router.views["BTC/USDT"]
    assert list(arb.find(view)) == [("BTC/USDT", "a", "b")]  # walked here, reported by the next pass
    arb.on_update(view, time.time())
    a.apply(BookUpdate("X", [], [["100", "0"], ["100.5", "1"]]), time.monotonic_ns())
    arb.find(view)
    arb.on_update(view, time.time())
    a.apply(BookUpdate("X", [], [["100.5", "0"], ["101.5", "1"]]), time.monotonic_ns())
    assert arb.find(view) == {}
    arb.on_update(view, time.time())
    assert [e.event for e in events] == ["opened", "updated", "closed"]


def test_a_change_below_the_levels_a_walk_read_is_not_walked_again() -> None:
    router, arb, events = setup()
    a = book(router, "a", [["99", "1"]], [["100", "1"], ["100.4", "1"], ["103", "1"]])
    book(router, "b", [["101", "1.5"], ["100.2", "1"]], [["102", "1"]])
    view = router.views["BTC/USDT"]
    arb.on_update(view, time.time())
    assert [(e.event, e.volume) for e in events] == [("opened", 1.5)]  # 1 @100 + 0.5 @100.4, then 100.2 < 100.4
    deep = arb.deep_walks
    a.apply(BookUpdate("X", [["98", "4"]], [["103", "2"]]), time.monotonic_ns())  # below both levels it read
    arb.on_update(view, time.time())
    assert arb.deep_walks == deep and len(events) == 1 and arb.walks == 4  # looked at, not walked
    a.apply(BookUpdate("X", [], [["100.4", "0.2"]]), time.monotonic_ns())  # a level it read
    arb.on_update(view, time.time())
    assert arb.deep_walks == deep + 1 and [(e.event, e.volume) for e in events][-1] == ("updated", 1.2)


def test_remembered_walks_equal_fresh_walks_on_deep_books() -> None:
    """Incremental passes (pairs whose tops do not cross skipped, walks kept while the levels
    they read are the same) find what a fresh analyzer finds: deep books, updates at every depth,
    several venues changing between passes, stale venues coming back, books resynced, the
    ``max_levels`` cap hit."""
    import random

    rng = random.Random(23)
    fees = {"a": 0.0005, "b": 0.001}
    router, arb, _ = setup(fees, max_levels=6, max_leg_age_ms=1000)
    names = ["a", "b", "c", "d", "e"]
    mids = {n: 1000 + 3 * i for i, n in enumerate(names)}  # in ticks of 0.1: the venues cross

    def snapshot(n: str) -> BookUpdate:
        m = mids[n]
        bids = [[f"{(m - k) / 10:.1f}", str(rng.randint(1, 4))] for k in range(1, 12)]
        asks = [[f"{(m + k) / 10:.1f}", str(rng.randint(1, 4))] for k in range(1, 12)]
        return BookUpdate("X", bids, asks, snapshot=True)

    books = {n: book(router, n, [], []) for n in names}
    t = time.monotonic_ns()
    for n in names:
        books[n].apply(snapshot(n), t)
    view = router.views["BTC/USDT"]
    checks = 0
    for step in range(1500):
        t += 1_000_000
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            n = rng.choice(names)
            b = books[n]
            if rng.random() < 0.02:
                mids[n] += rng.randint(-4, 4)
                b.apply(snapshot(n), t)  # a resync: every level new
                continue
            bids: list[list[str]] = []
            asks: list[list[str]] = []
            for _ in range(rng.randint(1, 4)):
                k = min(int(rng.expovariate(1 / 4)) + 1, 14)  # mostly near the top
                qty = "0" if rng.random() < 0.25 else str(rng.choice([0.5, 1, 2, 3]))
                if rng.random() < 0.5:
                    bids.append([f"{(mids[n] - k) / 10:.1f}", qty])
                else:
                    asks.append([f"{(mids[n] + k) / 10:.1f}", qty])
            receipt = t - 3_000_000_000 if rng.random() < 0.02 else t  # now and then a stale venue
            b.apply(BookUpdate("X", bids, asks), receipt)
            if b.state.value != "LIVE":
                b.apply(snapshot(n), t)
        if rng.random() < 0.7:
            _, fresh, _ = setup(fees, max_levels=6, max_leg_age_ms=1000)
            mine = arb.find(view, t)
            assert mine == fresh.find(view, t), step
            checks += 1
    assert checks > 900 and arb.deep_walks < arb.walks / 2  # most pairs were not walked again


def test_a_venue_no_longer_in_the_view_closes_its_opportunities() -> None:
    router, arb, events = setup()
    book(router, "a", [["99", "1"]], [["100", "1"]])
    book(router, "b", [["101", "1"]], [["102", "1"]])
    book(router, "c", [["97", "1"]], [["98", "1"]])
    view = router.views["BTC/USDT"]
    arb.on_update(view, time.time())
    assert sorted((e.event, e.buy_exchange, e.sell_exchange) for e in events) == [
        ("opened", "a", "b"), ("opened", "c", "a"), ("opened", "c", "b")]  # fmt: skip
    del view.venues["b"]  # (views keep their venues today: the analyzer must not depend on it)
    arb.on_update(view, time.time())
    assert sorted((e.event, e.buy_exchange, e.sell_exchange) for e in events[3:]) == [("closed", "a", "b"), ("closed", "c", "b")]
    _, fresh, _ = setup()
    assert arb.find(view) == fresh.find(view) and list(arb.find(view)) == [("BTC/USDT", "c", "a")]
