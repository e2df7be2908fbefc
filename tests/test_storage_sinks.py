"""The three storage sinks inside a real Aggregator, configured by name as a user would: a toy
exchange over loopback, real PostgreSQL and Redis servers, Parquet files; what each stored equals
what the runtime published, and every event is delivered or counted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aggcore import Aggregator
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event, Sink, SinkConfig
from aggcore.testing.events import json_field_gaps, payload_type
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.services import postgres_server, redis_server
from aggcore.testing.toy import FakeToy

pytestmark = pytest.mark.anyio

NAMES = {"parquet", "postgres", "redis", "toy"}


def registry() -> PluginRegistry:
    eps = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.builtins") or ep.name in NAMES]
    if not {"parquet", "postgres", "redis"} <= {ep.name for ep in eps}:
        pytest.skip("the storage sink plugins are not installed")
    from importlib.metadata import EntryPoint

    eps.append(EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore"))
    return load_plugins(entry_points=eps, disabled=())


class Collecting(Sink):
    name = "collecting"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.events: list[Event] = []

    async def write(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


async def test_storage_sinks_store_what_was_published(tmp_path: Path) -> None:
    import asyncpg
    import duckdb
    import redis.asyncio as aioredis

    reg = registry()
    with postgres_server() as pg, redis_server() as rd:
        async with FakeToy(seed=21, rate_hz=200) as fake:
            kinds: Any = ["summary", "arbitrage", "health"]
            config = {
                "exchanges": {"toy": fake.connector_config(stale_after_s=5)},
                "aggregation": {"max_price_levels": 5, "summary_interval_ms": 20},
                "monitoring": {"health_check_interval_ms": 200},
                "sinks": {
                    "parquet": {"path": str(tmp_path / "pq"), "events": kinds},
                    "postgres": {"dsn": pg.dsn, "events": kinds, "batch_max_delay_ms": 20},
                    "redis": {"url": rd.url, "events": kinds, "batch_max_delay_ms": 20},
                },
            }
            collecting = Collecting(SinkConfig(events=kinds))
            agg = Aggregator(config, registry=reg, sinks=[collecting])
            await agg.start()
            try:
                await wait_until(
                    lambda: sum(e.kind == "summary" for e in collecting.events) >= 20, timeout=15, what="summaries"
                )
                health = agg.get_all_health_statuses()
                for name in ("parquet", "postgres", "redis"):
                    assert health[f"sink:{name}"].connected and health[f"sink:{name}"].reconnects == 0
            finally:
                await agg.stop()
        runners = {r.name: r for r in agg.hub.sinks}
        published = runners["collecting"].produced
        for name in ("parquet", "postgres", "redis"):
            r = runners[name]
            assert r.produced == published and r.delivered == published and r.total_dropped == 0, (name, r.accounting())

        summaries = [e for e in collecting.events if e.kind == "summary"]
        # parquet (DuckDB): every summary, its best levels and their venues
        rows = duckdb.sql(
            f"SELECT symbol, best_bid, best_ask, bids[1].exchange, len(asks) FROM read_parquet('{tmp_path}/pq/summary/**/*.parquet',"
            " hive_partitioning = true) ORDER BY published_at"
        ).fetchall()
        want = [(p.symbol, p.best_bid, p.best_ask, p.bids[0].exchange if p.bids else None, len(p.asks)) for p in (e.payload for e in summaries)]  # type: ignore[attr-defined]
        assert rows == want
        # postgres: the same rows
        conn = await asyncpg.connect(pg.dsn)
        try:
            got = await conn.fetch("SELECT symbol, best_bid, best_ask FROM aggcore_summary ORDER BY published_at")
            n_arb = await conn.fetchval("SELECT count(*) FROM aggcore_arbitrage")
        finally:
            await conn.close()
        assert [tuple(r) for r in got] == [w[:3] for w in want]
        assert n_arb == sum(e.kind == "arbitrage" for e in collecting.events)
        # redis: the latest summary of the pair, and the stream
        client = aioredis.Redis.from_url(rd.url)
        try:
            last = summaries[-1]
            raw = await client.get(f"aggcore:summary:{last.payload.symbol}")  # type: ignore[attr-defined]
            assert raw is not None and json.loads(raw) == last.to_dict()["data"]
            assert await client.xlen("aggcore:stream:summary") == len(summaries)
            for kind in kinds:  # what the runtime publishes: every field of its type, equal when decoded
                want = [e for e in collecting.events if e.kind == kind]
                entries = await client.xrange(f"aggcore:stream:{kind}")
                assert [json_field_gaps(json.loads(f[b"data"]), payload_type(kind)) for _, f in entries] == [[]] * len(want)
                assert [msgspec.json.decode(f[b"data"], type=payload_type(kind)) for _, f in entries] == [e.payload for e in want]
        finally:
            await client.aclose()
        # the runtime's health events (exchanges and sinks, with their event counts) in every store
        health = [e for e in collecting.events if e.kind == "health"]
        assert any(getattr(e.payload, "events", None) for e in health)  # a sink's accounting
        conn = await asyncpg.connect(pg.dsn)
        try:
            rows = await conn.fetch("SELECT name, events, symbols FROM aggcore_health ORDER BY published_at")
        finally:
            await conn.close()
        def key(name: str, events: Any, symbols: Any) -> str:  # health events of one instant may come in any order
            return json.dumps([name, events, symbols], sort_keys=True)

        want = sorted(key(d["exchange"], d["events"], d["symbols"]) for d in (e.to_dict()["data"] for e in health))
        assert sorted(key(r["name"], json.loads(r["events"]), json.loads(r["symbols"])) for r in rows) == want
        from aggcore_plugin_parquet import open_dataset

        table = open_dataset(tmp_path / "pq", "health").to_table(columns=["name", "events"])
        assert sorted(json.dumps([r["name"], dict(r["events"] or [])], sort_keys=True) for r in table.to_pylist()) == sorted(
            json.dumps([e.payload.exchange, e.payload.events], sort_keys=True) for e in health  # type: ignore[attr-defined]
        )
