"""The per-symbol sync state machine: every rule of issue 3, on hand-made updates."""

from __future__ import annotations

import pytest

import zlib

from aggcore.book import BookUpdate, OrderBook, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.models import BookState

REST = SyncRules(SnapshotSource.REST, SequenceMode.CONTIGUOUS)
INBAND = SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS)


class Recorder:
    def __init__(self) -> None:
        self.resyncs: list[tuple[str, str]] = []
        self.changes = 0

    def request(self, symbol: str, reason: str) -> None:
        self.resyncs.append((symbol, reason))

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        assert book.live, "a book that is not LIVE must never reach the view"
        self.changes += 1

    def book_state_changed(self, book: SymbolBook) -> None:
        pass


def make(rules: SyncRules, depth: int | None = None, max_levels: int | None = None) -> tuple[SymbolBook, Recorder]:
    rec = Recorder()
    return SymbolBook("x", "BTCUSDT", "BTC/USDT", rules, depth=depth, max_levels=max_levels, listener=rec, request_resync=rec.request), rec


def delta(first: int, last: int, bids=(), asks=(), **kw) -> BookUpdate:  # type: ignore[no-untyped-def]
    return BookUpdate("BTCUSDT", list(bids), list(asks), first=first, last=last, **kw)


def snap(last: int, bids, asks, **kw) -> BookUpdate:  # type: ignore[no-untyped-def]
    return BookUpdate("BTCUSDT", bids, asks, snapshot=True, first=last, last=last, **kw)


def test_rest_snapshot_buffers_deltas_drops_stale_and_checks_first() -> None:
    book, rec = make(REST)
    # deltas arrive while the snapshot is being fetched: buffered, not applied
    book.apply(delta(95, 99, bids=[["10", "1"]]))
    book.apply(delta(100, 102, bids=[["11", "2"]]))
    book.apply(delta(103, 104, asks=[["13", "1"]]))
    assert book.state is BookState.SYNCING and not book.book.bids.levels
    book.snapshot_fetched(snap(101, [["9", "5"]], [["12", "5"]]))
    # 95-99 dropped (u <= 101), 100-102 straddles 102 = 101 + 1: applied, then 103-104
    assert book.state is BookState.LIVE
    assert book.book.bids.top(5) == [(11.0, 2.0), (9.0, 5.0)]
    assert book.book.asks.top(5) == [(12.0, 5.0), (13.0, 1.0)]
    assert book.dropped_stale == 1 and book.last_seq == 104 and not rec.resyncs


def test_snapshot_older_than_every_buffered_delta_resyncs() -> None:
    book, rec = make(REST)
    book.apply(delta(200, 210, bids=[["10", "1"]]))
    book.snapshot_fetched(snap(150, [["9", "5"]], [["12", "5"]]))
    assert book.state is BookState.RESYNCING and rec.resyncs and "starts at 200" in rec.resyncs[0][1]


def test_snapshot_newer_than_buffer_waits_for_first_covering_delta() -> None:
    book, rec = make(REST)
    book.snapshot_fetched(snap(50, [["9", "5"]], [["12", "5"]]))
    assert not book.live  # no delta has proven continuity yet
    book.apply(delta(40, 50))  # stale: dropped
    assert not book.live
    book.apply(delta(49, 52, bids=[["10", "1"]]))
    assert book.live and book.book.bids.best() == 10.0


def test_gap_while_live_resyncs_that_symbol_and_clears_the_book() -> None:
    book, rec = make(INBAND)
    book.apply(snap(10, [["9", "1"]], [["11", "1"]]))
    book.apply(delta(11, 11, bids=[["9.5", "1"]]))
    assert book.live
    book.apply(delta(13, 13, bids=[["9.6", "1"]]))  # 12 lost
    assert book.state is BookState.RESYNCING and book.gaps == 1 and book.resyncs == 1
    assert not book.book.bids.levels and rec.resyncs == [("BTCUSDT", "sequence gap: expected 12, got 13")]
    # deltas before the new snapshot are ignored; the snapshot makes it LIVE again
    book.apply(delta(14, 14, bids=[["1", "1"]]))
    assert not book.book.bids.levels
    book.apply(snap(20, [["9", "2"]], [["11", "2"]]))
    assert book.live and book.book.bids.top(1) == [(9.0, 2.0)]


def test_duplicate_and_out_of_order_old_messages_are_dropped_not_gaps() -> None:
    book, rec = make(INBAND)
    book.apply(snap(10, [["9", "1"]], [["11", "1"]]))
    book.apply(delta(11, 11, bids=[["9.5", "1"]]))
    book.apply(delta(11, 11, bids=[["9.5", "7"]]))  # duplicate
    assert book.live and book.book.bids.levels[9.5] == 1.0 and book.dropped_stale == 1
    book.apply(delta(13, 13))  # 12 missing: out of order is a gap
    assert book.state is BookState.RESYNCING


