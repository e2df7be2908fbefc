"""The OKX connector against FakeOkx over real sockets on 127.0.0.1.

Every fault: the faulty instrument resyncs (or shrugs it off), the other stays LIVE, and no
book is ever LIVE with content differing from the fake's truth. With ``checksums=True`` the
fake sends real CRC32s (the pre-2026 feed), so every message also verifies the whole top 25.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, running as run_in_background, wait_until
from aggcore_plugin_okx.connector import OkxConfig, OkxConnector
from aggcore_plugin_okx.fake import FakeOkx

A, B = "BTC-USDT", "BTC-USDT-SWAP"
FAST = {"stale_after_s": 2.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "request_timeout_s": 2.0}


@asynccontextmanager
async def running(
    fake_kw: dict[str, Any] | None = None, fake_cls: type[FakeOkx] = FakeOkx, **cfg: Any
) -> AsyncIterator[tuple[FakeOkx, OkxConnector]]:
    kw: dict[str, Any] = {"seed": 7, "rate_hz": 100.0, "idle_heartbeat_s": 0.3}
    kw.update(fake_kw or {})
    symbols = kw.pop("symbols", [A, B])
    async with fake_cls(symbols, **kw) as fake:
        config = OkxConfig.model_validate(fake.connector_config(**{**FAST, **cfg}))
        async with run_in_background(OkxConnector(config), wait_setup=True) as conn:
            yield fake, conn


def live(conn: OkxConnector, *syms: str) -> bool:
    return all(conn.books[s].live for s in syms)


async def assert_truth(fake: FakeOkx, conn: OkxConnector, syms: tuple[str, ...] = (A, B), n: int = 25) -> None:
    """Pause the flow, wait until caught up, compare top-n with the fake's truth."""
    fake.pause()
    try:

        def caught_up() -> bool:
            for s in syms:
                tb, ta = fake.books[s].truth(n)
                b = conn.books[s]
                if not b.live or b.book.bids.top(n) != tb or b.book.asks.top(n) != ta:
                    return False
            return True

        await wait_until(caught_up, timeout=5.0, what="books equal to the fake's truth")
    finally:
        fake.resume()


def no_wrong_book(conn: OkxConnector) -> None:
    for b in conn.books.values():
        assert b.crossed_books == 0, b.error
        assert b.checksum_failures == 0, b.error


@pytest.mark.anyio
async def test_live_and_equal_to_truth() -> None:
    async with running({"symbols": [A, B, "ETH-USDT"]}, trading_pairs=["BTC/USDT", "BTC/USDT:USDT", "ETH-USDT"]) as (fake, conn):
        await wait_until(lambda: live(conn, A, B, "ETH-USDT"), what="LIVE")
        await anyio.sleep(0.2)
        await assert_truth(fake, conn, (A, B, "ETH-USDT"))
        [session] = fake.sessions
        first = session.received[0]
        assert '"op":"subscribe"' in first and '"channel":"books"' in first and '"instId":"BTC-USDT-SWAP"' in first
        assert conn.errors == 0


@pytest.mark.anyio
async def test_real_checksums_verified_over_the_wire() -> None:
    async with running({"checksums": True}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B) and conn.books[A].messages > 50, what="50 verified messages")
        no_wrong_book(conn)
        assert conn.books[A].resyncs == 0
        await assert_truth(fake, conn)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [Fault.GAP, Fault.REORDER, Fault.BAD_CHECKSUM])
