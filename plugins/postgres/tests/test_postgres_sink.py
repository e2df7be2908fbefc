"""The postgres sink against a real PostgreSQL 15 on 127.0.0.1 (one cluster per module; a crash
restart in the middle of a run included)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import anyio
import asyncpg
import pytest

from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.fanout import SinkRunner
from aggcore.plugins import load_plugins
from aggcore.testing.events import sample_books, sample_events, sample_metrics
from aggcore.testing.services import PostgresServer, free_port, postgres_server
from aggcore_plugin_postgres import COLUMNS, PostgresSink, PostgresSinkConfig, ddl

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as s:
        yield s


@pytest.fixture
async def db(server: PostgresServer) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(server.dsn)
    yield conn
    await conn.close()


def make(dsn: str, prefix: str, **kw: Any) -> PostgresSink:
    cfg = {"dsn": dsn, "table_prefix": prefix, "events": ["summary", "arbitrage", "health"], "batch_max_delay_ms": 5,
           "backoff_max_s": 0.3, **kw}  # fmt: skip
    return PostgresSink(PostgresSinkConfig.model_validate(cfg))


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


async def test_every_value_as_emitted(server: PostgresServer, db: Any) -> None:
    events = sorted(sample_events(500) + sample_metrics(30) + sample_books(40), key=lambda e: e.ts)
    sink = make(server.dsn, "v_", events=["summary", "arbitrage", "health", "metrics", "book"])
    await sink.open()
    for k in range(0, len(events), 60):
        await sink.write(events[k : k + 60])
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0 and sink.health_error is None

    summaries = [e for e in events if e.kind == "summary"]
    rows = await db.fetch("SELECT * FROM public.v_summary ORDER BY published_at")
    assert len(rows) == len(summaries)
    for row, e in zip(rows, summaries, strict=True):
        p: Any = e.payload
        d = e.to_dict()["data"]
        assert row["ts"] == p.timestamp and row["published_at"] == utc(e.ts)
        assert (row["symbol"], row["best_bid"], row["best_ask"], row["mid"], row["spread"], row["crossed"]) == (
            p.symbol, p.best_bid, p.best_ask, p.mid, p.spread, p.crossed,
        )  # fmt: skip
        assert list(row["venues"]) == list(p.venues)
        for col in ("bids", "asks", "excluded", "venue_age_ms"):
            assert json.loads(row[col]) == d[col], col
    arbs = [e for e in events if e.kind == "arbitrage"]
    rows = await db.fetch("SELECT * FROM public.v_arbitrage ORDER BY published_at")
    assert [tuple(r.values()) for r in rows] == [
        (p.timestamp, utc(e.ts), p.symbol, p.event, p.buy_exchange, p.sell_exchange, p.buy_price, p.sell_price,
         p.profit_percentage, p.profit, p.volume, p.duration_ms, p.peak_profit_percentage, p.peak_volume)
        for e in arbs
        for p in [e.payload]  # type: ignore[attr-defined]
    ]  # fmt: skip
    health = [e for e in events if e.kind == "health"]
    rows = await db.fetch("SELECT * FROM public.v_health ORDER BY published_at")
    assert len(rows) == len(health)
    for row, e in zip(rows, health, strict=True):
        p = e.payload
        assert (row["name"], row["kind"], row["is_healthy"], row["connected"], row["last_update"], row["error_message"]) == (
            p.exchange, p.kind, p.is_healthy, p.connected, p.last_update, p.error_message,
        )  # fmt: skip
        assert (row["reconnects"], row["resyncs"]) == (p.reconnects, p.resyncs)
        assert json.loads(row["symbols"]) == e.to_dict()["data"]["symbols"]
    ms = [e for e in events if e.kind == "metrics"]
    rows = await db.fetch("SELECT * FROM public.v_metrics ORDER BY published_at")
    assert [tuple(r.values()) for r in rows] == [
        (utc(e.ts), utc(e.ts), p.exchange, p.symbol, p.updates_per_second, p.latency_ms, p.error_count, p.last_update,
         p.messages, p.level_updates, p.gaps, p.resyncs, p.checksum_failures)
        for e in ms for p in [e.payload]  # type: ignore[attr-defined]
    ]  # fmt: skip
    bs = [e for e in events if e.kind == "book"]
    rows = await db.fetch("SELECT * FROM public.v_book ORDER BY published_at")
    assert len(rows) == len(bs)
    for row, e in zip(rows, bs, strict=True):
        m: Any = e.payload
        assert (row["ts"], row["venue"], row["symbol"], row["pair"], row["state"], row["reason"], row["epoch"], row["version"]) == (
            utc(m.published_ts), m.venue, m.symbol, m.pair, m.state, m.reason, m.epoch, m.version,
        )  # fmt: skip
        assert json.loads(row["bids"]) == [list(x) for x in m.bids] and json.loads(row["asks"]) == [list(x) for x in m.asks]
        assert row["exchange_ts"] == (None if m.exchange_ts is None else utc(m.exchange_ts))
        assert (row["receipt_ts"], row["seen_ts"]) == (utc(m.receipt_ts), utc(m.seen_ts))
    # the documented DDL is what exists
    cols = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_name LIKE 'v\\_%' ORDER BY table_name, ordinal_position"
    )
    for table, spec in COLUMNS.items():
        assert [r["column_name"] for r in cols if r["table_name"] == f"v_{table}"] == [c for c, _ in spec]
    assert any("CREATE TABLE IF NOT EXISTS public.v_summary" in s for s in ddl("public", "v_"))


async def test_database_restart_mid_run(server: PostgresServer, db: Any) -> None:
    events = [e for e in sample_events(4000, seed=2) if e.kind != "health"]
    sink = make(server.dsn, "r_", batch_max_events=100)
    await sink.open()
    done = threading.Event()

    def crash_and_restart() -> None:
        server.restart(down_s=1.0)  # pg_ctl -m immediate: no clean shutdown
        done.set()

    first = len(events) // 500 * 100  # a multiple of the chunk sizes
    for k in range(0, first, 25):
        await sink.write(events[k : k + 25])
        await anyio.sleep(0.003)
    threading.Thread(target=crash_and_restart, daemon=True).start()
    k = first
    with anyio.fail_after(30):  # keep writing, slowly, until the sink has met the dead server
        while sink.health_error is None:
            assert k < len(events), "the server never went away while events were written"
            await sink.write(events[k : k + 5])
            k += 5
            await anyio.sleep(0.01)
        saw_error = True
        for k in range(k, len(events), 25):  # the rest, while the server is away and after it is back
            await sink.write(events[k : k + 25])
            await anyio.sleep(0.002)
        while not done.is_set():
            await anyio.sleep(0.05)
    with anyio.fail_after(30):
        while sink.pending_events:
            await anyio.sleep(0.05)
    await sink.close()
    assert saw_error and sink.reconnects >= 1 and "disconnected" in (sink.last_error or "")
    conn = await asyncpg.connect(server.dsn)  # the fixture's connection died with the server
    try:
        n = await conn.fetchval("SELECT (SELECT count(*) FROM r_summary) + (SELECT count(*) FROM r_arbitrage)")
        distinct = await conn.fetchval(
            "SELECT (SELECT count(DISTINCT published_at) FROM r_summary) + (SELECT count(DISTINCT published_at) FROM r_arbitrage)"
        )
    finally:
        await conn.close()
    assert sink.delivered_events + sink.dropped_events == len(events)
    assert n == distinct == sink.delivered_events  # all there once, or counted as dropped
    assert sink.dropped_events == 0  # the buffer had room for the outage


async def test_a_database_that_refuses_writes_holds_events_until_it_takes_them(server: PostgresServer, db: Any) -> None:
    sink = make(server.dsn, "ro_", events=["summary"], backoff_max_s=0.1)
    await sink.open()
    events = [e for e in sample_events(300, seed=3) if e.kind == "summary"]
    await sink.write(events[:50])
    with anyio.fail_after(5):
        while sink.pending_events:
            await anyio.sleep(0.02)
    # the database takes no writes (as when its disk is full or it became a standby) ...
    await db.execute("ALTER DATABASE postgres SET default_transaction_read_only = on")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = 'postgres'")
    await sink.write(events[50:])
    with anyio.fail_after(10):
        while "refuses writes for now" not in (sink.health_error or ""):
            await anyio.sleep(0.02)
    assert "ReadOnlySQLTransactionError" in (sink.health_error or "") and sink.dropped_events == 0
    # ... and takes them again
    await db.execute("ALTER DATABASE postgres RESET default_transaction_read_only")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = 'postgres'")
    with anyio.fail_after(15):
        while sink.pending_events:
            await anyio.sleep(0.02)
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0 and sink.health_error is None
    assert await db.fetchval("SELECT count(DISTINCT published_at) FROM ro_summary") == len(events)
    assert await db.fetchval("SELECT count(*) FROM ro_summary") == len(events)


async def test_a_rejected_batch_is_dropped_counted_and_the_next_goes_on(server: PostgresServer, db: Any) -> None:
    sink = make(server.dsn, "rej_", events=["summary"], batch_max_events=10)
    await sink.open()
    events = [e for e in sample_events(300, seed=4) if e.kind == "summary"]
    await sink.write(events[:10])
    with anyio.fail_after(5):
        while sink.pending_events:
            await anyio.sleep(0.02)
    await db.execute("ALTER TABLE rej_summary ADD CONSTRAINT no_btc CHECK (symbol <> 'BTC/USDT') NOT VALID")  # a DBA's change
    await sink.write(events[10:20])
    with anyio.fail_after(5):
        while sink.pending_events:
            await anyio.sleep(0.02)
    assert sink.dropped_events == 10 and "rejected a batch of 10 events" in (sink.health_error or "")
    assert "CheckViolationError" in (sink.health_error or "")
    await db.execute("ALTER TABLE rej_summary DROP CONSTRAINT no_btc")
    await sink.write(events[20:30])
    await sink.close()
    assert sink.delivered_events == 20 and sink.dropped_events == 10 and sink.health_error is None
    assert await db.fetchval("SELECT count(*) FROM rej_summary") == 20


async def test_unreachable_at_start_holds_a_bounded_buffer() -> None:
    port = free_port()
    sink = make(f"postgresql://aggcore@127.0.0.1:{port}/postgres", "u_", max_pending_events=50, connect_timeout_s=0.5,
                close_timeout_s=0.3)  # fmt: skip
    await sink.open()
    assert sink.health_error is not None and f"cannot connect to postgres postgresql://***@127.0.0.1:{port}/postgres" in sink.health_error
    await sink.write(sample_events(300))
    await sink.close()
    assert sink.delivered_events == 0 and sink.dropped_events == 300


async def test_lasting_errors_are_config_errors_that_cost_nothing_else(server: PostgresServer) -> None:
    secret_dsn = f"postgresql://aggcore:hunter2@127.0.0.1:{server.port}/nosuchdb"
    cfg = PostgresSinkConfig.model_validate({"dsn": secret_dsn})
    assert "hunter2" not in repr(cfg) and "hunter2" not in cfg.model_dump_json()
    with pytest.raises(ConfigError, match="sinks.postgres.dsn") as info:
        await PostgresSink(cfg).open()
    assert "nosuchdb" in str(info.value) and "hunter2" not in str(info.value)
    runner = SinkRunner(PostgresSink(cfg))
    await runner.run()
    assert not runner.opened and "cannot open" in (runner.health_error or "")
    with pytest.raises(ConfigError, match="sinks.postgres.schema"):
        await make(server.dsn, "s_", schema="nope").open()
    with pytest.raises(ConfigError, match="timescaledb extension is not installed"):
        await make(server.dsn, "t_", timescale="on").open()


def test_config_errors_name_the_key() -> None:
    registry = load_plugins()
    assert registry.sinks["postgres"] is PostgresSink
    with pytest.raises(ConfigError) as info:
        load_config({"sinks": {"postgres": {"dsn": "mysql://u:pw@h/db", "table_prefix": "A-b"}}}, registry=registry)
    text = str(info.value)
    assert "sinks.postgres.dsn" in text and "sinks.postgres.table_prefix" in text and "pw@" not in text
    with pytest.raises(ConfigError, match="sinks.postgres.dsn"):
        load_config({"sinks": {"postgres": {}}}, registry=registry)


def test_readme_documents_the_ddl() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for statement in ddl():
        assert statement + ";" in readme, statement.splitlines()[0]