def test_in_band_deltas_before_snapshot_are_ignored() -> None:
    book, rec = make(INBAND)
    book.apply(delta(5, 5, bids=[["9", "1"]]))
    assert book.state is BookState.SYNCING and not book.book.bids.levels and rec.changes == 0


def test_midstream_snapshot_replaces_the_book() -> None:
    book, _ = make(INBAND)
    book.apply(snap(10, [["9", "1"], ["8", "1"]], [["11", "1"]]))
    book.apply(snap(1, [["7", "3"]], [["12", "3"]]))  # e.g. Bybit u=1 after a service restart
    assert book.book.bids.top(5) == [(7.0, 3.0)] and book.book.asks.top(5) == [(12.0, 3.0)]
    book.apply(delta(2, 2, asks=[["12", "0.000"]]))
    assert book.live and book.book.asks.top(5) == []


def test_zero_in_any_spelling_deletes() -> None:
    book, _ = make(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, check_crossed=False))
    book.apply(snap(0, [["9", "1"], ["8", "1"], ["7", "1"]], []))
    book.apply(BookUpdate("BTCUSDT", [["9", "0"], ["8", "0.00000000"], [7.0, 0]], []))
    assert book.book.bids.top(5) == []


def test_crossed_book_resyncs() -> None:
    book, rec = make(INBAND)
    book.apply(snap(1, [["9", "1"]], [["11", "1"]]))
    book.apply(delta(2, 2, bids=[["11.5", "1"]]))
    assert book.state is BookState.RESYNCING and book.crossed_books == 1 and "crossed" in rec.resyncs[0][1]


def crc(ob: OrderBook) -> int:
    text = ":".join(f"{p}:{q}" for p, q in ob.bids.top(10) + ob.asks.top(10))
    return zlib.crc32(text.encode())


def test_checksum_mismatch_resyncs_and_zero_means_not_provided() -> None:
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, checksum=crc)
    book, rec = make(rules)
    book.apply(snap(0, [["9", "1"]], [["11", "1"]]))
    good = BookUpdate("BTCUSDT", [["9", "2"]], [])
    expected = OrderBook()
    expected.bids.apply([["9", "2"]])
    expected.asks.apply([["11", "1"]])
    good.checksum = crc(expected)
    book.apply(good)
    assert book.live
    book.apply(BookUpdate("BTCUSDT", [["9", "3"]], [], checksum=0))  # 0: not provided (OKX since 2026)
    assert book.live
    book.apply(BookUpdate("BTCUSDT", [["9", "4"]], [], checksum=12345))
    assert book.state is BookState.RESYNCING and book.checksum_failures == 1


def test_depth_truncation_keeps_the_best_levels() -> None:
    book, _ = make(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE), depth=3)
    book.apply(snap(0, [[str(p), "1"] for p in range(90, 100)], [[str(p), "1"] for p in range(101, 111)]))
    assert book.book.bids.prices(10) == [99.0, 98.0, 97.0]
    assert book.book.asks.prices(10) == [101.0, 102.0, 103.0]
    book.apply(BookUpdate("BTCUSDT", [["98.5", "1"]], [["100.5", "1"]]))
    assert book.book.bids.prices(10) == [99.0, 98.5, 98.0]
    assert book.book.asks.prices(10) == [100.5, 101.0, 102.0]


def test_monotonic_mode_drops_diffs_at_or_before_the_snapshot() -> None:
    book, _ = make(SyncRules(SnapshotSource.REST, SequenceMode.MONOTONIC))
    book.apply(delta(1000, 1000, bids=[["8", "1"]]))
    book.apply(delta(1500, 1500, bids=[["10", "1"]]))
    book.snapshot_fetched(snap(1000, [["9", "5"]], [["12", "5"]]))
    assert book.live and book.book.bids.top(5) == [(10.0, 1.0), (9.0, 5.0)]
    book.apply(delta(1400, 1400, bids=[["7", "1"]]))  # older than what we have: dropped
    assert 7.0 not in book.book.bids.levels


BAD_LEVELS = [
    ("bids", ["30000", "-5"]),
    ("bids", ["30000", "NaN"]),
    ("asks", ["30001", "Infinity"]),
    ("asks", ["NaN", "1"]),
    ("bids", ["-30000", "1"]),
    ("bids", ["0", "1"]),
    ("asks", ["1e400", "1"]),
    ("asks", [float("nan"), 1.0]),
    ("bids", ["abc", "1"]),
    ("bids", [None, "1"]),
    ("asks", [["30001"], "1"]),
    ("asks", ["30001"]),
]


