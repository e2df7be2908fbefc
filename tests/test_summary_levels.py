"""The merged rows are the summary's PriceLevels: stamped with when their venue's book changed
(in wall time, through the view's clock), shared while unchanged, and a venue re-read whose
top-N did not change emits no summary."""

from __future__ import annotations

from datetime import datetime, timezone

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.builtins.analyzers.summary import SummaryAnalyzer, SummaryConfig, build_summary
from aggcore.clock import Clock
from aggcore.config import AggregationConfig
from aggcore.consolidated import Router
from aggcore.models import Summary
from aggcore.sink import Event

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)
EPOCH_NS = 1_700_000_000_000_000_000  # wall time (ns) at monotonic 0 of the clock below
S = 1_000_000_000


class SteppedClock(Clock):
    """Monotonic time set by the test; wall time = monotonic + EPOCH_NS."""

    def __init__(self) -> None:
        self.mono = 0

    def monotonic_ns(self) -> int:
        return self.mono

    def monotonic(self) -> float:
        return self.mono / 1e9

    def time_ns(self) -> int:
        return EPOCH_NS + self.mono

    def time(self) -> float:
        return self.time_ns() / 1e9


def wall(mono_ns: int) -> datetime:
    return datetime.fromtimestamp((EPOCH_NS + mono_ns) / 1e9, timezone.utc)


def venue(router: Router, exchange: str) -> SymbolBook:
    book = SymbolBook(exchange, "X", "BTC/USDT", RULES, listener=router, request_resync=lambda s, r: None)
    router.attach(book)
    return book


def test_levels_carry_when_their_venue_changed_and_unchanged_levels_are_shared() -> None:
    clock = SteppedClock()
    router = Router(clock=clock)
    a, b = venue(router, "a"), venue(router, "b")
    a.apply(BookUpdate("X", [["100", "1"], ["99", "2"], ["90", "1"]], [["101", "1"], ["102", "1"]], snapshot=True), 1 * S)
    b.apply(BookUpdate("X", [["99.5", "4"]], [["101.5", "4"]], snapshot=True), 2 * S)
    view = router.views["BTC/USDT"]
    clock.mono = 3 * S
    first = view.merge(3, max_age_ms=60_000)
    assert [(lv.price, lv.exchange, lv.timestamp) for lv in first.bids] == [(100.0, "a", wall(1 * S)), (99.5, "b", wall(2 * S)), (99.0, "a", wall(1 * S))]
    assert [lv.timestamp for lv in first.asks] == [wall(1 * S), wall(2 * S), wall(1 * S)]

    # a changes one level: only that level is new (and stamped now); the others are the same objects
    a.apply(BookUpdate("X", [["99", "3"]], []), 4 * S)
    clock.mono = 5 * S
    second = view.merge(3, max_age_ms=60_000)
    assert second.bids[0] is first.bids[0] and second.bids[1] is first.bids[1]
    assert (second.bids[2].quantity, second.bids[2].timestamp) == (3.0, wall(4 * S))
    assert second.asks == first.asks and all(x is y for x, y in zip(second.asks, first.asks))
    assert second.key() != first.key()

    # a changes a level below the top 3: a is re-read, nothing a reader sees changed
    a.apply(BookUpdate("X", [["90", "5"]], []), 6 * S)
    third = view.merge(3, max_age_ms=60_000)
    assert third.key() == second.key() and all(x is y for x, y in zip(third.bids, second.bids))

    # a book that leaves LIVE and comes back is read afresh: its levels are stamped anew
    a.resync("gap")
    view.merge(3, max_age_ms=60_000)
    a.apply(BookUpdate("X", [["100", "1"]], [["101", "1"]], snapshot=True), 7 * S)
    clock.mono = 8 * S
    back = view.merge(3, max_age_ms=60_000)
    assert (back.bids[0].price, back.bids[0].exchange, back.bids[0].timestamp) == (100.0, "a", wall(7 * S))
    assert back.bids[0] is not first.bids[0]


