"""The NATS bus in-process (a toy exchange over loopback, a real nats-server): a consolidator's
books equal the feed's published books; while the server is down the consolidator excludes
the remote venue as its feed goes silent; after a kill -9 and restart on the same port and
store both sides recover by themselves, and each loss is counted in health and metrics.
Also: the nats sink's subjects and JSON payloads, config errors and secret server URLs."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import anyio
import httpx
import nats as nats_client
import pytest

from aggcore import Aggregator
from aggcore.bus import BookMessage
from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.models import BookState
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy
from aggcore_plugin_nats import NatsSink, NatsSinkConfig
from aggcore_plugin_nats.testing import NatsServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def registry() -> PluginRegistry:
    eps = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.") or ep.name == "nats"]
    return load_plugins(entry_points=[*eps, EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")], disabled=())


def bus(url: str, storage: str = "file") -> dict[str, Any]:
    return {"nats": {"servers": [url], "reconnect_wait_s": 0.1, "storage": storage}, "heartbeat_ms": 100, "silent_after_ms": 600}


@pytest.mark.parametrize("storage", ["file", "memory"])  # a memory stream is gone after the restart: made again
async def test_in_process_feed_and_consolidator_survive_a_server_kill(nats_srv: NatsServer, storage: str) -> None:
    reg = registry()
    async with FakeToy(seed=5, rate_hz=100) as fake:
        feed_cfg = {"exchanges": {"toy": fake.connector_config(stale_after_s=5)}, "bus": bus(nats_srv.url, storage)}
        cons_cfg = {
            "bus": bus(nats_srv.url, storage),
            "monitoring": {"metrics": {"enabled": True, "prometheus": {"enabled": True, "port": 0}}},
        }
        async with Aggregator(feed_cfg, registry=reg, role="feed") as feed, Aggregator(cons_cfg, registry=reg, role="consolidate") as cons:
            assert not feed.analyzers and not feed.hub.sinks and not cons.connectors
            published: dict[tuple[str, int, int], BookMessage] = {}
            sub = feed.subscribe_books()

            async def record() -> None:
                async for m in sub:
                    published[(m.symbol, m.epoch, m.version)] = m

            async with anyio.create_task_group() as tg:
                tg.start_soon(record)
                remote = cons.remote
                assert remote is not None
                await wait_until(
                    lambda: len(remote.books) == 2 and all(r.book.live for r in remote.books.values()), what="remote books LIVE"
                )
                # the consolidator's book is exactly the feed's book as published (same epoch and version)
                await anyio.sleep(0.3)
                for (venue, symbol), r in remote.books.items():
                    m = published[(symbol, r.epoch, r.version)]
                    assert r.book.book.bids.top(50) == m.bids and r.book.book.asks.top(50) == m.asks
                assert set(cons.router.views["BTC/USDT"].merge(10, 5000).venues) == {"toy"}

                # the server goes away: the venue is excluded as its feed goes silent
                await anyio.to_thread.run_sync(lambda: nats_srv.stop(hard=True))
                await wait_until(lambda: not cons.bus.connected and not feed.bus.connected, what="both see the loss")  # type: ignore[union-attr]
                await wait_until(
                    lambda: "feed silent" in cons.router.views["BTC/USDT"].merge(10, 5000).excluded.get("toy", ""),
                    what="toy excluded as feed silent",
                )
                health = cons.get_all_health_statuses()
                assert not health["bus:nats"].is_healthy and not health["toy"].connected
                versions = {k: (r.epoch, r.version) for k, r in remote.books.items()}

                # back on the same port and store: both recover by themselves
                await anyio.to_thread.run_sync(nats_srv.start)
                await wait_until(
                    lambda: all(r.book.live and (r.epoch, r.version) > versions[k] for k, r in remote.books.items()),
                    what="remote books LIVE with newer versions after the restart",
                    timeout=15,
                )
                assert set(cons.router.views["BTC/USDT"].merge(10, 5000).venues) == {"toy"}
                health = cons.get_all_health_statuses()
                assert health["bus:nats"].is_healthy and health["bus:nats"].reconnects == 1
                assert feed.get_all_health_statuses()["bus:nats"].reconnects == 1
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"http://127.0.0.1:{cons.metrics_port}/metrics")).text
                assert 'aggcore_bus_connection_losses_total{bus="nats"} 1.0' in text
                assert 'aggcore_book_state{exchange="toy",state="LIVE",symbol="BTC/USDT"} 1.0' in text
                tg.cancel_scope.cancel()


async def test_bus_pairs_shard_a_consolidator_by_pair(nats_srv: NatsServer) -> None:
    reg = registry()
    async with FakeToy(seed=6, rate_hz=50) as fake:
        feed_cfg = {"exchanges": {"toy": fake.connector_config(stale_after_s=5)}, "bus": bus(nats_srv.url)}
        cons_cfg = {"bus": {**bus(nats_srv.url), "pairs": ["ETH/USDT"]}}
        async with Aggregator(feed_cfg, registry=reg, role="feed"), Aggregator(cons_cfg, registry=reg, role="consolidate") as cons:
            remote = cons.remote
            assert remote is not None
            await wait_until(lambda: any(r.book.live for r in remote.books.values()), what="a remote book")
            await anyio.sleep(0.3)
            assert {r.book.pair for r in remote.books.values()} == {"ETH/USDT"}
            assert list(cons.router.views) == ["ETH/USDT"]


async def test_nats_sink_publishes_json_on_documented_subjects(nats_srv: NatsServer) -> None:
    from aggcore.models import HealthStatus, PriceLevel, Summary, utcnow

    nc = await nats_client.connect(nats_srv.url)
    got: list[tuple[str, dict[str, Any]]] = []

    async def cb(msg: Any) -> None:
        got.append((msg.subject, json.loads(msg.data)))

    await nc.subscribe("aggcore.v1.>", cb=cb)
    sink = NatsSink(NatsSinkConfig.model_validate({"servers": [nats_srv.url], "events": ["summary", "health", "book"]}))
    await sink.open()
    await wait_until(lambda: sink.link.connected, what="sink connected")
    now = utcnow()
    summary = Summary(
        symbol="BTC/USDT", spread=1.0, bids=[PriceLevel(price=99.0, quantity=1.0, exchange="a", timestamp=now)],
        asks=[PriceLevel(price=100.0, quantity=2.0, exchange="b", timestamp=now)], timestamp=now, venues=["a", "b"],
    )  # fmt: skip
    health = HealthStatus(exchange="a", is_healthy=True, last_update=now)
    book = BookMessage(
        venue="a", symbol="BTCUSDT", pair="BTC/USDT", state="LIVE", epoch=1, version=2, bids=[(99.0, 1.0)],
        asks=[(100.0, 2.0)], receipt_ts=1.0, seen_ts=1.0, published_ts=1.0,
    )  # fmt: skip
    await sink.write([Event("summary", summary), Event("health", health), Event("book", book)])
    await wait_until(lambda: len(got) == 3, what="three messages")
    await sink.close()
    await nc.close()
    subjects = {s: d for s, d in got}
    assert subjects["aggcore.v1.summary.BTC-USDT"]["data"]["bids"][0]["price"] == 99.0
    assert subjects["aggcore.v1.health"]["data"]["exchange"] == "a"
    assert subjects["aggcore.v1.books.a.BTC-USDT"]["data"]["version"] == 2
    assert all(d["kind"] in ("summary", "health", "book") and "ts" in d for d in subjects.values())


async def test_sink_counts_what_it_cannot_send_while_the_server_is_away() -> None:
    sink = NatsSink(NatsSinkConfig.model_validate({"servers": ["nats://127.0.0.1:1"], "reconnect_wait_s": 0.05}))
    await sink.open()
    await sink.write([Event("health", __import__("aggcore").HealthStatus(exchange="a", is_healthy=True, last_update=None))])
    assert sink.dropped_events == 1 and "not connected to NATS" in (sink.health_error or "")
    await sink.close()


def test_bus_config_errors_name_the_key_and_keep_secrets_out() -> None:
    reg = registry()
    with pytest.raises(ConfigError) as info:
        load_config({"bus": {"nats": {"servers": ["http://bob:hunter22@x:1"], "storage": "disk"}}}, registry=reg)
    text = str(info.value)
    assert "bus.nats.servers" in text and "bus.nats.storage" in text and "hunter22" not in text
    cfg = load_config({"bus": {"nats": {"servers": ["nats://bob:hunter22@127.0.0.1:4222"]}}}, registry=reg)
    assert cfg.bus is not None and "hunter22" not in repr(cfg) and "hunter22" not in cfg.model_dump_json()
