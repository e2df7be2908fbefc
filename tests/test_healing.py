"""Every book heals by itself (issue 16 item 2): deadlines, escalation, FAILED retry, health.

The toy plugin's connector runs against its fake over loopback; faults come from the shared
fake toolkit. Engine settings are short so each case takes a second or two.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.connector import looks_permanent
from aggcore.models import BookState
from aggcore.testing import Fault, running, wait_until
from aggcore.testing.toy import FakeToy, ToyConnector

pytestmark = pytest.mark.anyio

BTC, ETH = "BTCUSDT", "ETHUSDT"


def toy(fake: FakeToy, **overrides: Any) -> ToyConnector:
    section = fake.connector_config(
        stale_after_s=5.0, reconnect_min_s=0.05, reconnect_max_s=0.5, resync_deadline_s=0.5, failed_retry_s=1.0
    )
    section.update(overrides)
    return ToyConnector(ToyConnector.Config.model_validate(section))


def all_live(c: ToyConnector) -> bool:
    return len(c.books) == 2 and all(b.live for b in c.books.values())


async def test_a_lost_snapshot_is_asked_again_and_health_says_what_it_waits_for() -> None:
    async with FakeToy(seed=1, rate_hz=50) as fake, running(toy(fake)) as c:
        await wait_until(lambda: all_live(c), what="LIVE")
        fake.inject(Fault.LOST_SNAPSHOT, BTC)
        c.books[BTC].resync("test: resubscribe, the snapshot is lost")
        await wait_until(lambda: c.healing(BTC)[0] is not None, what="the watchdog to notice")
        waiting, retry_s = c.healing(BTC)
        assert waiting is not None and "a snapshot after (re)subscribing" in waiting and "next: ask again" in waiting
        assert retry_s is not None and 0 <= retry_s <= 0.5
        await wait_until(lambda: all_live(c), timeout=5, what="LIVE again")
        assert c.error_counts.get("deadline", 0) >= 1 and c.reconnects == 0
        assert c.books[ETH].resyncs == 0
        assert c.healing(BTC) == (None, None)


async def test_asking_again_that_fails_escalates_to_a_reconnect() -> None:
    async with FakeToy(seed=2, rate_hz=50) as fake, running(toy(fake)) as c:
        await wait_until(lambda: all_live(c), what="LIVE")
        for _ in range(2):  # the resubscription and the deadline's re-ask both lose their snapshot
            fake.inject(Fault.LOST_SNAPSHOT, BTC)
        c.books[BTC].resync("test: resubscribe, the snapshots are lost")
        await wait_until(lambda: c.reconnects >= 1, timeout=5, what="a reconnect of that connection")
        await wait_until(lambda: all_live(c), timeout=5, what="LIVE again")
        assert fake.peek_fault(Fault.LOST_SNAPSHOT) is None


async def test_transient_error_resyncs_and_heals_permanent_one_fails_and_is_retried() -> None:
    async with FakeToy(seed=3, rate_hz=50) as fake, running(toy(fake)) as c:
        await wait_until(lambda: all_live(c), what="LIVE")
        fake.inject(Fault.ERROR_REPLY, BTC, message="service busy, try again")
        await wait_until(lambda: c.books[BTC].resyncs >= 1, what="a resync after the error")
        assert c.books[BTC].state is not BookState.FAILED
        await wait_until(lambda: all_live(c), what="LIVE again")
        fake.inject(Fault.ERROR_REPLY, BTC, message="unknown symbol")
        await wait_until(lambda: c.books[BTC].failed, what="FAILED")
        assert c.books[ETH].live
        await wait_until(lambda: c.healing(BTC)[0] is not None, what="the watchdog to notice")
        assert "retry the FAILED book" in (c.healing(BTC)[0] or "")
        # retried after failed_retry_s (1 s): the fake sends clean data again
        await wait_until(lambda: all_live(c), timeout=5, what="the FAILED book LIVE again")


async def test_a_frame_that_breaks_the_parser_never_ends_the_connector() -> None:
    class Fragile(ToyConnector):
        def on_frame(self, conn: Any, frame: str | bytes, receipt_ns: int) -> None:
            if b"boom" in (frame if isinstance(frame, bytes) else frame.encode()):
                raise ZeroDivisionError("a plugin bug")
            super().on_frame(conn, frame, receipt_ns)

    async with FakeToy(seed=4, rate_hz=50) as fake:
        base = toy(fake)
        c = Fragile(base.config)
        async with running(c):
            await wait_until(lambda: all_live(c), what="LIVE")
            for s in fake.sessions:
                s.send_soon('{"boom": 1}')
            await wait_until(lambda: c.error_counts.get("parsing", 0) >= 1, what="the error counted")
            await anyio.sleep(0.2)
            assert all_live(c) and "ZeroDivisionError" in (c.last_error or "")


def test_permanent_errors_are_told_from_the_message() -> None:
    for text in ("Invalid symbol.", "Currency pair not supported XBT/USD", "handler not found", "instrument doesn't exist"):
        assert looks_permanent(text), text
    for text in ("service busy", "rate limited, retry", "Connection is unauthorized.", "internal error"):
        assert not looks_permanent(text), text


# -- the book's own guards -------------------------------------------------------------------------


class Rec:
    def __init__(self) -> None:
        self.resyncs: list[str] = []

    def request(self, symbol: str, reason: str) -> None:
        self.resyncs.append(reason)


def book(rules: SyncRules, **kw: Any) -> tuple[SymbolBook, Rec]:
    rec = Rec()
    return SymbolBook("x", "S", "S/USD", rules, request_resync=rec.request, **kw), rec


def test_a_snapshot_from_the_future_is_noticed_by_a_live_monotonic_book() -> None:
    b, rec = book(SyncRules(SnapshotSource.REST, SequenceMode.MONOTONIC))
    b.snapshot_fetched(BookUpdate("S", [["9", "1"]], [["11", "1"]], snapshot=True, first=10**12, last=10**12))
    assert b.live
    for i in range(60):
        b.apply(BookUpdate("S", [["9", str(i + 2)]], [], first=1000 + i, last=1000 + i))
    assert b.state is BookState.RESYNCING and "ahead of the exchange" in rec.resyncs[0]


def test_non_integer_sequences_are_invalid() -> None:
    b, rec = book(SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS))
    b.apply(BookUpdate("S", [["9", "1"]], [["11", "1"]], snapshot=True, first=1, last=1))
    b.apply(BookUpdate("S", [["9", "2"]], [], first=2, last="1e400"))  # type: ignore[arg-type]
    assert b.state is BookState.RESYNCING and b.invalid_messages == 1 and "not an integer" in rec.resyncs[0]


def test_capped_side_keeps_the_best_levels_exactly_and_resyncs_when_thin() -> None:
    b, rec = book(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE), max_levels=4)
    bids = [[str(p), "1"] for p in range(90, 100)]  # 90..99
    b.apply(BookUpdate("S", bids, [["101", "1"]], snapshot=True))
    assert b.book.bids.prices(10) == [99.0, 98.0, 97.0, 96.0]
    # beyond the kept range (<= 95, the best dropped): ignored, the book stays a true prefix
    b.apply(BookUpdate("S", [["95.5", "1"], ["94", "3"], ["95", "0"]], []))
    # (95.5 is inside it but fifth best: capped again, the kept range now ends above 95.5)
    assert b.book.bids.prices(10) == [99.0, 98.0, 97.0, 96.0] and b.book.bids.lo == 95.5
    assert 94.0 not in b.book.bids.levels and b.live
    # deletes near the top thin the side below half the cap: its dropped levels may now be the
    # best ones, so the book resyncs rather than show a thin (or wrong) side
    b.apply(BookUpdate("S", [["99", "0"], ["98", "0"], ["97", "0"]], []))
    assert b.state is BookState.RESYNCING and "thinned" in rec.resyncs[0]


def test_flood_of_far_levels_is_capped() -> None:
    b, _ = book(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE), max_levels=100)
    b.apply(BookUpdate("S", [["100", "1"]], [["101", "1"]], snapshot=True))
    b.apply(BookUpdate("S", [[str(50 - i * 0.001), "1"] for i in range(5000)], [[str(200 + i), "1"] for i in range(5000)]))
    assert len(b.book.bids) == 100 and len(b.book.asks) == 100 and b.live
    assert b.book.bids.best() == 100.0 and b.book.asks.best() == 101.0


async def test_a_feed_whose_frames_all_fail_to_parse_goes_stale_and_heals() -> None:
    """Frames that keep arriving but break the parser (an exchange changed its format) do not keep
    a book current: it goes STALE after ``stale_after_s``, leaves the consolidated view, heals
    once frames parse again."""

    class Breakable(ToyConnector):
        broken = False

        def on_frame(self, conn: Any, frame: str | bytes, receipt_ns: int) -> None:
            if self.broken:
                raise ValueError("unexpected field layout")
            super().on_frame(conn, frame, receipt_ns)

    async with FakeToy(seed=6, rate_hz=50) as fake:
        c = Breakable(toy(fake, stale_after_s=0.6).config)
        async with running(c):
            await wait_until(lambda: all_live(c), what="LIVE")
            c.broken = True
            await wait_until(lambda: c.books[BTC].state is not BookState.LIVE, timeout=10, what="the frozen book to leave LIVE")
            assert c.books[BTC].error is not None and "no data" in c.books[BTC].error
            assert c.error_counts.get("parsing", 0) >= 10  # frames kept coming, each counted
            c.broken = False
            await wait_until(lambda: all_live(c), timeout=10, what="LIVE again once frames parse")