async def test_sequence_faults_resync_one_symbol(fault: Fault) -> None:
    async with running({"checksums": fault is Fault.BAD_CHECKSUM}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        other = conn.books[B].resyncs
        fake.inject(fault, A)
        await wait_until(lambda: conn.books[A].resyncs >= 1, what=f"{fault} -> resync")
        await wait_until(lambda: live(conn, A, B), what="LIVE again")
        assert conn.books[B].resyncs == other and conn.books[B].live
        if fault is Fault.BAD_CHECKSUM:
            assert conn.books[A].checksum_failures == 1
        else:
            assert conn.books[A].gaps == 1
            no_wrong_book(conn)
        await assert_truth(fake, conn)
        unsub = [m for s in fake.sessions for m in s.received if '"op":"unsubscribe"' in m]
        assert len(unsub) == 1 and A in unsub[0] and B not in unsub[0]


@pytest.mark.anyio
async def test_duplicate_is_dropped() -> None:
    async with running({"checksums": True}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.DUPLICATE, A)
        await wait_until(lambda: conn.books[A].dropped_stale >= 1, what="duplicate dropped")
        assert conn.books[A].resyncs == 0 and live(conn, A, B)
        no_wrong_book(conn)
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_snapshot_mid_stream_and_oversize_snapshot() -> None:
    async with running({"checksums": True}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.SNAPSHOT, A)
        await anyio.sleep(0.2)
        assert live(conn, A, B) and conn.books[A].resyncs == 0
        fake.inject(Fault.OVERSIZE_SNAPSHOT, A, levels=5000)
        fake.inject(Fault.GAP, A)  # the resubscription gets the oversize snapshot
        await wait_until(lambda: conn.books[A].resyncs == 1 and live(conn, A), what="resynced")
        assert len(conn.books[A].book.bids) <= 400 and len(conn.books[A].book.asks) <= 400
        no_wrong_book(conn)
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_disconnect_reconnects_and_resubscribes() -> None:
    async with running() as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.DISCONNECT)
        await wait_until(lambda: conn.reconnects >= 1, what="reconnect")
        await wait_until(lambda: live(conn, A, B), what="LIVE after reconnect")
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_malformed_frame_is_a_parse_error_not_a_crash() -> None:
    async with running() as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.MALFORMED)
        await wait_until(lambda: conn.error_counts.get("parsing", 0) == 1, what="parse error")
        assert live(conn, A, B) and conn.reconnects == 0
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_stall_goes_stale_then_pings_and_recovers() -> None:
    async with running(stale_after_s=0.3, ping_after_s=0.2) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.STALL, seconds=1.0)
        await wait_until(lambda: conn.books[A].state is BookState.STALE, what="STALE")
        await wait_until(lambda: fake.pings >= 1, what="ping")
        await wait_until(lambda: live(conn, A, B), timeout=5, what="LIVE after the stall")
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_idle_ping_pong_keeps_the_connection() -> None:
    async with running({"idle_heartbeat_s": 60.0}, ping_after_s=0.2, stale_after_s=5.0) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.pause()
        await wait_until(lambda: fake.pings >= 3, what="3 pings")
        assert conn.reconnects == 0 and live(conn, A, B)
        fake.resume()


@pytest.mark.anyio
async def test_idle_heartbeats_and_maintenance_reset_keep_the_book_live() -> None:
    async with running({"checksums": True, "idle_heartbeat_s": 0.1}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.pause()
        seen = conn.books[A].messages
        await wait_until(lambda: conn.books[A].messages >= seen + 2, what="idle heartbeats")
        fake.resume()
        fake.reset_sequence(A, to=3)
        await wait_until(lambda: conn.books[A].last_seq is not None and conn.books[A].last_seq < 1000, what="reset seen")
        await anyio.sleep(0.1)
        assert conn.books[A].resyncs == 0 and conn.books[A].gaps == 0 and live(conn, A, B)
        no_wrong_book(conn)
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_error_reply_fails_that_symbol_only() -> None:
    async with running() as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(Fault.ERROR_REPLY, A)
        await wait_until(lambda: conn.books[A].state is BookState.FAILED, what="FAILED")
        assert "60018" in (conn.books[A].error or "")
        await anyio.sleep(0.1)
        assert conn.books[B].live
        await assert_truth(fake, conn, (B,))


@pytest.mark.anyio
async def test_unknown_instruments() -> None:
    # XRP is not in the instrument list; ETH-USDT is listed but the server rejects it (60018)
    async with running({"symbols": [A, B]}, trading_pairs=["BTC/USDT", "XRP/USDT", "ETH-USDT", "BTC/USDT:USDT"]) as (fake, conn):
        await wait_until(lambda: live(conn, A, B) and conn.books["ETH-USDT"].state is BookState.FAILED)
        assert "XRP/USDT" in conn.pair_errors and "XRP" not in "".join(conn.books)
        assert "60018" in (conn.books["ETH-USDT"].error or "")
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_maintenance_notice_reconnects() -> None:
    async with running() as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.notice()
        await wait_until(lambda: conn.reconnects >= 1, what="reconnect after 64008")
        assert conn.error_counts.get("maintenance") == 1
        await wait_until(lambda: live(conn, A, B))
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_rest_snapshot_mode() -> None:
    async with running({"inband_snapshot": False, "checksums": True}) as (fake, conn):
        assert conn.config.snapshot_source == "rest"
        await wait_until(lambda: live(conn, A, B), what="LIVE from REST snapshots")
        assert sum("/api/v5/market/books?" in p for p in fake.rest_log) == 2
        assert all("sz=400" in p for p in fake.rest_log if "/market/books" in p)
        fake.inject(Fault.GAP, A)
        await wait_until(lambda: conn.books[A].resyncs == 1 and live(conn, A), what="resync by REST")
        assert sum("/api/v5/market/books?instId=BTC-USDT&" in p for p in fake.rest_log) == 2
        assert not any('"op":"unsubscribe"' in m for s in fake.sessions for m in s.received)
        no_wrong_book(conn)
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_rest_mode_ignores_a_still_present_inband_snapshot() -> None:
    async with running({"inband_snapshot": True}, snapshot_source="rest") as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        assert sum("/api/v5/market/books?" in p for p in fake.rest_log) == 2
        await assert_truth(fake, conn)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [Fault.REST_429, Fault.REST_418])
