"""The connector against the fake Crypto.com server over real sockets: sync, faults, errors, limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

import anyio
import orjson
import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, running as run_in_background, wait_until
from aggcore_plugin_cryptocom import CryptocomConfig, CryptocomConnector
from aggcore_plugin_cryptocom.fake import FakeCryptocom
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.anyio

A, B = "BTC_USDT", "ETH_USDT"
FAST = {"connect_delay_s": 0.0, "subscribe_retry_s": 0.05, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "stale_after_s": 5.0}


def fake(symbols: list[str] | None = None, **kwargs: Any) -> FakeCryptocom:
    # these tests connect and send at once (no connect wait): the exchange's pro-rated first
    # second would reject a request one time in a hundred; the tests of the rate limit turn it on
    kwargs.setdefault("prorate_first_second", False)
    kwargs.setdefault("rate_hz", 200)
    kwargs.setdefault("idle_delta_s", 0.1)
    return FakeCryptocom(symbols if symbols is not None else [A, B], seed=3, **kwargs)


@asynccontextmanager
async def running(fx: FakeCryptocom, **overrides: Any) -> AsyncIterator[CryptocomConnector]:
    config = CryptocomConfig(**fx.connector_config(**{**FAST, **overrides}))
    async with run_in_background(CryptocomConnector(config)) as conn:
        yield conn


def live(conn: CryptocomConnector, *syms: str) -> Callable[[], bool]:
    return lambda: all(s in conn.books and conn.books[s].state is BookState.LIVE for s in syms)


async def assert_truth(fx: FakeCryptocom, conn: CryptocomConnector, syms: tuple[str, ...] = (A, B), n: int | None = None) -> None:
    """Freeze the fake, wait until the client caught up, compare with the fake's truth."""
    fx.pause()
    try:
        n = n or conn.depth or 50

        def same() -> bool:
            for s in syms:
                book = conn.books[s]
                tb, ta = fx.books[s].truth(n)
                if book.state is not BookState.LIVE or book.book.bids.top(n) != tb or book.book.asks.top(n) != ta:
                    return False
            return True

        await wait_until(same, what="books equal to the fake's truth")
    finally:
        fx.resume()


async def test_entry_point_registered() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="aggcore")}
    assert eps.get("cryptocom") == "aggcore_plugin_cryptocom.plugin"
    from aggcore_plugin_cryptocom.plugin import aggcore_register_connectors

    assert aggcore_register_connectors() == [CryptocomConnector]


async def test_config_depth_validated() -> None:
    with pytest.raises(ValidationError):
        CryptocomConfig(depth=20)
    assert CryptocomConfig(depth=10).depth == 10
    assert CryptocomConnector(CryptocomConfig()).depth == 50


async def test_live_equals_truth_and_wire_frames() -> None:
    async with fake() as fx, running(fx, connect_delay_s=0.2) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        await assert_truth(fx, conn)
        (session,) = fx.sessions
        subs = [orjson.loads(t) for t in session.received if '"subscribe"' in t]
        assert {s["params"]["channels"][0] for s in subs} == {f"book.{A}.50", f"book.{B}.50"}
        for s in subs:
            assert len(s["params"]["channels"]) == 1 and isinstance(s["id"], int) and "nonce" in s
            assert s["params"]["book_subscription_type"] == "SNAPSHOT_AND_UPDATE"
            assert s["params"]["book_update_frequency"] == 100
        # the first request waited for connect_delay_s after the socket opened
        assert session.state["first_request"] - session.state["opened"] >= 0.18


async def test_depth_10_top_view() -> None:
    async with fake() as fx, running(fx, depth=10, book_update_frequency=10) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        for _ in range(3):
            await anyio.sleep(0.2)
            await assert_truth(fx, conn, n=10)
            assert all(len(conn.books[s].book.bids) <= 10 for s in (A, B))


async def test_idle_empty_deltas_keep_chain() -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.pause()
        before = conn.books[A].messages
        await anyio.sleep(0.5)
        book = conn.books[A]
        assert book.messages >= before + 3 and book.state is BookState.LIVE and book.gaps == 0 and book.resyncs == 0
        fx.resume()
        await assert_truth(fx, conn)


@pytest.mark.parametrize("fault", [Fault.GAP, Fault.REORDER, Fault.DUPLICATE])
@pytest.mark.parametrize("acks", [True, False], ids=["acks", "no-acks"])
async def test_sequence_faults_resync_one_symbol(fault: Fault, acks: bool) -> None:
    async with fake(send_acks=acks) as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(fault, A)
        await wait_until(lambda: conn.books[A].resyncs >= 1, what=f"{fault.value} -> resync")
        assert conn.books[A].gaps >= 1
        await wait_until(live(conn, A, B), what="LIVE again")
        assert conn.books[B].resyncs == 0 and conn.books[B].gaps == 0
        assert conn.reconnects == 0
        await assert_truth(fx, conn)
        # the resync was an unsubscribe + subscribe of that channel only
        unsubs = [orjson.loads(t) for t in fx.sessions[0].received if '"unsubscribe"' in t]
        assert unsubs and all(u["params"]["channels"] == [f"book.{A}.50"] for u in unsubs)


