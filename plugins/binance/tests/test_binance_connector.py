"""The connector against FakeBinance over real sockets: sync, faults, errors, limits.

Every test runs a checking listener: whenever a LIVE book changes, its top 10 must equal the
fake's truth at the book's update id (the fake keeps a short history per update id), so a
LIVE book that differs from the exchange fails the test at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

import anyio
import pytest
from aggcore.book import SymbolBook
from aggcore.models import BookState
from aggcore.testing import Change, Fault, InstrumentSpec, running as run_in_background, wait_until
from aggcore_plugin_binance.connector import BinanceConfig, BinanceConnector
from aggcore_plugin_binance.fake import FakeBinance

pytestmark = pytest.mark.anyio

BTC, ETH = "BTCUSDT", "ETHUSDT"
TOP = 10


class CheckedFake(FakeBinance):
    """FakeBinance that remembers the truth (top 10) at every update id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: dict[str, dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]]] = {
            s: {} for s in self.books
        }
        for s in self.books:
            self.history[s][self.update_ids[s]] = self.books[s].truth(TOP)

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        super().on_step(symbol, changes)
        hist = self.history[symbol]
        hist[self.update_ids[symbol]] = self.books[symbol].truth(TOP)
        if len(hist) > 5000:
            del hist[next(iter(hist))]


class Checker:
    """Listener: a LIVE book must equal the fake's truth at its update id, always."""

    def __init__(self) -> None:
        self.fake: CheckedFake | None = None
        self.checked = 0
        self.wrong: list[str] = []

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        if not book.live or self.fake is None or book.last_seq is None:
            return
        truth = self.fake.history[book.symbol].get(book.last_seq)
        if truth is None:
            return  # older than the kept history
        self.checked += 1
        if (book.book.bids.top(TOP), book.book.asks.top(TOP)) != truth:
            self.wrong.append(f"{book.symbol}@{book.last_seq}")

    def book_state_changed(self, book: SymbolBook) -> None:
        pass


@asynccontextmanager
async def running(
    fake: CheckedFake | None = None, **overrides: Any
) -> AsyncIterator[tuple[CheckedFake, BinanceConnector, Checker]]:
    fake = fake or CheckedFake(seed=7, rate_hz=200)
    checker = Checker()
    async with fake:
        checker.fake = fake
        settings: dict[str, Any] = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "stale_after_s": 5.0}
        settings.update(overrides)
        connector = BinanceConnector(BinanceConfig(**fake.connector_config(**settings)), listener=checker)
        async with run_in_background(connector):
            yield fake, connector, checker
    assert not checker.wrong, f"LIVE book differed from the truth at {checker.wrong[:5]}"


def live(connector: BinanceConnector, *symbols: str) -> Callable[[], bool]:
    return lambda: all(s in connector.books and connector.books[s].live for s in symbols)


async def assert_in_sync(fake: FakeBinance, connector: BinanceConnector, *symbols: str) -> None:
    """Freeze the fake, wait until each book caught up, compare the whole top with the truth."""
    fake.pause()
    try:
        for s in symbols:
            await wait_until(
                lambda s=s: connector.books[s].live and connector.books[s].last_seq == fake.update_ids[s],  # type: ignore[misc]
                what=f"{s} caught up",
            )
            bids, asks = fake.books[s].truth(20)
            assert connector.books[s].book.bids.top(20) == bids, s
            assert connector.books[s].book.asks.top(20) == asks, s
    finally:
        fake.resume()


async def test_subscribes_reaches_live_and_matches_the_truth() -> None:
    async with running() as (fake, connector, checker):
        await wait_until(live(connector, BTC, ETH), what="LIVE")
        await anyio.sleep(0.2)
        await assert_in_sync(fake, connector, BTC, ETH)
        session = fake.sessions[0]
        assert session.path == "/stream"
        assert '"method":"SUBSCRIBE"' in session.received[0] and "btcusdt@depth@100ms" in session.received[0]
        assert any("/api/v3/depth?symbol=BTCUSDT&limit=1000" in p for p in fake.rest_log)
        assert fake.closed_for_rate == 0
        assert checker.checked > 20
        assert connector.books[BTC].gaps == 0 and connector.errors == 0


async def test_speed_1000ms_uses_the_plain_depth_stream() -> None:
    async with running(speed_ms=1000, depth=100) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        assert "btcusdt@depth\"" in fake.sessions[0].received[0]
        assert any("limit=100" in p for p in fake.rest_log)
        await assert_in_sync(fake, connector, BTC, ETH)


