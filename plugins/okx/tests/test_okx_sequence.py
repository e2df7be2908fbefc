"""OKX sequencing through the connector's hot path: prevSeqId must equal the last seqId.

The reference's own example (snapshot 10; 10->15; idle 15->15; maintenance reset 15->3;
3->5) stays LIVE; anything else resyncs that instrument only.
"""

from __future__ import annotations

from typing import Any

import orjson
from aggcore.models import BookState
from aggcore.symbols import Instrument, SymbolTable
from aggcore_plugin_okx.connector import OkxConfig, OkxConnector

SYMS = ["BTC-USDT", "ETH-USDT"]


def connector(**cfg: Any) -> tuple[OkxConnector, list[str]]:
    conn = OkxConnector(OkxConfig(trading_pairs=SYMS, **cfg))
    conn.symbols = SymbolTable([Instrument("BTC-USDT", "BTC", "USDT"), Instrument("ETH-USDT", "ETH", "USDT")])
    resyncs: list[str] = []
    conn.request_resync = lambda sym, reason: resyncs.append(sym)  # type: ignore[method-assign]
    for sym in SYMS:
        conn.books[sym] = conn.make_book(conn.symbols.by_symbol[sym])
    return conn, resyncs


def frame(sym: str, action: str, prev: int, seq: int, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None) -> str:
    data = {"asks": asks or [], "bids": bids or [], "ts": "1597026383085", "checksum": 0, "prevSeqId": prev, "seqId": seq}
    return orjson.dumps({"arg": {"channel": "books", "instId": sym}, "action": action, "data": [data]}).decode()


def feed(conn: OkxConnector, *frames: str) -> None:
    for f in frames:
        conn.on_frame(None, f, 1)  # type: ignore[arg-type]


def snap(sym: str, seq: int) -> str:
    return frame(sym, "snapshot", -1, seq, [["100.0", "1", "0", "1"], ["99.9", "2", "0", "1"]], [["100.1", "1", "0", "1"], ["100.2", "3", "0", "1"]])


def test_reference_example_stays_live() -> None:
    conn, resyncs = connector()
    book = conn.books["BTC-USDT"]
    feed(conn, snap("BTC-USDT", 10))
    assert book.state is BookState.LIVE and book.last_seq == 10
    feed(conn, frame("BTC-USDT", "update", 10, 15, bids=[["99.9", "5", "0", "2"]]))
    feed(conn, frame("BTC-USDT", "update", 15, 15))  # idle heartbeat
    feed(conn, frame("BTC-USDT", "update", 15, 3, asks=[["100.2", "0", "0", "0"]]))  # maintenance reset
    feed(conn, frame("BTC-USDT", "update", 3, 5, asks=[["100.3", "4", "0", "1"]]))
    assert book.state is BookState.LIVE and book.last_seq == 5 and book.gaps == 0 and not resyncs
    assert book.book.bids.top(2) == [(100.0, 1.0), (99.9, 5.0)]
    assert book.book.asks.top(2) == [(100.1, 1.0), (100.3, 4.0)]


def test_mismatch_resyncs_that_instrument_only() -> None:
    conn, resyncs = connector()
    feed(conn, snap("BTC-USDT", 10), snap("ETH-USDT", 50))
    feed(conn, frame("BTC-USDT", "update", 11, 20, bids=[["99.8", "1", "0", "1"]]))
    btc, eth = conn.books["BTC-USDT"], conn.books["ETH-USDT"]
    assert btc.state is BookState.RESYNCING and btc.gaps == 1 and resyncs == ["BTC-USDT"]
    assert 99.8 not in btc.book.bids.levels
    assert eth.live
    feed(conn, frame("BTC-USDT", "update", 20, 25))  # old subscription's deltas: ignored until the snapshot
    assert btc.state is BookState.RESYNCING
    feed(conn, snap("BTC-USDT", 30), frame("BTC-USDT", "update", 30, 31))
    assert btc.live and btc.last_seq == 31


