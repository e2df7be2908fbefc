"""The connector against FakeBitstamp over real sockets: sync, faults, errors, limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, running as run_in_background, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from aggcore_plugin_bitstamp import BitstampConfig, BitstampConnector
from aggcore_plugin_bitstamp.fake import FakeBitstamp

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(fake: FakeBitstamp, **overrides: Any) -> AsyncIterator[BitstampConnector]:
    settings: dict[str, Any] = dict(
        snapshot_delay_s=0.0,
        heartbeat_interval_s=0.2,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
        stale_after_s=2.0,
        refresh_interval_s=None,
    )
    settings.update(overrides)
    connector = BitstampConnector(BitstampConfig(**fake.connector_config(**settings)))
    async with run_in_background(connector):
        yield connector


def all_live(c: BitstampConnector, *symbols: str) -> Callable[[], bool]:
    return lambda: bool(c.books) and all(s in c.books and c.books[s].live for s in (symbols or c.books))


def failed(c: BitstampConnector, symbol: str) -> Callable[[], bool]:
    return lambda: symbol in c.books and c.books[symbol].state is BookState.FAILED


async def assert_truth(fake: FakeBitstamp, c: BitstampConnector, *symbols: str, n: int = 25) -> None:
    """Pause the flow, wait until the client caught up, compare the top ``n`` with the fake's truth."""
    fake.pause()
    try:
        for sym in symbols or tuple(c.books):

            def same(sym: str = sym) -> bool:
                book = c.books[sym]
                return book.live and (book.book.bids.top(n), book.book.asks.top(n)) == fake.books[sym].truth(n)

            await wait_until(same, 3.0, what=f"{sym} to equal the truth")
    finally:
        fake.resume()


