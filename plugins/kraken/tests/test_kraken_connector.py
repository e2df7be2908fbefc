"""KrakenConnector against FakeKraken over real sockets: sync, depth, faults, errors, keepalive."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, running as run_in_background, wait_until
from aggcore_plugin_kraken.connector import KrakenConfig, KrakenConnector
from aggcore_plugin_kraken.fake import FakeKraken

BTC, ETH = "BTC/USD", "ETH/USD"


@asynccontextmanager
async def running(
    fake: FakeKraken, cls: type[KrakenConnector] = KrakenConnector, **overrides: Any
) -> AsyncIterator[KrakenConnector]:
    settings: dict[str, Any] = {"stale_after_s": 5.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}
    settings.update(overrides)
    async with run_in_background(cls(KrakenConfig.model_validate(fake.connector_config(**settings)))) as conn:
        yield conn


def live(conn: KrakenConnector, *symbols: str) -> bool:
    return all(s in conn.books and conn.books[s].state is BookState.LIVE for s in symbols)


async def assert_matches_truth(fake: FakeKraken, conn: KrakenConnector, symbols: tuple[str, ...] = (BTC, ETH)) -> None:
    """Freeze the fake, let the client catch up, then its books must equal the truth at their depth."""
    fake.pause()
    try:
        depth = conn.depth or 10

        def caught_up() -> bool:
            for s in symbols:
                b = conn.books[s]
                tb, ta = fake.books[s].truth(depth)
                if not b.live or b.book.bids.top(depth + 5) != tb or b.book.asks.top(depth + 5) != ta:
                    return False
            return True

        await wait_until(caught_up, timeout=5, what="books equal to the fake's truth")
    finally:
        fake.resume()


@pytest.mark.anyio
async def test_subscribes_reaches_live_and_equals_truth() -> None:
    async with FakeKraken(seed=1, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH), what="both books LIVE")
        await wait_until(lambda: conn.books[BTC].messages > 100, what="updates flowing")
        await assert_matches_truth(fake, conn)
        sub = orjson.loads(fake.sessions[0].received[0])
        assert sub["method"] == "subscribe" and sub["params"]["channel"] == "book"
        assert sub["params"]["depth"] == 10 and sub["params"]["snapshot"] is True
        assert sorted(sub["params"]["symbol"]) == [BTC, ETH] and isinstance(sub["req_id"], int)
        for s in (BTC, ETH):
            b = conn.books[s]
            assert b.checksum_failures == 0 and b.resyncs == 0
            assert len(b.book.bids) == 10 and len(b.book.asks) == 10  # truncated to the subscribed depth
        assert conn.system_status == "online"


@pytest.mark.anyio
async def test_depth_25_and_instrument_channel_source() -> None:
    async with FakeKraken(seed=2, rate_hz=200) as fake, running(fake, depth=25, instruments="instrument_channel") as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and conn.books[ETH].messages > 50)
        assert fake.rest_log == []  # symbols came from the WebSocket instrument channel
        await assert_matches_truth(fake, conn)
        assert len(conn.books[BTC].book.bids) == 25


def test_config_rejects_unsupported_depth() -> None:
    with pytest.raises(ValueError, match="one of 10, 25, 100, 500, 1000"):
        KrakenConfig(depth=20)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [Fault.GAP, Fault.REORDER, Fault.BAD_CHECKSUM])
async def test_integrity_faults_resync_that_symbol_only(fault: Fault) -> None:
    async with FakeKraken(seed=3, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and conn.books[BTC].messages > 20)
        fake.pause()
        fake.inject(fault, BTC)
        fake.step(4)  # the faulty frame, then updates whose checksum exposes it
        fake.resume()
        await wait_until(lambda: conn.books[BTC].resyncs >= 1, what=f"{fault.value} -> resync")
        assert conn.books[BTC].checksum_failures >= 1
        await wait_until(lambda: live(conn, BTC), what="BTC LIVE again")
        assert conn.books[ETH].resyncs == 0 and conn.books[ETH].live
        await assert_matches_truth(fake, conn)
        unsub = [orjson.loads(t) for t in fake.sessions[0].received if '"unsubscribe"' in t]
        assert unsub and unsub[0]["params"]["symbol"] == [BTC]  # that symbol only


@pytest.mark.anyio
async def test_duplicate_is_harmless_and_midstream_snapshots_replace_the_book() -> None:
    async with FakeKraken(seed=4, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and conn.books[BTC].messages > 20)
        fake.inject(Fault.DUPLICATE, BTC)
        fake.inject(Fault.OVERSIZE_SNAPSHOT, ETH, levels=5000)
        fake.inject(Fault.SNAPSHOT, ETH)
        await anyio.sleep(0.2)
        await assert_matches_truth(fake, conn)
        assert conn.books[BTC].resyncs == 0 and conn.books[ETH].resyncs == 0
        assert len(conn.books[ETH].book.asks) == 10  # oversize snapshot truncated to the depth


@pytest.mark.anyio
async def test_disconnect_reconnects_and_resubscribes() -> None:
    async with FakeKraken(seed=5, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        fake.inject(Fault.DISCONNECT)
        await wait_until(lambda: conn.reconnects >= 1, what="reconnect")
        await wait_until(lambda: live(conn, BTC, ETH), what="LIVE after reconnect")
        await assert_matches_truth(fake, conn)


@pytest.mark.anyio
async def test_stall_marks_stale_then_recovers() -> None:
    async with FakeKraken(seed=6, rate_hz=200) as fake, running(fake, stale_after_s=0.4) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        fake.inject(Fault.STALL, seconds=0.8)
        await wait_until(lambda: conn.books[BTC].state is BookState.STALE, what="STALE during the stall")
        await wait_until(lambda: live(conn, BTC, ETH), timeout=5, what="LIVE after the stall")
        await assert_matches_truth(fake, conn)


@pytest.mark.anyio
async def test_heartbeats_keep_a_quiet_book_fresh() -> None:
    async with FakeKraken(seed=7, rate_hz=200) as fake, running(fake, stale_after_s=1.6) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        fake.pause()  # no updates, but the server sends {"channel":"heartbeat"} each idle second
        try:
            await wait_until(lambda: "last_heartbeat" in fake.sessions[0].state, timeout=3, what="a heartbeat")
            await anyio.sleep(2.0)  # beyond stale_after_s since the last update
            assert live(conn, BTC, ETH) and conn.reconnects == 0
        finally:
            fake.resume()


@pytest.mark.anyio
async def test_malformed_frame_is_a_parsing_error_not_a_crash() -> None:
    async with FakeKraken(seed=8, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        fake.inject(Fault.MALFORMED)
        await wait_until(lambda: conn.error_counts.get("parsing", 0) >= 1)
        await assert_matches_truth(fake, conn)


@pytest.mark.anyio
async def test_error_reply_fails_that_symbol_only() -> None:
    async with FakeKraken(seed=9, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        fake.inject(Fault.ERROR_REPLY, BTC, message=f"Currency pair not supported {BTC}")
        await wait_until(lambda: conn.books[BTC].state is BookState.FAILED)
        assert "Currency pair not supported" in (conn.books[BTC].error or "")
        await assert_matches_truth(fake, conn, (ETH,))


@pytest.mark.anyio
async def test_unknown_and_rejected_symbols() -> None:
    """FOO/BAR is not in the instrument list; DOGE/USD is listed but the server rejects it."""
    async with FakeKraken(seed=10, rate_hz=200) as fake, running(fake, trading_pairs=["XBT/USD", "FOO/BAR", "DOGE/USD", ETH]) as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and "DOGE/USD" in conn.books)
        assert "FOO/BAR" in conn.pair_errors and "unknown symbol" in conn.pair_errors["FOO/BAR"]
        await wait_until(lambda: conn.books["DOGE/USD"].state is BookState.FAILED)
        assert "Currency pair not supported DOGE/USD" in (conn.books["DOGE/USD"].error or "")
        await assert_matches_truth(fake, conn)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [Fault.REST_429, Fault.REST_418])
async def test_rest_rate_limit_honours_retry_after(fault: Fault) -> None:
    async with FakeKraken(seed=11, rate_hz=200) as fake:
        fake.inject(fault, retry_after=0.5)
        started = time.monotonic()
        async with running(fake) as conn:
            await wait_until(lambda: live(conn, BTC, ETH), timeout=8)
            assert conn.error_counts.get("rate_limit") == 1
            assert len([p for p in fake.rest_log if "AssetPairs" in p]) == 2
        assert time.monotonic() - started >= 0.5


class _FastPing(KrakenConnector):
    keepalive_interval_s = 0.1


@pytest.mark.anyio
async def test_ping_pong_and_maintenance_status() -> None:
    async with FakeKraken(seed=12, rate_hz=100) as fake, running(fake, cls=_FastPing) as conn:
        await wait_until(lambda: live(conn, BTC, ETH))
        await wait_until(lambda: any("last_pong_ns" in c.state for c in conn.connections.values()), what="pong")
        assert any(orjson.loads(t).get("method") == "ping" for t in fake.sessions[0].received)
        fake.pause()
        status = {"channel": "status", "type": "update", "data": [{"api_version": "v2", "system": "maintenance", "version": "2.0.0"}]}
        fake.sessions[0].send_soon(orjson.dumps(status).decode())
        await wait_until(lambda: conn.books[BTC].state is BookState.STALE, what="STALE in maintenance")
        assert conn.system_status == "maintenance" and conn.error_counts.get("maintenance") == 1
        fake.resume()
        await wait_until(lambda: live(conn, BTC, ETH), what="LIVE when data flows again")


class _StalePrecisionFake(FakeKraken):
    """The instrument list states a wrong BTC/USD price precision (3 instead of 1)."""

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        status, body = super().rest(path, query)
        if path == "/0/public/AssetPairs":
            body["result"]["XBTUSD"]["pair_decimals"] = 3
        return status, body


class _BadSnapshotFake(FakeKraken):
    def snapshot_frames(self, session: Any, symbol: str) -> list[str]:
        frames = super().snapshot_frames(session, symbol)
        return [self.corrupt(f) for f in frames] if symbol == BTC else frames


@pytest.mark.anyio
async def test_wrong_precision_falls_back_to_the_literal_numbers() -> None:
    async with _StalePrecisionFake(seed=13, rate_hz=200) as fake, running(fake, instruments="asset_pairs") as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and conn.books[BTC].messages > 30)
        assert conn.books[BTC].checksum_failures == 1  # the first snapshot, then literal reading
        assert BTC not in conn._formats and ETH in conn._formats
        await assert_matches_truth(fake, conn)


@pytest.mark.anyio
async def test_snapshots_that_never_verify_fail_the_symbol_instead_of_looping() -> None:
    async with _BadSnapshotFake(seed=14, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: BTC in conn.books and conn.books[BTC].state is BookState.FAILED)
        assert "consecutive snapshots" in (conn.books[BTC].error or "")
        assert conn.books[BTC].checksum_failures == 3
        await assert_matches_truth(fake, conn, (ETH,))
        await wait_until(lambda: BTC not in fake.sessions[0].subscribed, what="BTC unsubscribed")


class _RateLimitedOnce(FakeKraken):
    """Drops the first book subscription with ``{"Error": "Exceeded msg rate"}`` (reference §4.2)."""

    rejected = 0

    def on_message(self, session: Any, text: str) -> None:
        if not self.rejected and '"channel":"book"' in text and '"subscribe"' in text:
            self.rejected += 1
            session.send_soon('{"Error": "Exceeded msg rate"}')
            return
        super().on_message(session, text)


class _QuickRetry(KrakenConnector):
    rate_limit_retry_s = 0.2


@pytest.mark.anyio
async def test_rate_limited_subscription_is_retried_not_failed() -> None:
    """A request dropped for the message rate is sent again later; no pair is given up for it,
    also when the reply names a symbol."""
    async with _RateLimitedOnce(seed=14, rate_hz=100) as fake, running(fake, cls=_QuickRetry) as conn:
        await wait_until(lambda: live(conn, BTC, ETH), timeout=5, what="books after the retry")
        assert fake.rejected == 1 and conn.error_counts.get("rate_limit") == 1
        fake.inject(Fault.ERROR_REPLY, BTC, message="Exceeded msg rate")
        await wait_until(lambda: conn.error_counts.get("rate_limit") == 2)
        assert conn.books[BTC].state is not BookState.FAILED
        await assert_matches_truth(fake, conn)


# -- checksum: on by default, off per exchange or per pair; repeated failures name the option ----------


class _UnreliableChecksumFake(FakeKraken):
    """BTC/USD levels are right but its checksums never match (as reported for some
    high-precision pairs); ``snapshots=False`` keeps its snapshots' checksums right."""

    snapshots = True

    def snapshot_frames(self, session: Any, symbol: str) -> list[str]:
        frames = super().snapshot_frames(session, symbol)
        return [self.corrupt(f) for f in frames] if symbol == BTC and self.snapshots else frames

    def delta_frames(self, session: Any, symbol: str, changes: Any) -> list[str]:
        frames = super().delta_frames(session, symbol, changes)
        return [self.corrupt(f) for f in frames] if symbol == BTC else frames


