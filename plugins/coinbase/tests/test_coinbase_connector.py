"""The connector against FakeCoinbase over real sockets: sync, faults, errors, limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, InstrumentSpec, running as run_in_background, wait_until
from aggcore_plugin_coinbase import CoinbaseConfig, CoinbaseConnector
from aggcore_plugin_coinbase.fake import FakeCoinbase
from websockets.asyncio.client import connect

pytestmark = pytest.mark.anyio

FAST = {"stale_after_s": 5.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.3, "ack_timeout_s": 0.3}


@asynccontextmanager
async def running(fake: FakeCoinbase, **overrides: Any) -> AsyncIterator[CoinbaseConnector]:
    config = CoinbaseConfig(**fake.connector_config(**{**FAST, **overrides}))
    async with run_in_background(CoinbaseConnector(config)) as conn:
        yield conn


def all_live(c: CoinbaseConnector, syms: list[str] | None = None) -> bool:
    syms = syms or list(c.books)
    return bool(syms) and all(s in c.books and c.books[s].live for s in syms)


async def assert_truth(fake: FakeCoinbase, c: CoinbaseConnector, syms: list[str] | None = None, n: int = 25) -> None:
    """Freeze the fake, wait until the client caught up, compare top-n with the truth."""
    syms = syms or list(c.books)
    fake.pause()
    try:

        def matches() -> bool:
            for s in syms:
                book = c.books[s]
                bids, asks = fake.books[fake.canonical(s)].truth(n)
                if not book.live or book.book.bids.top(n) != bids or book.book.asks.top(n) != asks:
                    return False
            return True

        await wait_until(matches, 5.0, what=f"books {syms} to equal the fake's truth")
    finally:
        fake.resume()


def sent(fake: FakeCoinbase) -> list[dict[str, Any]]:
    return [orjson.loads(t) for s in fake.sessions for t in s.received]


async def test_subscribes_reaches_live_and_matches_truth() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=1, rate_hz=100) as fake:
        async with running(fake, trading_pairs=["BTC/USD", "ETH-USD", "BTC/USDC"]) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            await assert_truth(fake, c)
            frames = sent(fake)
            assert {"type": "subscribe", "channel": "heartbeats"} in frames  # no product_ids: not even []
            assert {"type": "subscribe", "product_ids": ["BTC-USDC"], "channel": "level2"} in frames
            assert all("channels" not in f for f in frames)
            # one product per connection by default; BTC-USDC data arrives as BTC-USD
            assert len(fake.sessions) == 3
            assert c.books["BTC-USDC"].pair == "BTC/USDC"
            await wait_until(lambda: all("heartbeat" in conn.state for conn in c.connections.values()), 3, what="heartbeats")
            assert fake.rate_violations == 0 and c.connection_gaps == 0 and fake.closed_for_deadline == 0


async def test_gap_resyncs_that_product_only() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=2, rate_hz=100) as fake:
        async with running(fake) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            fake.inject(Fault.GAP, "BTC-USD")
            await wait_until(lambda: c.books["BTC-USD"].resyncs >= 1, what="resync")
            await wait_until(lambda: all_live(c), what="LIVE again")
            assert c.books["ETH-USD"].resyncs == 0 and c.books["ETH-USD"].gaps == 0
            assert "sequence_num gap" in (c.books["BTC-USD"].error or "") or c.books["BTC-USD"].live
            await assert_truth(fake, c)
            ops = [(f["type"], f.get("product_ids", [])) for f in sent(fake) if f["channel"] == "level2"]
            assert ("unsubscribe", ["BTC-USD"]) in ops and ops.count(("subscribe", ["BTC-USD"])) == 2


# a public client's log (hummingbot PR 6458, 2023-10-23), as JSON: sequence_num 150 -> 158 on two
# heartbeats frames carrying one heartbeat_counter
HEARTBEAT_150 = (
    '{"channel": "heartbeats", "client_id": "", "timestamp": "2023-10-23T14:43:13.362842145Z", "sequence_num": 150,'
    ' "events": [{"current_time": "2023-10-23 14:43:13.362521689 +0000 UTC m=+425760.164580852", "heartbeat_counter": 14191}]}'
)
HEARTBEAT_158 = (
    '{"channel": "heartbeats", "client_id": "", "timestamp": "2023-10-23T14:43:13.362762774Z", "sequence_num": 158,'
    ' "events": [{"current_time": "2023-10-23 14:43:13.362521689 +0000 UTC m=+425760.164580852", "heartbeat_counter": 14191}]}'
)


async def test_a_sequence_jump_on_a_repeated_heartbeat_resyncs_nothing() -> None:
    async with FakeCoinbase(["BTC-USD"], seed=4, rate_hz=50) as fake:
        async with running(fake) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            (session,) = fake.sessions
            # the verbatim pair, shifted into the connection's numbering (the jump of 8 kept)
            base = session.state["seq"] + 1 - 150
            session.send_soon(HEARTBEAT_150.replace('"sequence_num": 150', f'"sequence_num": {150 + base}'))
            session.send_soon(HEARTBEAT_158.replace('"sequence_num": 158', f'"sequence_num": {158 + base}'))
            session.state["seq"] = 158 + base  # the fake goes on after it
            await wait_until(lambda: c.sequence_skips == 1, what="the jump seen")
            await anyio.sleep(0.3)  # more data after it
            book = c.books["BTC-USD"]
            assert c.connection_gaps == 0 and book.resyncs == 0 and book.gaps == 0 and book.live
            await assert_truth(fake, c)
            # a jump on data is still a gap
            fake.inject(Fault.GAP, "BTC-USD")
            await wait_until(lambda: c.connection_gaps == 1 and book.resyncs == 1, what="a real gap resyncs")
            await wait_until(lambda: all_live(c), what="LIVE again")


class _SnapshotOnceFor(FakeCoinbase):
    """ETH-USD gets its first snapshot only: after a resubscribe it waits (as a lost snapshot would)."""

    eth_snapshots = 0

    def snapshot_frames(self, session: Any, symbol: str) -> list[str]:
        if symbol == "ETH-USD":
            self.eth_snapshots += 1
            if self.eth_snapshots > 1:
                return []
        return super().snapshot_frames(session, symbol)


async def test_a_gap_resyncs_only_books_holding_data() -> None:
    async with _SnapshotOnceFor(["BTC-USD", "ETH-USD"], seed=5, rate_hz=100) as fake:
        async with running(fake, products_per_connection=2) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            eth = c.books["ETH-USD"]
            eth.resync("test: waiting for a snapshot", "gap")  # resubscribed; its snapshot never comes
            await wait_until(lambda: fake.eth_snapshots == 2, what="ETH-USD resubscribed")
            fake.inject(Fault.GAP, "BTC-USD")
            await wait_until(lambda: c.connection_gaps == 1 and c.books["BTC-USD"].resyncs == 1, what="the gap")
            await wait_until(lambda: c.books["BTC-USD"].live, what="BTC-USD LIVE again")
            # ETH-USD was already waiting for a snapshot: not resubscribed a second time
            assert eth.resyncs == 1 and eth.gaps == 0 and fake.eth_snapshots == 2
            subs = [f.get("product_ids", []) for f in sent(fake) if f["channel"] == "level2" and f["type"] == "subscribe"]
            assert sum("ETH-USD" in p for p in subs) == 2  # the first subscribe and the test's resync


async def test_gap_on_a_shared_connection_resyncs_all_its_products() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD", "ETH-BTC"], seed=3, rate_hz=100) as fake:
        async with running(fake, products_per_connection=2) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            assert len(fake.sessions) == 2
            fake.inject(Fault.GAP, "ETH-USD")
            await wait_until(lambda: c.books["BTC-USD"].resyncs >= 1 and c.books["ETH-USD"].resyncs >= 1, what="resyncs")
            await wait_until(lambda: all_live(c), what="LIVE again")
            assert c.books["ETH-BTC"].resyncs == 0  # on the other connection
            # one unsubscribe + one subscribe for both products (2 messages, not 4)
            level2 = [(f["type"], f.get("product_ids", [])) for f in sent(fake) if f["channel"] == "level2"]
            assert ("unsubscribe", ["BTC-USD", "ETH-USD"]) in level2
            await assert_truth(fake, c)


@pytest.mark.parametrize(
    "fault",
    [Fault.REORDER, Fault.DUPLICATE, Fault.SNAPSHOT, Fault.OVERSIZE_SNAPSHOT, Fault.DISCONNECT, Fault.MALFORMED],
)
async def test_fault_keeps_books_right(fault: Fault) -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=4, rate_hz=100) as fake:
        async with running(fake) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            if fault is Fault.OVERSIZE_SNAPSHOT:
                fake.inject(fault, "BTC-USD", levels=25_000)
                fake.inject(Fault.SNAPSHOT, "BTC-USD")  # the next snapshot carries 50k levels (several MB)
                cap = c.config.max_book_levels  # a full-depth book keeps at most this many levels a side
                await wait_until(lambda: len(c.books["BTC-USD"].book.bids) > cap // 2, what="oversize snapshot, capped")
                assert len(c.books["BTC-USD"].book.bids) <= cap and len(c.books["BTC-USD"].book.asks) <= cap
                assert c.reconnects == 0  # a multi-MB frame passes the frame limit
                # the kit pads with far levels that are not in the truth (and may later cross
                # it, which resyncs): replace them with a normal snapshot before comparing
                fake.inject(Fault.SNAPSHOT, "BTC-USD")
                await wait_until(lambda: len(c.books["BTC-USD"].book.bids) < 1000, what="normal snapshot")
            else:
                fake.inject(fault, "BTC-USD")
            if fault is Fault.REORDER:
                await wait_until(lambda: c.books["BTC-USD"].resyncs >= 1, what="resync after reorder")
                await wait_until(lambda: c.duplicates >= 1, what="the late frame dropped")
            elif fault is Fault.DUPLICATE:
                await wait_until(lambda: c.duplicates >= 1, what="duplicate dropped")
                assert c.books["BTC-USD"].resyncs == 0  # absolute sizes: a repeat is harmless
            elif fault is Fault.DISCONNECT:
                await wait_until(lambda: c.reconnects >= 1, what="reconnect")
            elif fault is Fault.MALFORMED:
                await wait_until(lambda: c.error_counts.get("parsing", 0) >= 1, what="parse error")
            await wait_until(lambda: all_live(c), what="LIVE")
            if fault is not Fault.DISCONNECT:
                assert c.books["ETH-USD"].resyncs == 0 and c.books["ETH-USD"].live
            await assert_truth(fake, c)


async def test_stall_goes_stale_then_resyncs() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=5, rate_hz=100) as fake:
        async with running(fake, stale_after_s=0.3) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            seen: set[BookState] = set()
            fake.inject(Fault.STALL, seconds=1.0)

            def watch() -> bool:
                seen.add(c.books["BTC-USD"].state)
                return BookState.STALE in seen

            await wait_until(watch, 3, what="STALE")
            await wait_until(lambda: c.books["BTC-USD"].resyncs >= 1 or c.reconnects >= 1, 5, what="resync after the stall")
            await wait_until(lambda: all_live(c), what="LIVE again")
            await assert_truth(fake, c)


async def test_error_reply_resyncs_that_product_only_and_it_heals() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=6, rate_hz=100) as fake:
        async with running(fake) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            resyncs = c.books["BTC-USD"].resyncs
            fake.inject(Fault.ERROR_REPLY, "BTC-USD", message="product is in maintenance")
            # a transient error: that product resyncs (resubscribed), never FAILED, and heals
            await wait_until(lambda: c.books["BTC-USD"].resyncs > resyncs, what="BTC-USD resynced")
            assert "maintenance" in (c.books["BTC-USD"].error or "") or c.books["BTC-USD"].live
            assert c.error_counts.get("exchange", 0) >= 1
            assert c.books["ETH-USD"].live
            await wait_until(lambda: all_live(c), what="BTC-USD LIVE again")
            assert c.books["BTC-USD"].state is not BookState.FAILED
            await assert_truth(fake, c)


async def test_connection_error_is_reported_not_raised() -> None:
    async with FakeCoinbase(["BTC-USD"], seed=7, rate_hz=100) as fake:
        async with running(fake) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            fake.inject(Fault.ERROR_REPLY, None, message="authentication failure")
            await wait_until(lambda: "authentication failure" in (c.last_error or ""), what="error recorded")
            assert c.books["BTC-USD"].state is not BookState.FAILED
            await assert_truth(fake, c)


async def test_unknown_rejected_and_delisted_products() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=8, rate_hz=100) as fake:
        pairs = ["BTC/USD", "XRP/USD", "GHOST-USD", "OLD/USD", "ETH-USD"]
        async with running(fake, trading_pairs=pairs) as c:
            await wait_until(lambda: all_live(c, ["BTC-USD", "ETH-USD"]), what="LIVE")
            assert "XRP/USD" in c.pair_errors and "XRP-USD" not in c.books
            # listed and online but refused by the feed: left out of the ack, then FAILED
            await wait_until(lambda: c.books["GHOST-USD"].state is BookState.FAILED, what="GHOST-USD FAILED")
            assert "did not accept" in (c.books["GHOST-USD"].error or "")
            # delisted: never subscribed
            assert c.books["OLD-USD"].state is BookState.FAILED and "delisted" in (c.books["OLD-USD"].error or "")
            assert all("OLD-USD" not in f.get("product_ids", []) for f in sent(fake))
            await assert_truth(fake, c, ["BTC-USD", "ETH-USD"])


async def test_rest_429_retry_after_is_honoured() -> None:
    async with FakeCoinbase(["BTC-USD"], seed=9, rate_hz=100) as fake:
        fake.inject(Fault.REST_429, retry_after=1)
        started = time.monotonic()
        async with running(fake) as c:
            await wait_until(lambda: c.symbols is not None, 5, what="products loaded")
            assert time.monotonic() - started >= 0.95
            assert c.error_counts.get("rate_limit") == 1
            assert fake.rest_log.count(fake.rest_log[0]) == 2
            await wait_until(lambda: all_live(c), what="LIVE")


async def test_message_rate_is_shared_across_connections() -> None:
    extra = {s: InstrumentSpec(s.split("-")[0], "USD", mid=100.0 + i) for i, s in enumerate(["SOL-USD", "LTC-USD", "ADA-USD"])}
    symbols = {"BTC-USD": FakeCoinbase.default_symbols["BTC-USD"], "ETH-USD": FakeCoinbase.default_symbols["ETH-USD"], **extra}
    async with FakeCoinbase(symbols, seed=10, rate_hz=50) as fake:
        async with running(fake) as c:
            # 5 connections x (open + heartbeats + level2): 15 slots at 8/s, never more than 8/s
            await wait_until(lambda: all_live(c), 6, what="LIVE")
            for s in list(symbols):
                fake.inject(Fault.GAP, s)
            await wait_until(lambda: all(b.resyncs >= 1 for b in c.books.values()), 5, what="resyncs")
            await wait_until(lambda: all_live(c), 5, what="LIVE again")
            assert fake.rate_violations == 0
            await assert_truth(fake, c)


async def test_fake_enforces_subscribe_deadline_and_single_channel() -> None:
    async with FakeCoinbase(["BTC-USD"], seed=11, subscribe_deadline_s=0.3) as fake:
        async with connect(fake.ws_url) as ws:
            await ws.send(orjson.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2"]}).decode())
            err = orjson.loads(await ws.recv())
            assert err["type"] == "error"
            with pytest.raises(Exception):
                with anyio.fail_after(2):
                    while True:
                        await ws.recv()
        assert fake.closed_for_deadline == 1


async def test_alias_sharing_a_connection_resyncs_together() -> None:
    async with FakeCoinbase(["BTC-USD", "ETH-USD"], seed=12, rate_hz=100) as fake:
        async with running(fake, trading_pairs=["BTC/USD", "BTC/USDC"], products_per_connection=2) as c:
            await wait_until(lambda: all_live(c), what="LIVE")
            assert len(fake.sessions) == 1
            c.books["BTC-USDC"].resync("test: forced resync", "gap")
            await wait_until(lambda: c.books["BTC-USD"].resyncs == 1, what="the alias resyncs too")
            unsub = ("unsubscribe", ["BTC-USDC", "BTC-USD"])
            await wait_until(lambda: unsub in [(f["type"], f.get("product_ids", [])) for f in sent(fake)], 3, what="one unsubscribe for both")
            await wait_until(lambda: all_live(c), what="LIVE again")
            await assert_truth(fake, c)


class _LosesFirstSnapshot(FakeCoinbase):
    """Acknowledges but never sends the first snapshot of BTC-USD (and numbers no frame for it)."""

    lost = 0

    def snapshot_frames(self, session: Any, symbol: str) -> list[str]:
        if symbol == "BTC-USD" and not self.lost:
            self.lost += 1
            return []
        return super().snapshot_frames(session, symbol)


async def test_acknowledged_product_without_snapshot_is_resubscribed() -> None:
    async with _LosesFirstSnapshot(["BTC-USD", "ETH-USD"], seed=13, rate_hz=100) as fake:
        async with running(fake, snapshot_timeout_s=0.5) as c:
            await wait_until(lambda: all_live(c), 5, what="LIVE after the resubscribe")
            assert fake.lost == 1 and c.books["BTC-USD"].resyncs == 1 and c.books["ETH-USD"].resyncs == 0
            await assert_truth(fake, c)


async def test_many_connections_each_subscribe_within_the_deadline() -> None:
    """Opens share the 8/s budget with subscribes: a burst of opens must not push every
    connection's first subscribe past the subscribe deadline (5 s live; 0.8 s here, 10 connections)."""
    specs = {f"C{i}-USD": InstrumentSpec(f"C{i}", "USD", mid=100.0 + i) for i in range(10)}
    async with FakeCoinbase(specs, seed=14, rate_hz=20, subscribe_deadline_s=0.8) as fake:
        async with running(fake) as c:
            await wait_until(lambda: len(c.books) == 10 and all_live(c), 10, what="10 connections LIVE")
            assert fake.closed_for_deadline == 0 and c.reconnects == 0
            assert fake.rate_violations == 0