async def test_midstream_and_oversize_snapshot() -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(Fault.OVERSIZE_SNAPSHOT, A, levels=5000)
        fx.inject(Fault.SNAPSHOT, A)
        await anyio.sleep(0.2)
        assert len(conn.books[A].book.bids) <= 50
        assert conn.books[A].resyncs == 0
        await assert_truth(fx, conn)


async def test_disconnect_reconnects_and_resyncs() -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(Fault.DISCONNECT)
        await wait_until(lambda: conn.reconnects >= 1, what="reconnect")
        await wait_until(live(conn, A, B), what="LIVE after reconnect")
        await assert_truth(fx, conn)


async def test_maintenance_close_1013(caplog: pytest.LogCaptureFixture) -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.maintenance()
        await wait_until(lambda: conn.reconnects >= 1, what="reconnect")
        # the close is reported when it happens (last_error may already hold a later error: a
        # 42901 when the resubscription lands at the end of a calendar second's request budget)
        assert any("code 1013" in r.getMessage() for r in caplog.records if r.name.startswith("aggcore")), caplog.text
        await wait_until(live(conn, A, B), what="LIVE after maintenance")
        await assert_truth(fx, conn)


async def test_stall_goes_stale_then_recovers() -> None:
    async with fake() as fx, running(fx, stale_after_s=0.2) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(Fault.STALL, seconds=0.6)
        await wait_until(lambda: conn.books[A].state is not BookState.LIVE, what="STALE")
        assert conn.books[A].state in (BookState.STALE, BookState.RESYNCING, BookState.SYNCING)
        await wait_until(live(conn, A, B), what="LIVE after stall")
        await assert_truth(fx, conn)


async def test_malformed_frame_is_a_parse_error() -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(Fault.MALFORMED)
        await wait_until(lambda: conn.error_counts.get("parsing", 0) >= 1, what="parse error")
        assert live(conn, A, B)()
        await assert_truth(fx, conn)


async def test_error_reply_fails_that_symbol_only() -> None:
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        fx.inject(Fault.ERROR_REPLY, A, message="instrument suspended")
        await wait_until(lambda: conn.books[A].state is BookState.FAILED, what="FAILED")
        err = conn.books[A].error or ""
        assert "instrument suspended" in err and "10004" in err
        assert len(conn.books[A].book.bids) == 0  # no silent stale book
        await assert_truth(fx, conn, syms=(B,))


async def test_rejected_subscription_and_unknown_pair() -> None:
    # BTCUSD-PERP is in the instrument list but the fake has no book for it: its subscribe is rejected
    async with fake() as fx, running(fx, trading_pairs=["BTC/USDT", "ETH_USDT", "BTC/USD:USD", "DOGE/EUR"]) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        await wait_until(lambda: conn.books["BTCUSD-PERP"].state is BookState.FAILED, what="FAILED")
        assert "invalid channel" in (conn.books["BTCUSD-PERP"].error or "")
        assert "DOGE/EUR" in conn.pair_errors and "unknown symbol" in conn.pair_errors["DOGE/EUR"]
        await assert_truth(fx, conn)


async def test_subscription_cap_40107() -> None:
    async with fake(max_subscriptions=1) as fx, running(fx) as conn:
        await wait_until(lambda: any(b.state is BookState.FAILED for b in conn.books.values()), what="a FAILED book")
        failed = [s for s, b in conn.books.items() if b.state is BookState.FAILED]
        assert len(failed) == 1 and "EXCEED_MAX_SUBSCRIPTIONS" in (conn.books[failed[0]].error or "")
        other = B if failed[0] == A else A
        await wait_until(live(conn, other), what="the other LIVE")


async def test_connections_split_at_max_symbols() -> None:
    class Small(CryptocomConnector):
        max_symbols_per_connection = 1

    async with fake() as fx:
        config = CryptocomConfig(**fx.connector_config(**FAST))
        async with run_in_background(Small(config)) as conn:
            await wait_until(live(conn, A, B), what="LIVE")
            assert len(conn.connections) == 2 and len(fx.sessions) == 2


async def test_too_many_requests_retried() -> None:
    # one request per calendar second, pro-rated in the second the socket opened. Sent at once, the
    # first subscribe meets a budget of 0; if the connect crossed into the next second, the second
    # subscribe (20 ms later) meets a spent budget of 1. Either way one is rejected with 42901, then
    # retried. (With a 1 s connect wait the two could straddle a second boundary and both pass.)
    async with fake(max_requests_per_s=1, prorate_first_second=True) as fx, running(fx, connect_delay_s=0.0, subscribe_retry_s=0.3) as conn:
        await wait_until(lambda: conn.error_counts.get("rate_limit", 0) >= 1, timeout=4, what="42901")
        assert any("TOO_MANY_REQUESTS" in (b.error or "") for b in conn.books.values() if b.state is not BookState.LIVE)
        await wait_until(live(conn, A, B), timeout=8, what="both LIVE after retry")
        assert not any(b.state is BookState.FAILED for b in conn.books.values())