@pytest.mark.parametrize("fault", [Fault.GAP, Fault.REORDER])
async def test_sequence_faults_resync_that_symbol_only(fault: Fault) -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        eth_resyncs = connector.books[ETH].resyncs
        fake.inject(fault, BTC)
        await wait_until(lambda: connector.books[BTC].resyncs >= 1, what="BTC resync")
        assert connector.books[BTC].gaps >= 1
        await wait_until(live(connector, BTC), what="BTC LIVE again")
        assert connector.books[ETH].live and connector.books[ETH].resyncs == eth_resyncs
        assert connector.reconnects == 0  # the stream stayed up: a REST snapshot resynced it
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_duplicate_event_is_dropped_without_resync() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.DUPLICATE, BTC)
        await wait_until(lambda: connector.books[BTC].dropped_stale >= 1, what="duplicate dropped")
        assert connector.books[BTC].resyncs == 0 and connector.books[BTC].live
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_disconnect_reconnects_and_resyncs() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.DISCONNECT)
        await wait_until(lambda: connector.reconnects >= 1, what="reconnect")
        await wait_until(live(connector, BTC, ETH), what="LIVE after reconnect")
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_stall_marks_stale_then_live_again() -> None:
    async with running(stale_after_s=0.3) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.STALL, seconds=0.5)
        await wait_until(lambda: connector.books[BTC].state is BookState.STALE, what="STALE")
        await wait_until(live(connector, BTC, ETH), what="LIVE after the stall")
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_malformed_frame_is_reported_and_books_go_on() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.MALFORMED)
        await wait_until(lambda: connector.error_counts.get("parsing", 0) >= 1, what="parse error")
        assert "cannot parse" in (connector.last_error or "")
        assert connector.books[BTC].live and connector.books[ETH].live and connector.reconnects == 0
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_oversize_snapshot_is_truncated_to_depth() -> None:
    async with running(depth=500) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.OVERSIZE_SNAPSHOT, BTC, levels=20000)
        fake.inject(Fault.GAP, BTC)
        await wait_until(lambda: connector.books[BTC].resyncs >= 1)
        await wait_until(live(connector, BTC))
        assert len(connector.books[BTC].book.bids) <= 500
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_error_reply_fails_that_symbol_only() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.ERROR_REPLY, BTC, message="Invalid request: invalid stream")
        await wait_until(lambda: connector.books[BTC].state is BookState.FAILED, what="BTC FAILED")
        assert "invalid stream" in (connector.books[BTC].error or "")
        assert "code 2" in (connector.books[BTC].error or "")
        await anyio.sleep(0.1)
        assert connector.books[ETH].live
        await assert_in_sync(fake, connector, ETH)


async def test_error_reply_without_a_symbol_is_a_connection_error() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(Fault.ERROR_REPLY, message="Invalid request: too many parameters")
        await wait_until(lambda: connector.error_counts.get("exchange", 0) >= 1)
        assert "too many parameters" in (connector.last_error or "")
        assert connector.books[BTC].live and connector.books[ETH].live


async def test_unknown_and_delisted_pairs_are_reported_others_go_on() -> None:
    fake = CheckedFake(
        {BTC: FakeBinance.default_symbols[BTC], "LUNAUSDT": InstrumentSpec("LUNA", "USDT", mid=1.0, extra={"status": "BREAK"})},
        seed=3,
        rate_hz=200,
    )
    async with running(fake, trading_pairs=["BTC/USDT", "XRP/USDT", "LUNA/USDT"]) as (fake, connector, _):
        await wait_until(live(connector, BTC))
        assert "XRP/USDT" in connector.pair_errors and "unknown symbol" in connector.pair_errors["XRP/USDT"]
        assert "BREAK" in connector.pair_errors["LUNA/USDT"]
        assert set(connector.books) == {BTC}
        assert "lunausdt" not in fake.sessions[0].received[0] and "xrp" not in fake.sessions[0].received[0]


@pytest.mark.parametrize("fault", [Fault.REST_429, Fault.REST_418])
async def test_rest_rate_limit_honours_retry_after(fault: Fault) -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.inject(fault, retry_after=1)
        started = time.monotonic()
        fake.inject(Fault.GAP, BTC)
        await wait_until(lambda: connector.books[BTC].resyncs >= 1)
        await wait_until(live(connector, BTC), timeout=5)
        assert time.monotonic() - started >= 0.9  # the snapshot waited for Retry-After
        assert connector.error_counts.get("rate_limit") == 1
        assert connector.books[ETH].live
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_rate_limited_exchange_info_at_startup() -> None:
    fake = CheckedFake(seed=5, rate_hz=200)
    fake.inject(Fault.REST_429, retry_after=1)
    started = time.monotonic()
    async with running(fake) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        assert time.monotonic() - started >= 0.9
        assert fake.rest_log[:2] == ["/api/v3/exchangeInfo", "/api/v3/exchangeInfo"]