async def test_subscribes_syncs_and_heartbeats() -> None:
    async with FakeBitstamp(seed=1, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        await assert_truth(fake, c)
        session = fake.sessions[0]
        for sym in ("btcusd", "ethusd"):
            assert f'{{"event":"bts:subscribe","data":{{"channel":"diff_order_book_{sym}"}}}}' in session.received
        await wait_until(lambda: '{"event":"bts:heartbeat"}' in session.received, 2.0, what="a heartbeat")
        assert all(len(f.encode()) < 512 for f in session.received)
        assert any("/api/v2/order_book/btcusd/" in p for p in fake.rest_log)
        assert c.errors == 0, c.last_error


async def test_snapshot_lagging_the_stream_still_syncs() -> None:
    """REST answers a few steps behind the stream: buffered diffs on both sides of the snapshot."""
    async with FakeBitstamp(seed=2, rate_hz=400, rest_lag_steps=4) as fake, running(fake, snapshot_delay_s=0.05) as c:
        await wait_until(all_live(c), what="LIVE")
        await assert_truth(fake, c)
        for _ in range(3):
            c.books["btcusd"].resync("test")
            await wait_until(all_live(c, "btcusd"), what="btcusd LIVE again")
        await assert_truth(fake, c)
        assert sum(b.dropped_stale for b in c.books.values()) > 0


async def test_snapshot_older_than_a_held_diff_is_fetched_again() -> None:
    """A REST book older than a diff we already held would silently miss diffs: fetch it again."""
    async with FakeBitstamp(seed=17, rate_hz=200) as fake, running(fake, snapshot_delay_s=0.1) as c:
        await wait_until(all_live(c), what="LIVE")
        await anyio.sleep(0.4)  # let the fake's history fill up
        fetched = fake.rest_log.count("/api/v2/order_book/btcusd/")
        fake.stale_snapshots = 1
        c.books["btcusd"].resync("test")
        await wait_until(lambda: fake.rest_log.count("/api/v2/order_book/btcusd/") >= fetched + 2, what=f"a second fetch {fetched} {fake.rest_log}")
        await wait_until(all_live(c, "btcusd"), what="btcusd LIVE")
        await assert_truth(fake, c)


async def test_pair_names_are_validated_against_the_catalog() -> None:
    async with FakeBitstamp(seed=3, rate_hz=200) as fake, running(fake, trading_pairs=["BTCUSD", "ETH/USD", "XRP/USD", "dogeusd"]) as c:
        await wait_until(all_live(c), what="LIVE")
        assert set(c.books) == {"btcusd", "ethusd"}
        assert set(c.pair_errors) == {"XRP/USD", "dogeusd"}
        assert not any("xrp" in f or "doge" in f for f in fake.sessions[0].received)
        await assert_truth(fake, c)


async def test_catalog_pair_without_book_fails_clearly() -> None:
    """The catalog lists ethusd but the exchange has no book for it: the channel is acked and
    silent, REST answers 404: the book fails with that reason instead of sitting empty."""
    async with FakeBitstamp(["btcusd"], seed=4, rate_hz=200) as fake, running(fake, trading_pairs=["btcusd", "ethusd"]) as c:
        await wait_until(failed(c, "ethusd"), what="ethusd FAILED")
        assert "404" in (c.books["ethusd"].error or "")
        await wait_until(all_live(c, "btcusd"), what="btcusd LIVE")
        await assert_truth(fake, c, "btcusd")


async def test_rejected_subscription_fails_only_that_symbol() -> None:
    """``bts:error`` names no channel: it answers the oldest unacknowledged subscription."""
    async with FakeBitstamp(seed=5, rate_hz=200, reject={"diff_order_book_btcusd"}) as fake, running(fake) as c:
        await wait_until(failed(c, "btcusd"), what="btcusd FAILED")
        assert "Invalid channel provided." in (c.books["btcusd"].error or "")
        await wait_until(all_live(c, "ethusd"), what="ethusd LIVE")
        await assert_truth(fake, c, "ethusd")


async def test_error_reply_fault() -> None:
    async with FakeBitstamp(seed=6, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        resyncs = c.books["btcusd"].resyncs
        fake.inject(Fault.ERROR_REPLY, "btcusd", message="Connection is unauthorized.")
        # a transient error: btcusd resyncs (resubscribed, fresh snapshot), ethusd goes on
        await wait_until(lambda: c.books["btcusd"].resyncs > resyncs, what="btcusd resynced")
        assert "Connection is unauthorized." in (c.last_error or "") or "unauthorized" in (c.books["btcusd"].error or "")
        assert c.books["ethusd"].live
        await wait_until(all_live(c), what="btcusd LIVE again")
        await assert_truth(fake, c)


async def test_duplicate_diff_is_dropped() -> None:
    async with FakeBitstamp(seed=7, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        dropped = c.books["btcusd"].dropped_stale
        fake.inject(Fault.DUPLICATE, "btcusd")
        await wait_until(lambda: c.books["btcusd"].dropped_stale > dropped, what="the duplicate dropped")
        await assert_truth(fake, c)
        assert c.books["btcusd"].resyncs == 0 and c.books["ethusd"].resyncs == 0


async def test_crossed_book_reseeds_that_symbol_only() -> None:
    async with FakeBitstamp(seed=8, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        fake.send_crossing("btcusd")
        await wait_until(lambda: c.books["btcusd"].crossed_books == 1, what="crossed book seen")
        await wait_until(all_live(c, "btcusd"), what="btcusd LIVE again")
        assert c.books["ethusd"].live and c.books["ethusd"].resyncs == 0
        await assert_truth(fake, c)


async def test_disconnect_reconnects_and_reseeds() -> None:
    async with FakeBitstamp(seed=9, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        snapshots = sum("order_book" in p for p in fake.rest_log)
        fake.inject(Fault.DISCONNECT)
        await wait_until(lambda: c.reconnects >= 1, what="a reconnect")
        await wait_until(all_live(c), what="LIVE after reconnect")
        assert sum("order_book" in p for p in fake.rest_log) >= snapshots + 2
        await assert_truth(fake, c)


async def test_request_reconnect_reconnects_within_seconds() -> None:
    async with FakeBitstamp(seed=10, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        first = fake.sessions[0]
        fake.request_reconnect(close_after_s=3.0)
        await wait_until(lambda: c.reconnects >= 1, 1.5, what="the client's own reconnect")
        assert first not in fake.sessions  # we left before the server closed us
        assert c.error_counts.get("maintenance") == 1
        await wait_until(all_live(c), what="LIVE after maintenance")
        await assert_truth(fake, c)


async def test_stall_marks_stale_then_recovers() -> None:
    async with FakeBitstamp(seed=11, rate_hz=200) as fake, running(fake, stale_after_s=0.3) as c:
        await wait_until(all_live(c), what="LIVE")
        fake.inject(Fault.STALL, seconds=0.8)
        await wait_until(lambda: c.books["btcusd"].state is BookState.STALE, 2.0, what="STALE")
        await wait_until(all_live(c), 3.0, what="LIVE after the stall")
        await assert_truth(fake, c)


async def test_malformed_frame_is_a_parse_error_not_a_crash() -> None:
    async with FakeBitstamp(seed=12, rate_hz=200) as fake, running(fake) as c:
        await wait_until(all_live(c), what="LIVE")
        fake.inject(Fault.MALFORMED)
        await wait_until(lambda: c.error_counts.get("parsing", 0) == 1, what="a parsing error")
        assert c.reconnects == 0
        await assert_truth(fake, c)


async def test_rest_429_retry_after_is_honoured() -> None:
    async with FakeBitstamp(seed=13, rate_hz=200) as fake:
        fake.inject(Fault.REST_429, retry_after=0.4)
        started = time.monotonic()
        async with running(fake) as c:
            await wait_until(lambda: c.symbols is not None, what="the catalog")
            assert time.monotonic() - started >= 0.4
            assert c.error_counts.get("rate_limit") == 1
            await wait_until(all_live(c), what="LIVE")
            await assert_truth(fake, c)


async def test_oversize_snapshot() -> None:
    async with FakeBitstamp(seed=14, rate_hz=200) as fake:
        fake.inject(Fault.OVERSIZE_SNAPSHOT, "btcusd", levels=5000)
        async with running(fake) as c:
            await wait_until(all_live(c), what="LIVE")
            b = c.books["btcusd"]
            assert len(b.book.bids) > 5000, (b.resyncs, b.crossed_books, b.error, fake.rest_log, c.error_counts)
            await assert_truth(fake, c)


async def test_refresh_keeps_live_book_and_repairs_a_lost_diff() -> None:
    """A diff lost without trace (Bitstamp has no sequence) is repaired by the periodic refresh."""
    async with FakeBitstamp(seed=15, rate_hz=200) as fake, running(fake, refresh_interval_s=0.3) as c:
        await wait_until(all_live(c), what="LIVE")
        fake.inject(Fault.GAP, "btcusd")  # undetectable on the wire
        await wait_until(lambda: not fake.faults, what="the diff dropped")
        fake.pause()
        await wait_until(lambda: c.refresh_mismatches >= 1, 3.0, what="the refresh to notice")
        fake.resume()
        assert c.books["btcusd"].live
        await assert_truth(fake, c)


async def test_fake_speaks_bitstamp_errors_and_limits() -> None:
    async with FakeBitstamp(seed=16, rate_hz=200) as fake:
        async with connect(fake.ws_url) as ws:
            for frame, message in (
                ("not json", "Incorrect JSON format."),
                ('{"event":"bts:ping"}', "Bad subscription string."),
                ('{"event":"bts:subscribe","data":{}}', "Bad subscription string."),
                ('{"event":"bts:subscribe","data":{"channel":"diff_order_book_BTCUSD"}}', "Invalid channel provided."),
            ):
                await ws.send(frame)
                reply = orjson.loads(await ws.recv())
                assert reply == {"event": "bts:error", "channel": "", "data": {"code": None, "message": message}}
            await ws.send('{"event":"bts:heartbeat"}')
            assert orjson.loads(await ws.recv()) == {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}
            await ws.send('{"event":"bts:subscribe","data":{"channel":"diff_order_book_xrpusd"}}')
            ack = orjson.loads(await ws.recv())
            assert ack == {"event": "bts:subscription_succeeded", "channel": "diff_order_book_xrpusd", "data": {}}
            with pytest.raises(TimeoutError):  # unknown lowercase pair: acknowledged, then silent
                with anyio.fail_after(0.2):
                    await ws.recv()
            await ws.send('{"event":"bts:subscribe","data":{"channel":"' + "x" * 600 + '"}}')
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with connect(fake.ws_url) as ws:
            for i in range(1025):
                await ws.send('{"event":"bts:subscribe","data":{"channel":"live_trades_p%d"}}' % i)
            with pytest.raises(ConnectionClosed):
                with anyio.fail_after(3):
                    while True:
                        await ws.recv()


async def test_ack_timeout_counts_from_when_the_subscription_is_sent() -> None:
    """Subscriptions leave at the connector's message rate (one channel per frame, up to 1,000 per
    connection: 20 s at 50/s), so a channel queued behind hundreds of others must not be failed
    for a missing ack before its frame even went out."""
    from aggcore.testing import InstrumentSpec

    pairs = {f"c{i:02d}usd": InstrumentSpec(f"C{i:02d}", "USD", mid=100.0 + i) for i in range(40)}
    async with FakeBitstamp(pairs, seed=18, rate_hz=50) as fake, running(fake, ack_timeout_s=0.3) as c:
        # 42 frames at 50/s take ~0.8 s to send: far longer than the 0.3 s ack timeout
        await wait_until(all_live(c), 5.0, what="every book LIVE")
        assert not [s for s, b in c.books.items() if b.state is BookState.FAILED]
        assert c.error_counts.get("timeout", 0) == 0, c.last_error