async def test_heartbeats_answered() -> None:
    async with fake(heartbeat_s=0.1, heartbeat_timeout_s=0.5) as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        await wait_until(lambda: fx.heartbeats_answered >= 5, what="heartbeat replies")
        assert fx.heartbeat_closes == 0 and conn.reconnects == 0
        replies = [orjson.loads(t) for t in fx.sessions[0].received if "respond-heartbeat" in t]
        assert all(set(r) == {"id", "method"} and isinstance(r["id"], int) for r in replies)


async def test_fake_closes_silent_client_with_1000() -> None:
    async with fake(heartbeat_s=0.1, heartbeat_timeout_s=0.2) as fx:
        async with connect(fx.ws_url) as ws:
            hb = orjson.loads(await ws.recv())
            assert hb["method"] == "public/heartbeat" and hb["code"] == 0
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_fake_rate_limit_and_bad_request() -> None:
    async with fake(prorate_first_second=True) as fx:
        async with connect(fx.ws_url) as ws:
            await ws.send('{"params": {}}')
            err = orjson.loads(await ws.recv())
            assert err["method"] == "ERROR" and err["id"] == -1 and err["code"] == 40001 and "original" in err
            # more than two seconds' budgets (100 a second): rejected even if the burst straddles
            # a calendar second
            for i in range(250):
                await ws.send(orjson.dumps({"id": i, "method": "unsubscribe", "params": {"channels": []}}).decode())
            codes = []
            with anyio.move_on_after(0.5):
                while len(codes) < 250:
                    codes.append(orjson.loads(await ws.recv())["code"])
            assert 42901 in codes


async def test_rest_429_retry_after_honoured() -> None:
    async with fake() as fx:
        fx.inject(Fault.REST_429, retry_after=0.5)
        started = time.monotonic()
        async with running(fx) as conn:
            await wait_until(live(conn, A, B), what="LIVE")
            assert time.monotonic() - started >= 0.5
            assert conn.error_counts.get("rate_limit", 0) == 1
            assert sum("get-instruments" in p for p in fx.rest_log) == 2


async def test_fake_snapshot_mode_and_acks() -> None:
    """Without ``book_subscription_type`` the server streams full snapshots; with it, ack + snapshot + deltas."""
    async with fake(rate_hz=50) as fx:
        async with connect(fx.ws_url) as ws:
            await ws.send(orjson.dumps({"id": 5, "method": "subscribe", "params": {"channels": [f"book.{A}.10"]}}).decode())
            ack = orjson.loads(await ws.recv())
            assert ack == {"id": 5, "method": "subscribe", "code": 0}
            channels = [orjson.loads(await ws.recv())["result"]["channel"] for _ in range(3)]
            assert channels == ["book", "book", "book"]
        async with connect(fx.ws_url) as ws:
            params = {"channels": [f"book.{A}.10"], "book_subscription_type": "SNAPSHOT_AND_UPDATE", "book_update_frequency": 10}
            await ws.send(orjson.dumps({"id": 6, "method": "subscribe", "params": params}).decode())
            assert orjson.loads(await ws.recv())["code"] == 0
            snap = orjson.loads(await ws.recv())["result"]
            assert snap["channel"] == "book" and snap["depth"] == 10 and len(snap["data"][0]["bids"]) <= 10
            prev = snap["data"][0]["u"]
            for _ in range(3):
                d = orjson.loads(await ws.recv())["result"]["data"][0]
                assert d["pu"] == prev and d["u"] > prev + 0 and "cs" in d
                prev = d["u"]


async def test_through_the_plugin_registry(fake_exchange: Any, connector_factory: Any) -> None:
    """What the conformance kit does: the fake named by ``fake_server`` and the registered connector."""
    fx = await fake_exchange("cryptocom", symbols=[A, B], seed=5, rate_hz=100)
    assert isinstance(fx, FakeCryptocom)
    conn = connector_factory("cryptocom", fx)
    assert isinstance(conn, CryptocomConnector)
    async with run_in_background(conn):
        await wait_until(live(conn, A, B), what="LIVE")
        await assert_truth(fx, conn)


async def test_fault_storm_never_leaves_a_wrong_live_book() -> None:
    """Frozen market, stepped by hand: after every fault the books come back LIVE and equal to truth."""
    async with fake() as fx, running(fx) as conn:
        await wait_until(live(conn, A, B), what="LIVE")
        faults = [Fault.GAP, Fault.REORDER, Fault.DUPLICATE, Fault.SNAPSHOT, Fault.GAP, Fault.DUPLICATE]
        fx.pause()
        try:
            for i, fault in enumerate(faults):
                sym = (A, B)[i % 2]
                fx.inject(fault, sym)
                fx.step(3)

                def settled() -> bool:
                    for s in (A, B):
                        book = conn.books[s]
                        tb, ta = fx.books[s].truth(50)
                        if book.state is not BookState.LIVE or book.book.bids.top(50) != tb or book.book.asks.top(50) != ta:
                            return False
                    return True

                await wait_until(settled, what=f"settled after {fault.value} on {sym}")
        finally:
            fx.resume()
        assert conn.books[A].resyncs >= 2 and conn.books[B].resyncs >= 2 and conn.reconnects == 0
