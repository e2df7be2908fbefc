"""The postgres sink against a real PostgreSQL 15 on 127.0.0.1 (one cluster per module; a crash
restart in the middle of a run included)."""

from __future__ import annotations

import asyncio
import enum
import gc
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.abc
import asyncpg
import msgspec
import pytest

from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.fanout import SinkRunner
from aggcore.plugins import load_plugins
from aggcore.sink import Event
from aggcore.testing.events import json_field_gaps, payload_type, sample_books, sample_events, sample_metrics, unset_fields
from aggcore.testing.services import PostgresServer, free_port, postgres_server, write_through_restart
from aggcore_plugin_postgres import ADDED, COLUMNS, PostgresSink, PostgresSinkConfig, ddl, upgrade_ddl

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


async def test_database_restart_mid_run(server: PostgresServer, db: Any) -> None:
    events = [e for e in sample_events(4000, seed=2) if e.kind != "health"]
    sink = make(server.dsn, "r_", batch_max_events=100)
    await sink.open()
    # pg_ctl -m immediate: no clean shutdown
    await write_through_restart(sink, events, server, down_s=1.0, chunk=25, pause_s=0.003)
    await sink.close()
    assert sink.reconnects >= 1 and "disconnected" in (sink.last_error or "")
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


def _after(chunk: bytes, kind: bytes) -> int | None:
    """Where the first whole message of ``kind`` in ``chunk`` (server messages from its start) ends."""
    at = 0
    while at + 5 <= len(chunk):
        end = at + 1 + int.from_bytes(chunk[at + 1 : at + 5], "big")
        if chunk[at : at + 1] == kind and end <= len(chunk):
            return end
        at = end
    return None


_FATAL = b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0"


