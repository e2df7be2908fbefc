"""The Bybit connector against FakeBybit over real sockets on 127.0.0.1."""

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

from aggcore_plugin_bybit.connector import BybitConfig, BybitConnector
from aggcore_plugin_bybit.fake import FakeBybit

FAST = {"stale_after_s": 1.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "connect_timeout_s": 2.0}


@asynccontextmanager
async def running(fake: FakeBybit, **overrides: Any) -> AsyncIterator[BybitConnector]:
    config = BybitConfig.model_validate(fake.connector_config(**{**FAST, **overrides}))
    async with run_in_background(BybitConnector(config), wait_setup=True) as connector:
        yield connector


def all_live(c: BybitConnector, keys: list[str] | None = None) -> bool:
    return all(c.books[k].state is BookState.LIVE for k in (keys or list(c.books)))


async def assert_matches_truth(fake: FakeBybit, c: BybitConnector, keys: list[str] | None = None, n: int = 10) -> None:
    """Freeze the fake, wait until the client caught up (same ``u``), compare the top ``n``."""
    fake.pause()
    depth = c.depth or 50
    keys = keys or list(c.books)
    await wait_until(
        lambda: all(c.books[k].live and c.books[k].last_seq == fake.u[(k, depth)] for k in keys),
        timeout=5,
        what="client books caught up with the fake",
    )
    for k in keys:
        bids, asks = fake.books[k].truth(n)
        book = c.books[k].book
        assert book.bids.top(n) == bids, k
        assert book.asks.top(n) == asks, k
    fake.resume()