def test_reordered_and_lower_seq_are_gaps_but_a_repeat_is_dropped() -> None:
    conn, resyncs = connector()
    feed(conn, snap("BTC-USDT", 10), frame("BTC-USDT", "update", 10, 15, bids=[["99.7", "1", "0", "1"]]))
    feed(conn, frame("BTC-USDT", "update", 10, 15, bids=[["99.7", "1", "0", "1"]]))  # exact repeat
    book = conn.books["BTC-USDT"]
    assert book.live and book.dropped_stale == 1 and not resyncs
    # a gap right after a maintenance reset (15->3 lost): 3->5 has a lower seqId than ours
    feed(conn, frame("BTC-USDT", "update", 3, 5))
    assert book.state is BookState.RESYNCING and resyncs == ["BTC-USDT"]


def test_rest_mode_ignores_inband_snapshot_and_bridges_the_rest_snapshot() -> None:
    conn, resyncs = connector(snapshot_source="rest")
    book = conn.books["BTC-USDT"]
    feed(conn, snap("BTC-USDT", 10))  # "Ignore the first event received (action is snapshot)"
    assert book.state is BookState.SYNCING and book.book.bids.levels == {}
    feed(conn, frame("BTC-USDT", "update", 10, 15, bids=[["99.0", "1", "0", "1"]]))
    feed(conn, frame("BTC-USDT", "update", 15, 22, bids=[["98.0", "1", "0", "1"]]))
    from aggcore.book import BookUpdate

    # REST snapshot seqId 18: 10->15 is dropped, 15->22 satisfies prevSeqId <= 18 < seqId
    rest = BookUpdate("BTC-USDT", [["99.5", "1", "0", "1"], ["99.0", "1", "0", "1"]], [["100.5", "1", "0", "1"]], snapshot=True, last=18)
    book.snapshot_fetched(rest, 1)
    assert book.live and book.last_seq == 22 and not resyncs
    assert book.book.bids.top(3) == [(99.5, 1.0), (99.0, 1.0), (98.0, 1.0)]
    feed(conn, frame("BTC-USDT", "update", 22, 23))
    assert book.live and book.last_seq == 23


def test_rest_snapshot_older_than_the_stream_is_fetched_again() -> None:
    conn, resyncs = connector(snapshot_source="rest")
    book = conn.books["BTC-USDT"]
    feed(conn, frame("BTC-USDT", "update", 40, 45))
    from aggcore.book import BookUpdate

    book.snapshot_fetched(BookUpdate("BTC-USDT", [["1", "1"]], [["2", "1"]], snapshot=True, last=30), 1)
    assert not book.live and resyncs == ["BTC-USDT"]


def _with_checksum(text: str, value: int | None = None) -> str:
    """``text`` with its checksum set: ``value``, else the right one for the book it leaves."""
    msg = orjson.loads(text)
    msg["data"][0]["checksum"] = value
    return orjson.dumps(msg).decode()


def test_checksum_zero_is_not_verified_and_nonzero_is() -> None:
    """The current feed (checksum 0): numbers, no wire strings kept, nothing verified. A frame
    with a checksum: that book keeps the wire strings from a fresh snapshot on and verifies."""
    from aggcore_plugin_okx.messages import checksum_of_levels

    conn, resyncs = connector()
    book = conn.books["BTC-USDT"]
    feed(conn, snap("BTC-USDT", 10))
    assert book.live and book.book.bids.raw is None  # checksum 0: not provided
    bad = _with_checksum(frame("BTC-USDT", "update", 10, 11, bids=[["99.9", "7", "0", "1"]]), 12345)
    feed(conn, bad)
    # a book read without the wire strings cannot check it: synced again, not applied
    assert resyncs == ["BTC-USDT"] and not book.live and book.book.bids.raw is not None
    right = checksum_of_levels([("100.0", "1"), ("99.9", "2")], [("100.1", "1"), ("100.2", "3")])
    feed(conn, _with_checksum(snap("BTC-USDT", 20), right))
    assert book.live and book.checksum_failures == 0 and book.book.bids.raw[99.9] == ("99.9", "2")
    feed(conn, _with_checksum(frame("BTC-USDT", "update", 20, 21, bids=[["99.9", "7", "0", "1"]]), 12345))
    assert book.checksum_failures == 1 and resyncs == ["BTC-USDT", "BTC-USDT"]
    # the other book, LIVE and read without strings: its first frame with a checksum resyncs it
    feed(conn, snap("ETH-USDT", 5), _with_checksum(frame("ETH-USDT", "update", 5, 6), 777))
    assert resyncs[-1] == "ETH-USDT" and conn.books["ETH-USDT"].checksum_failures == 0
    off, resyncs2 = connector(verify_checksum=False)
    feed(off, snap("BTC-USDT", 10), bad)
    assert off.books["BTC-USDT"].live and not resyncs2 and off.books["BTC-USDT"].book.bids.raw is None


