"""Real data: replay OKX.ws.1.0 (2022-05-13, real non-zero checksums) through the connector.

Every ``books`` message the exchange sent carries its CRC32 of the top 25 levels; the book
is verified against it after every message, so a single wrong level would fail the replay.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aggcore.models import BookState
from aggcore.symbols import Instrument, SymbolTable
from aggcore.testing import running, wait_until
from aggcore.testing.recordings import recording
from aggcore.testing.replay import RecordingServer
from aggcore_plugin_okx.connector import OkxConfig, OkxConnector
from aggcore_plugin_okx.messages import Event, checksum, parse

RECORDED = ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"]


def offline_connector(**cfg: Any) -> OkxConnector:
    conn = OkxConnector(OkxConfig(trading_pairs=RECORDED, **cfg))
    conn.symbols = SymbolTable(
        [
            Instrument("BTC-USDT", "BTC", "USDT"),
            Instrument("UNI-USD-SWAP", "UNI", "USD", settle="UNI", kind="swap"),
            Instrument("BTC-USD-220527", "BTC", "USD", settle="BTC", kind="future"),
        ]
    )
    for sym in RECORDED:
        conn.books[sym] = conn.make_book(conn.symbols.by_symbol[sym])
    return conn


def test_every_recorded_checksum_matches_our_book() -> None:
    rec = recording("OKX.ws.1.0")
    conn = offline_connector()
    verified = 0
    for frame in rec.frames():
        parsed = parse(frame.text)
        if not isinstance(parsed, Event):
            verified += sum(1 for u in parsed if u.checksum)
        conn.on_frame(None, frame.text, 1)  # type: ignore[arg-type]  # events need no connection here
        if not isinstance(parsed, Event):
            for u in parsed:  # recompute independently right after the message
                assert checksum(conn.books[u.symbol].book) == u.checksum, u
    print(f"OKX.ws.1.0: {verified} exchange checksums verified")
    assert verified == 290  # snapshots + updates of the 3 instruments, all non-zero
    for book in conn.books.values():
        assert book.state is BookState.LIVE, (book.symbol, book.error)
        assert book.checksum_failures == 0 and book.resyncs == 0 and book.crossed_books == 0
    assert sum(b.messages for b in conn.books.values()) == 290
    assert conn.errors == 0


def test_a_corrupted_recorded_level_is_caught() -> None:
    rec = recording("OKX.ws.1.0")
    conn = offline_connector()
    frames = [f.text for f in rec.frames()]
    updates = [i for i, t in enumerate(frames) if '"channel":"books","instId":"BTC-USDT"},"action":"update"' in t]
    target = updates[3]
    msg = orjson.loads(frames[target])
    level = (msg["data"][0]["bids"] or msg["data"][0]["asks"])[0]
    level[1] = str(float(level[1]) + 1.0)  # one wrong size
    frames[target] = orjson.dumps(msg).decode()
    for text in frames[: target + 1]:
        conn.on_frame(None, text, 1)  # type: ignore[arg-type]
    book = conn.books["BTC-USDT"]
    assert book.checksum_failures == 1 and book.state is BookState.RESYNCING
    assert conn.books["UNI-USD-SWAP"].live and conn.books["BTC-USD-220527"].live


def test_our_subscribe_frame_has_the_recorded_shape() -> None:
    rec = recording("OKX.ws.1.0")
    sent = [orjson.loads(t) for t in rec.sent()]
    recorded = sent[-1]
    conn = offline_connector()
    [ours] = conn.subscribe_frames(RECORDED)
    assert isinstance(ours, dict)
    assert ours["op"] == recorded["op"] == "subscribe"
    books_args = [a for a in recorded["args"] if a["channel"] == "books"]
    assert ours["args"] == books_args
    assert rec.url == OkxConnector.ws_url


@pytest.mark.anyio
async def test_capture_served_over_loopback_to_the_real_connector() -> None:
    """The 2022 capture and instrument lists, played by aggcore's RecordingServer."""
    server = RecordingServer.from_names("OKX.ws.1.0", rest=["OKX.0"])
    async with server:
        config = OkxConfig(
            ws_url=server.ws_url,
            rest_url=server.rest_url,
            trading_pairs=["BTC/USDT", "UNI/USD:UNI", "BTC-USD-220527"],
            inst_types=["SPOT", "SWAP", "FUTURES"],
            stale_after_s=30,
        )
        async with running(OkxConnector(config), wait_setup=True) as conn:
            assert set(conn.books) == set(RECORDED) and not conn.pair_errors
            await wait_until(server.done.is_set, timeout=20, what="the capture to be played")
            await wait_until(lambda: sum(b.messages for b in conn.books.values()) == 290, what="290 book messages")
            for book in conn.books.values():
                assert book.live and book.checksum_failures == 0 and book.resyncs == 0, (book.symbol, book.error)