@pytest.mark.anyio
async def test_spot_and_linear_live_and_equal_truth() -> None:
    async with FakeBybit(seed=1, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        await anyio.sleep(0.2)
        await assert_matches_truth(fake, c)
        paths = sorted(s.path for s in fake.sessions)
        assert paths == ["/v5/public/linear", "/v5/public/spot"]
        assert c.books["linear:BTCUSDT"].pair == "BTC/USDT:USDT" and c.books["BTCUSDT"].pair == "BTC/USDT"
        spot = next(s for s in fake.sessions if s.path.endswith("/spot"))
        sub = orjson.loads(spot.received[0])
        assert sub["op"] == "subscribe" and sub["args"] == ["orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"] and sub["req_id"]


@pytest.mark.anyio
async def test_spot_subscribes_at_most_10_args_per_request() -> None:
    specs = {f"C{i}USDT": InstrumentSpec(f"C{i}", "USDT", mid=100.0 + i) for i in range(23)}
    async with FakeBybit(specs, seed=2, rate_hz=50) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all 23 LIVE")
        sent = [orjson.loads(t) for s in fake.sessions for t in s.received if '"subscribe"' in t]
        assert [len(f["args"]) for f in sent] == [10, 10, 3]
        assert c.errors == 0


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [Fault.GAP, Fault.REORDER])
async def test_sequence_faults_resync_that_symbol_only(fault: Fault) -> None:
    async with FakeBybit(seed=3, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(fault, "BTCUSDT")
        await wait_until(lambda: c.books["BTCUSDT"].resyncs >= 1, what="BTCUSDT resync")
        assert c.books["ETHUSDT"].resyncs == 0 and c.books["ETHUSDT"].state is BookState.LIVE
        assert c.books["linear:BTCUSDT"].resyncs == 0
        assert "sequence gap" in (c.books["BTCUSDT"].error or "") or c.books["BTCUSDT"].live
        def unsubs() -> list[str]:
            return [t for s in fake.sessions for t in s.received if '"unsubscribe"' in t]

        await wait_until(lambda: bool(unsubs()), what="unsubscribe of that topic")
        assert orjson.loads(unsubs()[0])["args"] == ["orderbook.50.BTCUSDT"]
        await wait_until(lambda: all_live(c), what="BTCUSDT LIVE again")
        await assert_matches_truth(fake, c)
        assert c.reconnects == 0


@pytest.mark.anyio
async def test_duplicate_is_dropped_without_resync() -> None:
    async with FakeBybit(seed=4, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(Fault.DUPLICATE, "ETHUSDT")
        await wait_until(lambda: c.books["ETHUSDT"].dropped_stale >= 1, what="duplicate dropped")
        assert c.books["ETHUSDT"].resyncs == 0
        await assert_matches_truth(fake, c)


@pytest.mark.anyio
async def test_mid_stream_snapshot_restart_and_oversize_snapshot() -> None:
    async with FakeBybit(seed=5, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.restart_service("ETHUSDT")  # u = 1 snapshot: a reset, not a gap
        await wait_until(lambda: (c.books["ETHUSDT"].last_seq or 99) < 50, what="u restarted")
        fake.inject(Fault.OVERSIZE_SNAPSHOT, "BTCUSDT", levels=5000)
        fake.inject(Fault.SNAPSHOT, "BTCUSDT")
        await anyio.sleep(0.3)
        for k in c.books:
            assert c.books[k].gaps == 0 and c.books[k].resyncs == 0, (k, c.books[k].error, c.books[k].crossed_books)
        assert len(c.books["BTCUSDT"].book.bids) <= 50  # truncated to the subscribed depth
        await assert_matches_truth(fake, c)


@pytest.mark.anyio
async def test_disconnect_reconnects_and_resubscribes() -> None:
    async with FakeBybit(seed=6, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(Fault.DISCONNECT, "linear:BTCUSDT")
        await wait_until(lambda: c.reconnects >= 1, what="reconnect")
        await wait_until(lambda: all_live(c), what="LIVE after reconnect")
        assert c.books["BTCUSDT"].resyncs == 0  # the spot connection was not touched
        await assert_matches_truth(fake, c)


@pytest.mark.anyio
async def test_stall_goes_stale_then_live() -> None:
    async with FakeBybit(seed=7, rate_hz=200) as fake, running(fake, stale_after_s=0.3) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(Fault.STALL, seconds=0.8)
        await wait_until(lambda: c.books["BTCUSDT"].state is BookState.STALE, what="STALE")
        await wait_until(lambda: all_live(c), timeout=5, what="LIVE again")
        await assert_matches_truth(fake, c)


@pytest.mark.anyio
async def test_malformed_frame_is_a_parse_error_not_a_crash() -> None:
    async with FakeBybit(seed=8, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(Fault.MALFORMED, "BTCUSDT")
        await wait_until(lambda: c.error_counts.get("parsing", 0) >= 1, what="parse error counted")
        assert all_live(c) and c.reconnects == 0
        await assert_matches_truth(fake, c)


@pytest.mark.anyio
async def test_error_reply_fails_that_symbol_only() -> None:
    async with FakeBybit(seed=9, rate_hz=200) as fake, running(fake) as c:
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.inject(Fault.ERROR_REPLY, "ETHUSDT")
        await wait_until(lambda: c.books["ETHUSDT"].state is BookState.FAILED, what="ETHUSDT FAILED")
        assert "Invalid symbol" in (c.books["ETHUSDT"].error or "")
        await anyio.sleep(0.2)
        assert c.books["ETHUSDT"].state is BookState.FAILED and len(c.books["ETHUSDT"].book.bids) == 0
        await assert_matches_truth(fake, c, ["BTCUSDT", "linear:BTCUSDT"])


@pytest.mark.anyio
async def test_rejected_topic_fails_that_symbol_and_others_go_on() -> None:
    # ETHUSDT is in the instrument list but the server has no book for it: "handler not found"
    async with FakeBybit(["BTCUSDT"], seed=10, rate_hz=200) as fake, running(fake, trading_pairs=["BTCUSDT", "ETH/USDT"]) as c:
        await wait_until(lambda: c.books["ETHUSDT"].state is BookState.FAILED, what="ETHUSDT FAILED")
        assert "handler not found" in (c.books["ETHUSDT"].error or "")
        await wait_until(lambda: c.books["BTCUSDT"].live, what="BTCUSDT LIVE")
        await assert_matches_truth(fake, c, ["BTCUSDT"])


@pytest.mark.anyio
async def test_unknown_and_inactive_pairs_are_reported() -> None:
    specs = {
        "BTCUSDT": InstrumentSpec("BTC", "USDT"),
        "linear:NEWUSDT": InstrumentSpec("NEW", "USDT", mid=1.0, tick=0.0001, price_precision=4, kind="linear", extra={"status": "PreLaunch"}),
    }
    async with FakeBybit(specs, seed=11, rate_hz=100) as fake, running(
        fake, trading_pairs=["BTC/USDT", "XRP/USDT", "NEW/USDT:USDT"]
    ) as c:
        assert "XRP/USDT" in c.pair_errors
        assert c.books["linear:NEWUSDT"].state is BookState.FAILED
        assert "PreLaunch" in (c.books["linear:NEWUSDT"].error or "")
        await wait_until(lambda: c.books["BTCUSDT"].live, what="BTCUSDT LIVE")


@pytest.mark.anyio
async def test_linear_home_category_and_pagination() -> None:
    specs = {
        f"linear:{b}USDT": InstrumentSpec(b, "USDT", mid=100.0 * (i + 1), kind="linear") for i, b in enumerate(["BTC", "ETH", "SOL"])
    }
    fake = FakeBybit(specs, seed=12, rate_hz=200)
    fake.page_size = 1
    async with fake, running(fake, category="linear", trading_pairs=["BTC/USDT", "ETHUSDT", "SOL/USDT:USDT"]) as c:
        assert sorted(c.books) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        assert sum("instruments-info" in p for p in fake.rest_log) == 3  # one page per instrument
        await wait_until(lambda: all_live(c), what="all LIVE")
        fake.pause()
        await wait_until(lambda: all(c.books[k].last_seq == fake.u[(f"linear:{k}", 50)] for k in c.books), what="caught up")
        for k in c.books:
            assert c.books[k].book.bids.top(10) == fake.books[f"linear:{k}"].truth(10)[0]


@pytest.mark.anyio
async def test_level_1_is_snapshot_only_with_repeats() -> None:
    fake = FakeBybit(["BTCUSDT"], seed=13, rate_hz=100)
    fake.heartbeat_interval_s = 0.05
    async with fake, running(fake, depth=1) as c:
        await wait_until(lambda: c.books["BTCUSDT"].live, what="LIVE")
        fake.pause()
        before = c.books["BTCUSDT"].messages
        await wait_until(lambda: c.books["BTCUSDT"].messages >= before + 3, what="repeated level-1 snapshots")
        book = c.books["BTCUSDT"]
        assert book.last_seq == fake.u[("BTCUSDT", 1)] and book.gaps == 0
        bids, asks = fake.books["BTCUSDT"].truth(1)
        assert book.book.bids.top(5) == bids and book.book.asks.top(5) == asks


@pytest.mark.anyio
async def test_ping_pong_keepalive() -> None:
    async with FakeBybit(seed=14, rate_hz=20) as fake, running(fake, ping_interval_s=0.05) as c:
        await wait_until(lambda: all(conn.state.get("pongs", 0) >= 2 for conn in c.connections.values()) and len(c.connections) == 2, what="pongs")
        assert any(orjson.loads(t) == {"op": "ping"} for s in fake.sessions for t in s.received)


@pytest.mark.anyio
async def test_rest_429_retry_after_is_honoured() -> None:
    async with FakeBybit(seed=15, rate_hz=100) as fake:
        fake.inject(Fault.REST_429, retry_after=0.4)
        started = time.monotonic()
        async with running(fake) as c:
            assert time.monotonic() - started >= 0.4
            assert c.error_counts.get("rate_limit") == 1
            assert sum("instruments-info" in p for p in fake.rest_log) >= 2
            await wait_until(lambda: all_live(c), what="all LIVE")


@pytest.mark.anyio
async def test_plugin_entry_point_and_config() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="aggcore") if ep.name == "bybit"]
    assert eps and eps[0].value == "aggcore_plugin_bybit.plugin"
    from aggcore_plugin_bybit.plugin import aggcore_register_connectors

    assert aggcore_register_connectors() == [BybitConnector]
    with pytest.raises(ValueError):
        BybitConfig(depth=500)  # removed by Bybit in 2025
    with pytest.raises(ValueError):
        BybitConfig(category="option")  # type: ignore[arg-type]
    c = BybitConnector(BybitConfig(ws_url="wss://stream.bybit.com/v5/public/spot"))
    assert c.ws_base == "wss://stream.bybit.com/v5/public"
