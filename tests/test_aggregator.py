"""The Aggregator API end to end against the in-process toy exchange over real sockets,
plus a real scrape of the Prometheus endpoint and /readyz."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import anyio
import httpx
import pytest

from aggcore import Aggregator, HealthStatus, Summary
from aggcore.models import BookState
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event, Sink, SinkConfig
from aggcore.testing import Fault
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy

pytestmark = pytest.mark.anyio


def registry() -> PluginRegistry:
    builtins = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.")]
    toy = EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")
    return load_plugins(entry_points=[*builtins, toy], disabled=())


def config(fake: FakeToy, **aggregation: Any) -> dict[str, Any]:
    section = fake.connector_config(stale_after_s=5, reconnect_min_s=0.05)
    return {
        "exchanges": {"toy": section},
        "aggregation": {"max_price_levels": 5, **aggregation},
        "monitoring": {"health_check_interval_ms": 100, "metrics": {"enabled": True, "prometheus": {"enabled": True, "port": 0}}},
    }


async def first(sub: Any, pred: Callable[[Any], bool] = lambda _: True, timeout: float = 5) -> Any:
    with anyio.fail_after(timeout):
        async for item in sub:
            if pred(item):
                return item
    raise AssertionError("subscription ended")


async def test_summaries_health_metrics_and_get_summary() -> None:
    async with FakeToy(seed=3, rate_hz=100) as fake:
        async with Aggregator(config(fake), registry=registry()) as agg:
            summary: Summary = await first(agg.subscribe_summaries("BTC/USDT"), lambda s: s.venues == ["toy"])
            assert summary.symbol == "BTC/USDT" and len(summary.bids) == 5 and summary.spread is not None
            assert all(level.exchange == "toy" for level in summary.bids + summary.asks)
            assert summary.bids[0].price < summary.asks[0].price
            now = agg.get_summary("BTCUSDT")  # the exchange's spelling works too
            assert now is not None and now.symbol == "BTC/USDT"
            assert set(agg.get_all_summaries()) == {"BTC/USDT", "ETH/USDT"}
            health = agg.get_all_health_statuses()["toy"]
            assert health.is_healthy and health.symbols["BTC/USDT"].state is BookState.LIVE
            metrics = {m.symbol: m for m in agg.get_all_metrics()}
            assert metrics["BTC/USDT"].messages > 0 and metrics["BTC/USDT"].error_count == 0


async def test_gap_resyncs_one_symbol_visible_in_health_other_stays_live() -> None:
    async with FakeToy(seed=4, rate_hz=100) as fake:
        async with Aggregator(config(fake), registry=registry()) as agg:
            toy = agg.connectors["toy"]
            await wait_until(lambda: len(toy.books) == 2 and all(b.live for b in toy.books.values()), what="books LIVE")
            eth = toy.books["ETHUSDT"]
            fake.inject(Fault.GAP, "BTCUSDT")
            await wait_until(lambda: toy.books["BTCUSDT"].gaps == 1, what="gap detected")
            assert eth.live and eth.resyncs == 0
            await wait_until(lambda: toy.books["BTCUSDT"].live, what="BTC back LIVE")
            health = agg.get_all_health_statuses()["toy"]
            assert health.resyncs == 1 and health.symbols["BTC/USDT"].gaps == 1


async def test_exchange_error_becomes_health_error_not_a_crash() -> None:
    async with FakeToy(seed=5, rate_hz=50) as fake:
        cfg = config(fake)
        cfg["exchanges"]["toy"]["trading_pairs"] = ["BTC/USDT", "DOGE/USDT"]
        async with Aggregator(cfg, registry=registry()) as agg:
            await wait_until(lambda: getattr(agg.connectors["toy"].books.get("BTCUSDT"), "live", False))
            # an error that cannot heal (unknown symbol): FAILED, retried after failed_retry_s
            fake.inject(Fault.ERROR_REPLY, "BTCUSDT", message="symbol halted: unknown symbol")
            await wait_until(lambda: agg.connectors["toy"].books["BTCUSDT"].state is BookState.FAILED)
            await wait_until(lambda: agg.connectors["toy"].healing("BTCUSDT")[0] is not None, what="the watchdog")
            status: HealthStatus = agg.get_all_health_statuses()["toy"]
            assert not status.is_healthy and "symbol halted" in (status.error_message or "")
            btc = status.symbols["BTC/USDT"]
            assert "retry the FAILED book" in (btc.waiting_for or "") and btc.next_retry_s is not None
            assert 0 < btc.next_retry_s <= agg.connectors["toy"].config.failed_retry_s
            assert "DOGE/USDT" in (status.error_message or "")  # unknown pair reported, not fatal
            summary = agg.get_summary("BTC/USDT")
            assert summary is not None and summary.bids == [] and "toy" in summary.excluded


async def test_prometheus_scrape_healthz_and_readyz() -> None:
    async with FakeToy(seed=6, rate_hz=100) as fake:
        async with Aggregator(config(fake), registry=registry()) as agg:
            assert agg.metrics_port
            base = f"http://127.0.0.1:{agg.metrics_port}"
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{base}/healthz")).status_code == 200
                await wait_until(lambda: len(agg.connectors["toy"].books) == 2 and all(b.live for b in agg.connectors["toy"].books.values()))
                ready = await client.get(f"{base}/readyz")
                assert ready.status_code == 200 and ready.json()["ready"] is True
                await anyio.sleep(0.2)
                text = (await client.get(f"{base}/metrics")).text
            assert 'aggcore_messages_total{exchange="toy",symbol="BTC/USDT"}' in text
            assert "aggcore_summary_latency_seconds_bucket" in text and 'le="1e-05"' in text
            assert 'aggcore_book_state{exchange="toy",state="LIVE",symbol="BTC/USDT"} 1.0' in text
            fake.pause()
            fake.inject(Fault.DISCONNECT)
            fake.inject(Fault.STALL, seconds=30)
            await wait_until(lambda: not agg.connectors["toy"].books["BTCUSDT"].live)
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 503 and "BTC/USDT" in ready.json()["pairs_without_live_venue"]


def _count(text: str, family: str) -> float:
    """The summed ``_count`` samples of a histogram family in a Prometheus scrape."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{family}_count"))