class _UnreliableUpdatesFake(_UnreliableChecksumFake):
    snapshots = False


@pytest.mark.anyio
async def test_a_pair_failing_its_checksum_repeatedly_names_the_option_in_health() -> None:
    async with _UnreliableUpdatesFake(seed=15, rate_hz=200) as fake, running(fake) as conn:
        book_ = lambda: conn.books.get(BTC)  # noqa: E731
        await wait_until(lambda: book_() is not None and book_().checksum_failures >= 3, what="repeated checksum failures")
        await wait_until(lambda: "checksum_off_pairs: [BTC/USD]" in (conn.books[BTC].error or ""), what="advice in health")
        assert "checksum failed" in (conn.books[BTC].error or "")
        assert conn.books[ETH].checksum_failures == 0
        await assert_matches_truth(fake, conn, (ETH,))


@pytest.mark.anyio
async def test_snapshots_never_verifying_fail_the_pair_naming_the_option() -> None:
    async with _UnreliableChecksumFake(seed=16, rate_hz=200) as fake, running(fake) as conn:
        await wait_until(lambda: BTC in conn.books and conn.books[BTC].state is BookState.FAILED)
        assert "exchanges.kraken.checksum_off_pairs: [BTC/USD]" in (conn.books[BTC].error or "")


@pytest.mark.anyio
@pytest.mark.parametrize("off", [{"checksum_off_pairs": ["XBT/USD"]}, {"checksum": False}])
async def test_checksum_off_per_pair_or_per_exchange(off: dict[str, Any]) -> None:
    async with _UnreliableChecksumFake(seed=17, rate_hz=200) as fake, running(fake, **off) as conn:
        await wait_until(lambda: live(conn, BTC, ETH) and conn.books[BTC].messages > 30, what="LIVE without checks")
        assert conn.books[BTC].checksum_failures == 0 and conn.books[BTC].resyncs == 0
        await assert_matches_truth(fake, conn)
        # the other pair keeps its check when only BTC/USD is exempt
        assert (ETH in conn._no_checksum) is ("checksum" in off)


@pytest.mark.anyio
async def test_v2_names_from_the_instrument_list_v1_names_joined_from_asset_pairs() -> None:
    async with FakeKraken(seed=18, rate_hz=200) as fake, running(fake, trading_pairs=["XBT/USD", "ETH/USD"]) as conn:
        await wait_until(lambda: live(conn, BTC, ETH), what="LIVE under the v2 names")
        assert conn.config.instruments == "both"  # type: ignore[attr-defined]
        table = conn.symbols
        assert table is not None
        # DOGE/USD is listed (not traded) by the fake: its v1 name XDG/USD is joined too
        assert table.by_symbol[BTC].extra["wsname"] == "XBT/USD" and table.by_symbol["DOGE/USD"].extra["wsname"] == "XDG/USD"
        assert table.by_symbol[ETH].extra["wsname"] == "ETH/USD"
        assert any(path.startswith("/0/public/AssetPairs") for path in fake.rest_log)


def test_checksum_is_on_by_default() -> None:
    cfg = KrakenConfig.model_validate({"trading_pairs": ["BTC/USD"]})
    assert cfg.checksum is True and cfg.checksum_off_pairs == []
