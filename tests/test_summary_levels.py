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