def test_summary_copies_the_merged_levels_and_a_deep_change_emits_nothing() -> None:
    clock = SteppedClock()
    router = Router(clock=clock)
    a = venue(router, "a")
    events: list[Event] = []
    analyzer = SummaryAnalyzer(SummaryConfig(depth=2), events.append, AggregationConfig(max_age_ms=60_000))
    view = router.views["BTC/USDT"]
    a.apply(BookUpdate("X", [["100.01", "1"], ["100", "2"], ["99", "1"]], [["100.02", "1"], ["100.5", "1"]], snapshot=True), 1 * S)
    clock.mono = 2 * S
    analyzer.on_update(view, clock.time())
    (event,) = events
    summary = event.payload
    assert isinstance(summary, Summary)
    assert summary.timestamp == wall(2 * S) and summary.spread == 0.01 and summary.mid == 100.015
    assert [(lv.price, lv.quantity, lv.exchange, lv.timestamp) for lv in summary.bids] == [(100.01, 1.0, "a", wall(1 * S)), (100.0, 2.0, "a", wall(1 * S))]
    merged = view.last_merged
    assert merged is not None and summary.bids == merged.bids and summary.bids is not merged.bids  # a copy: changing it changes no merge

    for k in range(5):  # changes below the top 2 only: each re-reads the venue, none is a new summary
        a.apply(BookUpdate("X", [["99", str(k + 2)]], [["101", str(k + 1)]]), (3 + k) * S)
        analyzer.on_update(view, clock.time())
    assert len(events) == 1

    a.apply(BookUpdate("X", [["100", "7"]], []), 9 * S)  # the second bid changes: a new summary
    clock.mono = 10 * S
    analyzer.on_update(view, clock.time())
    assert len(events) == 2
    latest = events[-1].payload
    assert isinstance(latest, Summary)
    assert latest.bids[0] is summary.bids[0] and (latest.bids[1].quantity, latest.bids[1].timestamp) == (7.0, wall(9 * S))
    assert build_summary(view.merge(2, 60_000), clock.time()).to_dict() == latest.to_dict()


def test_a_merge_from_scratch_shares_levels_with_the_folds_and_forgets_old_ones() -> None:
    """Several venues changed: the merge starts from scratch and reads rows only for the levels
    it keeps. A level unchanged since is the same object in the folds that follow (one venue
    changed), so a change no reader sees emits no summary; the levels remembered per venue stay
    bounded however far the prices walk."""
    clock = SteppedClock()
    router = Router(clock=clock)
    names = ["a", "b", "c", "d", "e"]
    books = {n: venue(router, n) for n in names}
    for i, n in enumerate(names):
        bids = [[f"{100 - k - i / 10:.1f}", "1"] for k in range(6)]
        asks = [[f"{101 + k + i / 10:.1f}", "1"] for k in range(6)]
        books[n].apply(BookUpdate("X", bids, asks, snapshot=True), 1 * S)
    view = router.views["BTC/USDT"]
    events: list[Event] = []
    analyzer = SummaryAnalyzer(SummaryConfig(depth=4), events.append, AggregationConfig(max_age_ms=60_000))
    clock.mono = 2 * S
    analyzer.on_update(view, clock.time())
    for i, n in enumerate(names):  # every venue changes its best bid: from scratch
        books[n].apply(BookUpdate("X", [[f"{100 - i / 10:.1f}", "2"]], []), 3 * S)
    clock.mono = 4 * S
    analyzer.on_update(view, clock.time())
    scratch = view.last_merged
    assert scratch is not None and len(events) == 2
    assert [(lv.price, lv.quantity, lv.exchange) for lv in scratch.bids] == [(100.0, 2.0, "a"), (99.9, 2.0, "b"), (99.8, 2.0, "c"), (99.7, 2.0, "d")]
    assert [lv.timestamp for lv in scratch.bids] == [wall(3 * S)] * 4

    books["a"].apply(BookUpdate("X", [["95", "7"]], []), 5 * S)  # below the top 4: folded, nothing seen
    analyzer.on_update(view, clock.time())
    assert len(events) == 2 and all(x is y for x, y in zip(view.last_merged.bids, scratch.bids))  # type: ignore[union-attr]
    books["b"].apply(BookUpdate("X", [["99.9", "3"]], []), 6 * S)  # one level seen: the rest shared
    analyzer.on_update(view, clock.time())
    folded = view.last_merged
    assert folded is not None and len(events) == 3
    assert [x is y for x, y in zip(folded.bids, scratch.bids)] == [True, False, True, True]
    assert (folded.bids[1].quantity, folded.bids[1].timestamp) == (3.0, wall(6 * S))

    for step in range(200):  # each venue's best bid moves to a new price: from scratch each time
        for i, n in enumerate(names):
            p, before = (100 + (s % 50 + 1) / 100 + i / 1000 for s in (step, step - 1))
            books[n].apply(BookUpdate("X", [[f"{before:.3f}", "0"], [f"{p:.3f}", "5"]], []), (7 + step) * S)
        analyzer.on_update(view, clock.time())
        merged = view.last_merged
        truth = sorted(((p, q, n) for n, b in books.items() for p, q in b.book.bids.top(100)), key=lambda r: -r[0])[:4]
        assert merged is not None and merged.venues == names
        assert [(lv.price, lv.quantity, lv.exchange) for lv in merged.bids] == truth
    assert max(len(c.bid_index) for c in view._cache.values()) <= 4 * 4 + 9