async def test_exchange_latency_is_sampled_once_per_update_not_per_analysis() -> None:
    async with FakeToy(seed=8, rate_hz=100) as fake:
        async with Aggregator(config(fake), registry=registry()) as agg:
            assert agg.telemetry is not None
            toy = agg.connectors["toy"]
            await wait_until(lambda: len(toy.books) == 2 and all(b.live for b in toy.books.values()), what="books LIVE")
            await wait_until(lambda: _count(agg.telemetry.scrape().decode(), "aggcore_exchange_latency_seconds") > 0, what="a sample")
            fake.pause()
            await anyio.sleep(0.2)  # what was on the wire is applied and analysed
            before = agg.telemetry.scrape().decode()
            for _ in range(3):  # analyses with no new update: the views are touched (as a state change does)
                for view in agg.router.views.values():
                    view.touch()
                await anyio.sleep(0.05)
            after = agg.telemetry.scrape().decode()
            # every touched view was analysed again (one receipt -> summary sample each)...
            assert _count(after, "aggcore_summary_latency_seconds") >= _count(before, "aggcore_summary_latency_seconds") + 3
            # ...and no book had a new update, so no new exchange -> receipt sample
            assert _count(after, "aggcore_exchange_latency_seconds") == _count(before, "aggcore_exchange_latency_seconds")


class Blocking(Sink):
    name = "blocking"

    async def write(self, events: Any) -> None:
        await anyio.sleep_forever()


class Collecting(Sink):
    name = "collecting"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.events: list[Event] = []

    async def write(self, events: Any) -> None:
        self.events.extend(events)


async def test_blocked_sink_and_slow_subscriber_never_delay_books_or_others() -> None:
    async with FakeToy(seed=7, rate_hz=200) as fake:
        blocking = Blocking(SinkConfig(buffer_size=10))
        collecting = Collecting(SinkConfig())
        agg = Aggregator(config(fake), registry=registry(), sinks=[blocking, collecting])
        async with agg:
            slow = agg.subscribe_summaries(maxsize=2)  # never read
            await wait_until(lambda: len(collecting.events) > 50, timeout=10, what="events reach the other sink")
            book = agg.connectors["toy"].books["BTCUSDT"]
            before = book.messages
            await anyio.sleep(0.3)
            assert book.messages > before  # books keep updating
            runner = next(r for r in agg.hub.sinks if r.name == "blocking")
            assert runner.dropped > 0 and slow.dropped > 0
            health = agg.get_all_health_statuses()
            assert not health["sink:blocking"].is_healthy and "dropped" in (health["sink:blocking"].error_message or "")


async def test_metrics_port_in_use_fails_start_with_a_config_error() -> None:
    import socket

    from aggcore import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeToy(seed=8) as fake:
            cfg = config(fake)
            cfg["monitoring"]["metrics"]["prometheus"]["port"] = port
            agg = Aggregator(cfg, registry=registry())
            with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
                await agg.start()
            assert not agg.started


class QuietBtc(FakeToy):
    """BTC stops changing (a quiet market); ETH goes on, on the same connection."""

    quiet = False

    def delta_frames(self, session: Any, symbol: str, changes: Any) -> list[str]:
        if self.quiet and symbol == "BTCUSDT":
            return []
        return super().delta_frames(session, symbol, changes)


async def test_a_quiet_book_on_a_live_connection_stays_live_and_in_the_view() -> None:
    async with QuietBtc(seed=9, rate_hz=100) as fake:
        cfg = config(fake)
        cfg["exchanges"]["toy"]["stale_after_s"] = 0.5
        cfg["aggregation"]["max_age_ms"] = 400
        async with Aggregator(cfg, registry=registry()) as agg:
            toy = agg.connectors["toy"]
            await wait_until(lambda: len(toy.books) == 2 and all(b.live for b in toy.books.values()))
            fake.quiet = True
            await anyio.sleep(1.5)  # three times stale_after_s without a BTC update
            btc = toy.books["BTCUSDT"]
            assert btc.live and btc.age_ms() > 1000  # no update for over a second, still current
            summary = agg.get_summary("BTC/USDT")
            assert summary is not None and summary.venues == ["toy"]
            fake.pause()  # now nothing arrives on the connection at all: that is stale
            await wait_until(lambda: not btc.live, timeout=3, what="BTC STALE once the connection is silent")