def test_every_impossible_level_makes_the_message_invalid_and_resyncs() -> None:
    for side, level in BAD_LEVELS:
        book, rec = make(INBAND)
        book.apply(snap(10, [["9", "1"], ["8", "1"]], [["11", "1"]]))
        changes = rec.changes
        good = ["8.5", "2"]
        # a correctly sequenced delta: a good level, then the impossible one
        kw = {"bids": [good, level]} if side == "bids" else {"bids": [good], "asks": [level]}
        book.apply(delta(11, 11, **kw))
        assert book.state is BookState.RESYNCING, level
        assert book.invalid_messages == 1 and book.resyncs == 1, level
        assert rec.changes == changes, f"{level}: a change was emitted"
        assert not book.book.bids.levels and not book.book.asks.levels, level
        assert "invalid delta (sequence 11)" in rec.resyncs[0][1] and side[:-1] + " level" in rec.resyncs[0][1], level
        # the next snapshot makes it LIVE again
        book.apply(snap(20, [["9", "2"]], [["11", "2"]]))
        assert book.live and book.book.bids.top(5) == [(9.0, 2.0)], level


def test_sides_that_are_not_level_lists_are_invalid() -> None:
    for bids in (5, "12", [5], [{"p": 1}], None):
        book, rec = make(INBAND)
        book.apply(snap(10, [["9", "1"]], [["11", "1"]]))
        book.apply(BookUpdate("BTCUSDT", bids, [], first=11, last=11))  # type: ignore[arg-type]
        assert book.state is BookState.RESYNCING and book.invalid_messages == 1, bids


def test_an_invalid_snapshot_is_never_live() -> None:
    book, rec = make(INBAND)
    book.apply(snap(10, [["9", "1"], ["8", "NaN"]], [["11", "1"]]))
    assert book.state is BookState.RESYNCING and rec.changes == 0 and book.invalid_messages == 1
    rest, rrec = make(REST)
    rest.apply(delta(11, 11, bids=[["9", "2"]]))
    assert rest.snapshot_fetched(snap(10, [["9", "1"]], [["-11", "1"]])) is False
    assert rest.state is BookState.RESYNCING and rrec.changes == 0 and rest.invalid_messages == 1
    assert "invalid snapshot" in rrec.resyncs[0][1]


def test_a_buffered_invalid_delta_is_caught_when_replayed() -> None:
    book, rec = make(REST)
    book.apply(delta(11, 11, bids=[["9.5", "1"]]))
    book.apply(delta(12, 12, asks=[["11.5", "-1"]]))
    book.snapshot_fetched(snap(10, [["9", "1"]], [["11", "1"]]))
    assert book.state is BookState.RESYNCING and book.invalid_messages == 1
    assert not book.book.asks.levels and rec.changes == 1  # only the valid delta 11 was emitted


@pytest.mark.parametrize(("depth", "max_levels"), [(None, None), (30, None), (None, 40)], ids=["full", "depth-30", "capped-40"])
def test_numeric_levels_give_the_same_books_and_the_same_rejections(depth: int | None, max_levels: int | None) -> None:
    """``BookUpdate(numeric=True)`` (typed decoding: levels already floats) skips the conversion
    of each level, never the checks: books, truncation to ``depth``, caps (and the resync of a
    capped side thinned below its floor) and rejections equal the wire-string path's."""
    import random

    rng = random.Random(5)
    strings, rec_s = make(INBAND, depth, max_levels)
    numbers, rec_n = make(INBAND, depth, max_levels)
    bids = [[f"{100 - i * 0.5:.2f}", f"{rng.uniform(0.1, 5):.4f}"] for i in range(50)]
    asks = [[f"{101 + i * 0.5:.2f}", f"{rng.uniform(0.1, 5):.4f}"] for i in range(50)]
    resyncs = full = 0
    for seq in range(10, 1200):
        if seq == 10 or not strings.live:
            resyncs += seq > 10
            strings.apply(snap(seq, bids, asks))
            numbers.apply(snap(seq, [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks], numeric=True))
            continue
        size = f"{rng.uniform(0, 3):.3f}"
        side = [[f"{rng.choice([95, 99.5, 100]) - rng.randrange(40) * 0.5:.2f}", rng.choice(["0", "0.00000000", size, size])] for _ in range(rng.randrange(6))]
        other = [[f"{101 + rng.randrange(40) * 0.5:.2f}", rng.choice(["0", size, size])] for _ in range(rng.randrange(6))]
        strings.apply(delta(seq, seq, bids=side, asks=other))
        numbers.apply(delta(seq, seq, bids=[(float(p), float(q)) for p, q in side], asks=[(float(p), float(q)) for p, q in other], numeric=True))
        assert numbers.state is strings.state and numbers.error == strings.error, seq
        assert numbers.book.bids.levels == strings.book.bids.levels and numbers.book.bids.keys == strings.book.bids.keys
        assert numbers.book.asks.levels == strings.book.asks.levels and numbers.book.asks.keys == strings.book.asks.keys
        limit = min(x for x in (depth, max_levels, 10**9) if x is not None)
        assert len(numbers.book.bids) <= limit and len(numbers.book.asks) <= limit
        full += len(numbers.book.bids) == limit or len(numbers.book.asks) == limit
    assert rec_n.changes == rec_s.changes and numbers.resyncs == strings.resyncs
    if depth is not None:
        assert full > 100  # the sides did reach the depth (and were truncated)
    if max_levels is not None:
        assert resyncs > 0  # a capped side did thin below its floor (and healed)
    nan, inf = float("nan"), float("inf")
    for level in [(nan, 1.0), (1.0, nan), (inf, 1.0), (9.0, inf), (0.0, 1.0), (-9.0, 1.0), (9.0, -1.0), (9.0,), (9.0, 1.0, 2.0), ("9", "1"), (None, 1.0), 9.0]:
        book, rec = make(INBAND)
        book.apply(snap(10, [(9.0, 1.0)], [(11.0, 1.0)], numeric=True))
        book.apply(delta(11, 11, bids=[(8.5, 2.0), level], numeric=True))
        assert book.state is BookState.RESYNCING and book.invalid_messages == 1, level
        assert rec.changes == 1 and not book.book.bids.levels, level  # only the snapshot was emitted
    # a book that keeps wire strings for a checksum ignores the flag (its strings come from the levels)
    keep, _ = make(SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS, keep_strings=True))
    keep.apply(snap(10, [("9.10", "1.5")], [("11", "1")], numeric=True))
    assert keep.live and keep.book.bids.raw == {9.1: ("9.10", "1.5")}