async def test_server_shutdown_reconnects_at_once() -> None:
    async with running() as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        fake.server_shutdown(grace_s=10)
        await wait_until(lambda: connector.reconnects >= 1, timeout=2, what="reconnect before the server goes")
        assert connector.shutdown_notices == 1
        await wait_until(live(connector, BTC, ETH))
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_connection_lifetime_end_is_a_routine_reconnect() -> None:
    fake = CheckedFake(seed=9, rate_hz=200, max_connection_age_s=0.6)
    async with running(fake) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        await wait_until(lambda: connector.reconnects >= 1, what="lifetime reconnect")
        await wait_until(live(connector, BTC, ETH), what="LIVE on the new connection")


async def test_answers_server_pings() -> None:
    fake = CheckedFake(seed=11, rate_hz=100, ping_interval_s=0.05, pong_timeout_s=0.3)
    async with running(fake) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        await anyio.sleep(0.8)
        assert connector.reconnects == 0 and connector.books[BTC].live


async def test_snapshot_older_than_the_stream_is_refetched() -> None:
    class LaggingFake(CheckedFake):
        lagged = 0

        def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
            if path == "/api/v3/depth" and query.get("symbol") == BTC and self.lagged < 2:
                self.lagged += 1
                return 200, {"lastUpdateId": self.update_ids[BTC] - 10_000, "bids": [["1.00", "1.0"]], "asks": []}
            return super().rest(path, query)

    lagging = LaggingFake(seed=13, rate_hz=200)
    async with running(lagging) as (fake, connector, _):
        await wait_until(live(connector, BTC, ETH))
        assert lagging.lagged == 2
        assert connector.books[BTC].resyncs == 0 and connector.books[BTC].gaps == 0
        assert sum("symbol=BTCUSDT" in p for p in fake.rest_log) == 3
        await assert_in_sync(fake, connector, BTC, ETH)


async def test_plugin_entry_point_and_config() -> None:
    (ep,) = [e for e in entry_points(group="aggcore") if e.name == "binance"]
    module = ep.load()
    assert module.aggcore_register_connectors() == [BinanceConnector]
    assert BinanceConnector.name == "binance" and BinanceConnector.fake_server == "aggcore_plugin_binance.fake:FakeBinance"
    with pytest.raises(ValueError):
        BinanceConfig(trading_pairs=["BTC/USDT"], bogus=1)  # type: ignore[call-arg]
    cfg = BinanceConfig()
    assert cfg.rate_limit.requests_per_second * 60 + cfg.rate_limit.burst_size <= 6000
    c = BinanceConnector(BinanceConfig(ws_url="wss://data-stream.binance.vision/ws", depth=9000))
    assert c.connection_url(["BTCUSDT"]) == "wss://data-stream.binance.vision/stream"
    assert c.snapshot_limit == 5000
    assert BinanceConnector.max_messages_per_second < 5


def test_frames_of_a_symbol_outside_the_subscribed_decoder_still_reach_its_book() -> None:
    """The connector decodes with the decoder of the symbols it subscribed (see
    messages.depth_decoder); a book's frames reach it whichever decoder takes them, and a frame
    of a symbol with no book is ignored."""
    from aggcore_plugin_binance.messages import parse_snapshot

    connector = BinanceConnector(BinanceConfig(trading_pairs=[BTC, ETH]))
    for sym in (BTC, ETH):
        book = connector.books[sym] = SymbolBook("binance", sym, sym, connector.rules)
        book.snapshot_fetched(parse_snapshot(sym, {"lastUpdateId": 10, "bids": [["100.0", "1"]], "asks": [["101.0", "1"]]}))
    connector.subscribe_frames([BTC])  # ETH's book exists, but the decoder knows only BTC
    for sym, price in ((BTC, "100.5"), (ETH, "100.25"), ("XRPUSDT", "1.0")):
        frame = (
            f'{{"stream":"{sym.lower()}@depth@100ms","data":{{"e":"depthUpdate","E":1672515782136,"s":"{sym}",'
            f'"U":11,"u":11,"b":[["{price}","2"]],"a":[]}}}}'
        )
        connector.on_frame(None, frame, time.monotonic_ns())  # type: ignore[arg-type]
    for sym, price in ((BTC, 100.5), (ETH, 100.25)):
        book = connector.books[sym]
        assert book.live and book.last_seq == 11 and book.book.bids.top(1) == [(price, 2.0)], sym
        assert book.last_exchange_ts == 1672515782.136, sym
    assert "XRPUSDT" not in connector.books and connector.errors == 0