async def test_rest_rate_limit_honours_retry_after(fault: Fault) -> None:
    async with running({"inband_snapshot": False}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        fake.inject(fault, retry_after=0.6)
        fake.inject(Fault.GAP, A)
        started = time.monotonic()
        await wait_until(lambda: conn.books[A].resyncs == 1 and live(conn, A), what="resynced after the 429")
        assert time.monotonic() - started >= 0.6
        assert conn.error_counts.get("rate_limit") == 1
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_rest_unknown_instrument_fails_the_symbol() -> None:
    async with running({"inband_snapshot": False}) as (fake, conn):
        await wait_until(lambda: live(conn, A, B))
        del fake.books[A]  # the exchange delists it: the next snapshot answers 51001
        conn.request_resync(A, "test")
        conn.books[A].resync("test")
        await wait_until(lambda: conn.books[A].state is BookState.FAILED, what="51001 -> FAILED")
        assert "51001" in (conn.books[A].error or "")
        assert conn.books[B].live


class LosesFirstSubscribe(FakeOkx):
    """A server that silently loses the first subscribe request (no ack, no snapshot)."""

    lost = False

    def on_message(self, session: Any, text: str) -> None:
        if not self.lost and '"op":"subscribe"' in text:
            self.lost = True
            return
        super().on_message(session, text)


@pytest.mark.anyio
async def test_lost_subscription_is_retried() -> None:
    async with running(fake_cls=LosesFirstSubscribe, sync_timeout_s=0.3) as (fake, conn):
        await wait_until(lambda: live(conn, A, B), what="LIVE after subscribing again")
        assert sum('"op":"subscribe"' in m for s in fake.sessions for m in s.received) == 3  # 1 lost + 1 per symbol
        await assert_truth(fake, conn)


@pytest.mark.anyio
async def test_connection_attempts_stay_under_3_per_second_per_ip() -> None:
    """OKX: "Connection limit: 3 requests per second (based on IP)": with many connections (29
    instruments each) the opens of one connector are spaced, at startup and on reconnects."""
    opened: list[float] = []

    class Opened:
        async def __aenter__(self) -> object:
            opened.append(time.monotonic())
            return object()

        async def __aexit__(self, *exc: object) -> None:
            return None

    conn = OkxConnector(OkxConfig(), ws_connect=lambda url, **kw: Opened())

    async def open_one() -> None:
        async with conn.ws_connect("wss://ws.okx.com:8443/ws/v5/public"):
            pass

    async with anyio.create_task_group() as tg:
        for _ in range(7):
            tg.start_soon(open_one)
    opened.sort()
    assert len(opened) == 7
    for i in range(3, 7):
        assert opened[i] - opened[i - 3] >= 0.95, opened