def test_a_book_made_without_wire_strings_keeps_them_from_the_next_snapshot() -> None:
    """``OrderBook.keep_strings()``: a feed found to send checksums (OKX's older feed)."""

    def crc(book: OrderBook) -> int:
        assert book.bids.raw is not None and book.asks.raw is not None
        text = ":".join(":".join(book.bids.raw[p]) for p in book.bids.prices(5)) + "|" + ":".join(":".join(book.asks.raw[p]) for p in book.asks.prices(5))
        return zlib.crc32(text.encode())

    b, _ = make(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, checksum=crc))
    b.apply(BookUpdate("S", [(10.0, 1.0)], [(11.0, 1.0)], snapshot=True, numeric=True))
    assert b.live and b.book.bids.raw is None
    b.book.keep_strings()
    assert not b.book.bids.keys and b.book.bids.raw == {} and b.book.asks.raw == {}
    snap = BookUpdate("S", [("10.50", "2.0")], [("11.00", "1")], snapshot=True, checksum=zlib.crc32(b"10.50:2.0|11.00:1"))
    assert b.apply(snap) and b.live and b.book.bids.raw == {10.5: ("10.50", "2.0")}
    assert not b.apply(BookUpdate("S", [("10.50", "3.0")], [], checksum=1))  # checked over the strings
    assert b.checksum_failures == 1


def test_a_book_keeps_what_level_text_makes_of_each_levels_wire_strings() -> None:
    """``SyncRules.level_text``: made once per applied level (numbers as their repr), kept while
    the level is, gone with it; the checksum reads those values."""
    made: list[tuple[str, str]] = []

    def text(price: str, size: str) -> str:
        made.append((price, size))
        return f"{price}x{size}"

    def crc(book: OrderBook) -> int:
        assert book.bids.raw is not None and book.asks.raw is not None
        return zlib.crc32("|".join([*map(book.bids.raw.__getitem__, book.bids.prices(5)), *map(book.asks.raw.__getitem__, book.asks.prices(5))]).encode())

    b, _ = make(SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, checksum=crc, keep_strings=True, level_text=text))
    snap = BookUpdate("S", [("10.50", "2.0"), (10.25, 1.0)], [("11.00", "1")], snapshot=True, checksum=zlib.crc32(b"10.50x2.0|10.25x1.0|11.00x1"))
    assert b.apply(snap) and b.live and b.checksum_failures == 0
    assert b.book.bids.raw == {10.5: "10.50x2.0", 10.25: "10.25x1.0"} and made == [("10.50", "2.0"), ("10.25", "1.0"), ("11.00", "1")]
    assert b.apply(BookUpdate("S", [("10.50", "0")], [("11.00", "4")], checksum=zlib.crc32(b"10.25x1.0|11.00x4")))
    assert b.book.bids.raw == {10.25: "10.25x1.0"} and b.book.asks.raw == {11.0: "11.00x4"} and len(made) == 4
    assert not b.apply(BookUpdate("S", [("10.25", "2")], [], checksum=1)) and b.checksum_failures == 1