def test_the_current_feed_is_read_as_numbers_and_the_same_as_the_strings() -> None:
    from aggcore_plugin_okx.messages import parse, parse_numeric

    text = frame("BTC-USDT", "update", 10, 15, bids=[["99.9", "5", "0", "2"], ["99.85", "0", "0", "0"]], asks=[["1e2", "0.10", "0", "1"]])
    [n] = parse_numeric(text) or []
    [w] = parse(text)  # type: ignore[misc]
    assert n.numeric and n.bids == [(99.9, 5.0), (99.85, 0.0)] and n.asks == [(100.0, 0.1)]
    assert [tuple(map(float, lv[:2])) for lv in w.bids] == n.bids and [tuple(map(float, lv[:2])) for lv in w.asks] == n.asks
    assert (n.symbol, n.snapshot, n.first, n.last, n.checksum, n.exchange_ts) == (w.symbol, w.snapshot, w.first, w.last, w.checksum, w.exchange_ts)
    assert parse_numeric(_with_checksum(text, 5)) is None  # a checksum needs the wire strings
    assert parse_numeric(_with_checksum(text, 5), checksums=False) is not None
    assert parse_numeric('{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}') is None
    assert parse_numeric(text.replace('"0","2"]', '"0"]')) is None  # a level of another shape: the general path


def test_errors_become_health_errors() -> None:
    conn, _ = connector()
    feed(conn, snap("BTC-USDT", 10), snap("ETH-USDT", 10))
    feed(conn, '{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:ETH-USDT doesn\'t exist. Please use the correct URL, channel and parameters referring to API document.","connId":"x"}')
    assert conn.books["ETH-USDT"].state is BookState.FAILED and "60018" in (conn.books["ETH-USDT"].error or "")
    assert conn.books["BTC-USDT"].live
    feed(conn, '{"event":"error","code":"60012","msg":"Invalid request","connId":"x"}')
    assert conn.books["BTC-USDT"].live and "60012" in (conn.last_error or "")
    feed(conn, "pong", '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"x"}')
    assert conn.books["BTC-USDT"].live


def test_config_rejects_more_than_400_levels() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        OkxConfig(depth=401)
    with pytest.raises(ValidationError):
        OkxConfig(ping_after_s=30)
    with pytest.raises(ValidationError):
        OkxConfig(unknown_key=1)


def test_a_shallower_depth_keeps_the_channels_400_levels() -> None:
    """``books`` is always 400 levels and OKX never re-sends a level that stays inside them: a
    local book cut to ``depth`` would lose the level that moves up when a better one is deleted."""
    conn, resyncs = connector(depth=2)
    book = conn.books["BTC-USDT"]
    feed(conn, snap("BTC-USDT", 10).replace('["99.9","2","0","1"]', '["99.9","2","0","1"],["99.8","4","0","1"]'))
    feed(conn, frame("BTC-USDT", "update", 10, 11, bids=[["100.0", "0", "0", "0"]]))
    assert book.live and not resyncs
    assert book.book.bids.top(2) == [(99.9, 2.0), (99.8, 4.0)]


def test_internal_error_on_a_subscription_is_retried_not_failed() -> None:
    """``64007`` "Internal error" is the server's fault, not the instrument's: the book stays
    subscribable (retried later) instead of FAILED for the rest of the run."""
    conn, _ = connector()
    rid = conn._frame("subscribe", ["ETH-USDT"])["id"]
    feed(conn, '{"id":"%s","event":"error","code":"64007","msg":"Internal error, please try again later.","connId":"x"}' % rid)
    assert conn.books["ETH-USDT"].state is not BookState.FAILED
    assert conn.error_counts.get("exchange") == 1 and "64007" in (conn.last_error or "")
