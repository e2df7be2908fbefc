"""Real data: every book of BITSTAMP.ws.1.0 syncs from its BITSTAMP.http.0.0 REST snapshot by microtimestamp.

The capture holds, per pair, 2-25 diffs at or before the snapshot's microtimestamp, including diffs in
the snapshot's own second (ethusd, xrpeur) that the seconds ``timestamp`` cannot order.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import anyio
import orjson
import pytest
from aggcore.book import BookUpdate
from aggcore.models import BookState
from aggcore.testing.recordings import recording
from aggcore.testing.replay import RecordingServer

from aggcore_plugin_bitstamp import BitstampConfig, BitstampConnector
from aggcore_plugin_bitstamp.messages import parse, parse_snapshot
from aggcore_plugin_bitstamp.symbols import parse_instruments


def _load() -> tuple[dict[str, BookUpdate], dict[str, list[BookUpdate]], list[str]]:
    ws = recording("BITSTAMP.ws.1.0")
    http = recording("BITSTAMP.http.0.0")
    snaps: dict[str, BookUpdate] = {}
    for rec in http.http():
        pair = rec.url.rstrip("/").rsplit("/", 1)[-1]
        snaps[pair] = parse_snapshot(pair, rec.body)
    frames = [f.text for f in ws.frames()]
    diffs: dict[str, list[BookUpdate]] = {}
    for text in frames:
        msg = parse(text)
        if isinstance(msg, BookUpdate):
            diffs.setdefault(msg.symbol, []).append(msg)
    return snaps, diffs, frames


def _reference(snap: BookUpdate, diffs: list[BookUpdate], newer: Any) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    """An independent, exact (Decimal) replay: the snapshot, then each diff ``newer(diff)`` accepts."""
    # str(): parse() hands over the levels of book frames as floats (typed decoding), the same
    # numbers as float() of the wire strings; str() of such a float is that decimal again
    sides = ({Decimal(str(p)): Decimal(str(q)) for p, q in snap.bids}, {Decimal(str(p)): Decimal(str(q)) for p, q in snap.asks})
    for d in diffs:
        if not newer(d):
            continue
        for side, levels in zip(sides, (d.bids, d.asks)):
            for p, q in levels:
                if Decimal(str(q)) == 0:
                    side.pop(Decimal(str(p)), None)
                else:
                    side[Decimal(str(p))] = Decimal(str(q))
    return sides


def _as_float(side: dict[Decimal, Decimal]) -> dict[float, float]:
    return {float(p): float(q) for p, q in side.items()}


def _connector(pairs: list[str]) -> BitstampConnector:
    c = BitstampConnector(BitstampConfig(trading_pairs=pairs, refresh_interval_s=None))
    catalog = next(r.body for r in recording("BITSTAMP.0").http() if "trading-pairs-info" in r.url)
    c.symbols = parse_instruments(orjson.loads(catalog))
    for pair in pairs:
        inst = c.symbols.resolve(pair)
        c.books[inst.symbol] = c.make_book(inst)
        c.books[inst.symbol].begin_sync()
    return c


@pytest.mark.parametrize("snapshot_first", [False, True], ids=["buffered", "snapshot-first"])
def test_every_recorded_book_syncs_by_microtimestamp(snapshot_first: bool) -> None:
    snaps, diffs, frames = _load()
    assert len(snaps) == 10
    c = _connector(list(snaps))
    conn: Any = SimpleNamespace(state={})
    if snapshot_first:
        for pair, snap in snaps.items():
            c.books[pair].snapshot_fetched(snap)
    for text in frames:  # the real connector's hot path, frame by frame
        c.on_frame(conn, text, 1)
    assert conn.state["acked"] == set(snaps)  # the ten diff channels were acknowledged
    if not snapshot_first:
        for pair, snap in snaps.items():
            c.books[pair].snapshot_fetched(snap)
    for pair, snap in snaps.items():
        book = c.books[pair]
        assert book.state is BookState.LIVE, (pair, book.error)
        assert book.resyncs == 0 and book.crossed_books == 0 and not book.book.crossed()
        pair_diffs = diffs.get(pair, [])
        older = [d for d in pair_diffs if d.last is not None and snap.last is not None and d.last <= snap.last]
        assert book.dropped_stale == len(older), pair
        assert book.last_seq == max([snap.last or 0, *(d.last or 0 for d in pair_diffs)])
        bids, asks = _reference(snap, pair_diffs, lambda d, s=snap: d.last > s.last)
        assert book.book.bids.levels == _as_float(bids), pair
        assert book.book.asks.levels == _as_float(asks), pair


def test_same_second_diffs_at_the_snapshot_are_dropped() -> None:
    """ethusd and xrpeur each hold a diff in the snapshot's own second that is not newer than the
    snapshot (its microtimestamp equals the snapshot's: the snapshot already contains it). A
    seconds comparison cannot tell it from a newer one; the integer microtimestamp drops it, and
    the levels it carries are exactly the snapshot's (so dropping is right)."""
    snaps, diffs, _ = _load()
    trapped: dict[str, BookUpdate] = {}
    for pair, snap in snaps.items():
        assert snap.last is not None
        for d in diffs.get(pair, []):
            assert d.last is not None
            if d.last <= snap.last and d.last // 1_000_000 == snap.last // 1_000_000:
                trapped[pair] = d
    assert sorted(trapped) == ["ethusd", "xrpeur"]
    c = _connector(list(trapped))
    for pair, stale in trapped.items():
        snap = snaps[pair]
        assert stale.last == snap.last
        book = c.books[pair]
        book.snapshot_fetched(snap)
        before = (dict(book.book.bids.levels), dict(book.book.asks.levels))
        assert book.apply(stale, 1) is False and book.dropped_stale == 1
        assert (book.book.bids.levels, book.book.asks.levels) == before
        snap_bids = {float(p): float(q) for p, q in snap.bids}
        snap_asks = {float(p): float(q) for p, q in snap.asks}
        for side, levels in ((snap_bids, stale.bids), (snap_asks, stale.asks)):
            for p, q in levels:
                assert side.get(float(p), 0.0) == float(q), (pair, p, q)


@pytest.mark.anyio
async def test_capture_served_over_sockets_to_the_connector() -> None:
    """The whole connector (acks, REST snapshot after the ack, buffering) on the real capture, played
    over loopback by aggcore's RecordingServer: every book equals the exact replay of the capture."""
    snaps, diffs, _ = _load()
    server = RecordingServer.from_names("BITSTAMP.ws.1.0", rest=["BITSTAMP.0", "BITSTAMP.http.0.0"])
    async with server:
        config = BitstampConfig(
            ws_url=server.ws_url,
            rest_url=server.rest_url,
            trading_pairs=sorted(snaps),
            snapshot_delay_s=0.05,
            snapshot_retries=0,  # the replay plays every diff before any snapshot is asked for
            refresh_interval_s=None,
            stale_after_s=30,
        )
        c = BitstampConnector(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.run)
            with anyio.fail_after(10):
                while not (server.done.is_set() and len(c.books) == 10 and all(b.live for b in c.books.values())):
                    await anyio.sleep(0.01)
            assert not c.pair_errors and c.errors == 0, c.last_error
            for pair, snap in snaps.items():
                book = c.books[pair]
                assert book.resyncs == 0 and book.crossed_books == 0
                bids, asks = _reference(snap, diffs.get(pair, []), lambda d, s=snap: d.last > s.last)
                assert book.book.bids.levels == _as_float(bids), pair
                assert book.book.asks.levels == _as_float(asks), pair
            tg.cancel_scope.cancel()