class _KillBeforeCopy:
    """A TCP proxy in front of the server that, once, passes on the reply to the statement asyncpg
    prepares before a COPY (``SELECT <columns> FROM <table> LIMIT 1``) and then ends the session as
    ``pg_terminate_backend`` does: a FATAL ErrorResponse right after that reply, the close a little
    later. The server's goodbye is then there when the COPY starts, as a real terminate's now and
    then is."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.killed = 0

    async def serve(self, listener: Any) -> None:
        await listener.serve(self._session)

    async def _session(self, client: Any) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.port) as upstream:
            described = anyio.Event()

            async def up() -> None:
                async for chunk in client:
                    if chunk[:1] == b"P" and b" LIMIT 1\0" in chunk and not self.killed:
                        described.set()
                    await upstream.send(chunk)

            async def down() -> None:
                async for chunk in upstream:
                    end = _after(chunk, b"T") if described.is_set() and not self.killed else None
                    if end is None:
                        await client.send(chunk)
                        continue
                    self.killed += 1
                    await client.send(chunk[:end] + b"E" + (len(_FATAL) + 4).to_bytes(4, "big") + _FATAL)
                    await anyio.sleep(0.2)
                    raise anyio.EndOfStream

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(up)
                    tg.start_soon(down)
            except* (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass


async def test_a_session_ended_between_two_operations_is_written_again_without_stray_errors(server: PostgresServer) -> None:
    """asyncpg's COPY makes its waiter before it checks the session (asyncpg 0.32): a FATAL that came
    just after the previous reply leaves that waiter behind, and asyncio reports its exception
    "never retrieved" once the session closes. The sink settles it; the batch is written again."""
    proxy = _KillBeforeCopy(server.port)
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
            tg.start_soon(proxy.serve, listener)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            sink = make(f"postgresql://aggcore@127.0.0.1:{port}/postgres", "fatal_", events=["summary"], backoff_max_s=0.05)
            await sink.open()
            events = [e for e in sample_events(100, seed=5) if e.kind == "summary"]
            await sink.write(events)
            with anyio.fail_after(10):
                while sink.pending_events:
                    await anyio.sleep(0.02)
            await sink.close()
            tg.cancel_scope.cancel()
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert proxy.killed == 1 and sink.reconnects >= 1 and "another operation" in (sink.last_error or "")
    assert sink.delivered_events == len(events) and sink.dropped_events == 0
    assert reported == []
    conn = await asyncpg.connect(server.dsn)
    try:
        assert await conn.fetchval("SELECT count(DISTINCT published_at) FROM fatal_summary") == len(events)
        assert await conn.fetchval("SELECT count(*) FROM fatal_summary") == len(events)
    finally:
        await conn.close()


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
    for statement in ddl() + upgrade_ddl():
        assert statement + ";" in readme, statement.splitlines()[0]


# -- every field of every payload type -----------------------------------------------------------------------------
#: table -> {field: column} for the fields stored under another name; every other field is the column of its name
RENAMED: dict[str, dict[str, str]] = {
    "summary": {"timestamp": "ts"},
    "arbitrage": {"timestamp": "ts"},
    "health": {"exchange": "name"},
    "metrics": {},
    "book": {"published_ts": "ts"},
}
KINDS = ("summary", "arbitrage", "health", "metrics", "book")


def all_samples() -> list[Event]:
    return sorted(sample_events(500) + sample_metrics(30) + sample_books(40), key=lambda e: e.ts)


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_the_payload_type_has_a_column(kind: str) -> None:
    """Derived from the msgspec type: a field added to a public type fails here until the table stores it."""
    columns = {c for c, _ in COLUMNS[kind]}
    fields = [RENAMED[kind].get(f.name, f.name) for f in msgspec.structs.fields(payload_type(kind))]  # type: ignore[arg-type]
    assert [c for c in fields if c not in columns] == []
    assert set(ADDED) <= set(COLUMNS) and all(c in columns for c in ADDED.get(kind, []))
    for c, sql in COLUMNS[kind]:  # added columns hold NULL in the rows written before them, never a made-up value
        if c in ADDED.get(kind, []):
            assert "NOT NULL" not in sql and "DEFAULT" not in sql, c


def expected_row(kind: str, e: Event) -> dict[str, Any]:
    """Every field of the payload under its column, as asyncpg reads it back (jsonb decoded)."""
    p: Any = e.payload
    sql = dict(COLUMNS[kind])
    data = e.to_dict()["data"]
    out: dict[str, Any] = {"published_at": utc(e.ts)}
    for f in msgspec.structs.fields(type(p)):
        col = RENAMED[kind].get(f.name, f.name)
        v = getattr(p, f.name)
        if sql[col].startswith("jsonb"):
            v = json.loads(json.dumps(data[f.encode_name]))  # the JSON of Event.to_dict() (tuples become arrays)
        elif sql[col].startswith("timestamptz") and isinstance(v, float):
            v = utc(v)  # BookMessage times: seconds
        elif isinstance(v, enum.Enum):
            v = v.value
        elif isinstance(v, list):
            v = list(v)
        out[col] = v
    return out


def stored_row(kind: str, record: Any) -> dict[str, Any]:
    sql = dict(COLUMNS[kind])
    return {k: (json.loads(v) if v is not None and sql[k].startswith("jsonb") else list(v) if sql[k].startswith("text[]") else v) for k, v in record.items()}


async def check_every_field(db: Any, table: str, kind: str, events: list[Event]) -> list[dict[str, Any]]:
    """The rows of ``table`` (ordered by published_at) equal ``events`` field by field; returns them."""
    rows = [stored_row(kind, r) for r in await db.fetch(f"SELECT * FROM public.{table} ORDER BY published_at")]
    assert len(rows) == len(events)
    want = [expected_row(kind, e) for e in events]
    assert [{c: r[c] for c in w} for r, w in zip(rows, want, strict=True)] == want
    T = payload_type(kind)  # type: ignore[arg-type]
    jsonb = [f.name for f in msgspec.structs.fields(T) if dict(COLUMNS[kind])[RENAMED[kind].get(f.name, f.name)].startswith("jsonb")]
    for r, e in zip(rows, events, strict=True):  # the jsonb columns hold every field of the nested types (levels, SymbolHealth)
        stored = {**e.to_dict()["data"], **{f: r[RENAMED[kind].get(f, f)] for f in jsonb}}
        assert json_field_gaps(stored, T) == []
    if kind in ("health", "metrics"):  # a report is about the instant it was published
        assert [r["ts"] for r in rows] == [utc(e.ts) for e in events]
    return rows


async def test_every_field_read_back_equal(server: PostgresServer, db: Any) -> None:
    """Round trip through the real server: every field of every event of every kind, by value."""
    events = all_samples()
    assert unset_fields(events) == [], "give these fields a value in aggcore.testing.events"
    sink = make(server.dsn, "f_", events=list(KINDS))
    await sink.open()
    for k in range(0, len(events), 60):
        await sink.write(events[k : k + 60])
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0
    for kind in KINDS:
        await check_every_field(db, f"f_{kind}", kind, [e for e in events if e.kind == kind])
    # the documented DDL is what exists
    cols = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_name LIKE 'f\\_%' ORDER BY table_name, ordinal_position"
    )
    for table, spec in COLUMNS.items():
        assert [r["column_name"] for r in cols if r["table_name"] == f"f_{table}"] == [c for c, _ in spec]
    assert any("CREATE TABLE IF NOT EXISTS public.f_summary" in s for s in ddl("public", "f_"))


def first_release_ddl(prefix: str) -> list[str]:
    """The tables as the first release created them: without the columns added since."""
    out = []
    for table, cols in COLUMNS.items():
        body = ",\n  ".join(f"{c} {t}" for c, t in cols if c not in ADDED.get(table, []))
        out.append(f"CREATE TABLE public.{prefix}{table} (\n  {body}\n)")
    return out


async def test_tables_of_an_earlier_version_get_the_new_columns(server: PostgresServer, db: Any) -> None:
    """Tables created by the previous schema, with rows: the sink adds the new columns at start (NULL
    in the old rows, which never recorded them), then every field of the new events is stored."""
    for statement in first_release_ddl("m_"):
        await db.execute(statement)
    events = [e for e in all_samples() if e.kind in ("arbitrage", "health")]
    old_arb: Any = next(e.payload for e in events if e.kind == "arbitrage")
    await db.execute(
        "INSERT INTO m_arbitrage VALUES ('2020-01-01Z', '2020-01-01Z', 'BTC/USDT', 'opened', 'binance', 'okx', 1, 2, 0.5, 0.1, 1, 0, 0.5, 1)"
    )
    await db.execute(
        "INSERT INTO m_health VALUES ('2020-01-01Z', '2020-01-01Z', 'binance', 'exchange', true, true, NULL, NULL, 0, 0, 0, '{}')"
    )
    # without create_tables the sink does not change the tables: a clear error naming what to run
    with pytest.raises(ConfigError, match=r"m_arbitrage lacks the columns gross_spread_percentage, buy_fee, sell_fee .*ALTER TABLE"):
        await make(server.dsn, "m_", events=["arbitrage", "health"], create_tables=False).open()
    sink = make(server.dsn, "m_", events=["arbitrage", "health"])
    await sink.open()
    await sink.write(events)
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0 and sink.health_error is None
    old = await db.fetchrow("SELECT gross_spread_percentage, buy_fee, sell_fee, symbol FROM m_arbitrage ORDER BY published_at LIMIT 1")
    assert tuple(old) == (None, None, None, "BTC/USDT") and old_arb.buy_fee != 0
    assert await db.fetchval("SELECT events FROM m_health WHERE name = 'binance' ORDER BY published_at LIMIT 1") is None
    await db.execute("DELETE FROM m_arbitrage WHERE buy_fee IS NULL")
    await db.execute("DELETE FROM m_health WHERE events IS NULL")
    for kind in ("arbitrage", "health"):
        await check_every_field(db, f"m_{kind}", kind, [e for e in events if e.kind == kind])
    cols = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_name LIKE 'm\\_%' ORDER BY table_name, ordinal_position"
    )
    for table, spec in COLUMNS.items():  # the same columns, in the same order, as a table created now
        assert [r["column_name"] for r in cols if r["table_name"] == f"m_{table}"] == [c for c, _ in spec]
    # started again: nothing left to add
    again = make(server.dsn, "m_", events=["arbitrage"], create_tables=False)
    await again.open()
    await again.close()
    # a DBA who keeps create_tables off runs the documented upgrade_ddl() instead
    for statement in first_release_ddl("m2_") + upgrade_ddl("public", "m2_") + ddl("public", "m2_"):  # + the progress table
        await db.execute(statement)
    dba = make(server.dsn, "m2_", events=["arbitrage", "health"], create_tables=False)
    await dba.open()
    await dba.write(events)
    await dba.close()
    assert dba.delivered_events == len(events)
    await check_every_field(db, "m2_arbitrage", "arbitrage", [e for e in events if e.kind == "arbitrage"])
