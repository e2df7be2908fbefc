"""The ``postgres`` sink: events into PostgreSQL tables, in batches written with ``COPY`` (asyncpg).

Tables (created when absent, see :func:`ddl`; ``{schema}.{prefix}<name>``, default
``public.aggcore_``): ``summary``, ``arbitrage``, ``health``, ``metrics``, ``book``, and
``sink_progress`` (one row per sink run: the number of the last batch committed). With the
TimescaleDB extension installed in the database, the event tables become hypertables on ``ts``
(``timescale: auto``, the default; ``on`` requires it, ``off`` never uses it).

Each batch is one transaction: a ``COPY`` per table, then the run's progress row. After a
broken connection the sink reads the progress row, so a batch whose commit was acknowledged
too late is not written twice and one that did not commit is written again: every event is
in the tables once, or counted in ``dropped_events``. Reconnects, backoff, the bounded buffer
and the accounting are :class:`aggcore.buffered.BufferedSink`'s.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import asyncpg
import asyncpg.exceptions as pgexc
import orjson
from pydantic import Field, field_validator

from aggcore.buffered import BufferedSink, BufferedSinkConfig
from aggcore.credentials import SecretUrl
from aggcore.errors import ConfigError
from aggcore.sink import Event, EventKind, SinkConfig

__all__ = ["ADDED", "COLUMNS", "PostgresSink", "PostgresSinkConfig", "ddl", "upgrade_ddl"]

log = logging.getLogger("aggcore.sink.postgres")

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def _default_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health"]


class PostgresSinkConfig(BufferedSinkConfig):
    """``sinks.postgres``."""

    events: list[EventKind] = Field(default_factory=_default_events)
    dsn: SecretUrl = Field(
        ..., description="postgresql://user[:password]@host:port/database[?sslmode=...]; a secret: credentials never shown"
    )
    db_schema: str = Field("public", alias="schema", description="schema of the tables (must exist)")
    table_prefix: str = Field("aggcore_", description="prefix of every table name")
    create_tables: bool = Field(True, description="create the tables (and indexes) when absent")
    timescale: Literal["auto", "on", "off"] = Field(
        "auto", description="hypertables on ts: auto (when the timescaledb extension is installed), on (required), off"
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: SecretUrl) -> SecretUrl:
        return value.require_scheme("postgresql", "postgres")

    @field_validator("db_schema", "table_prefix")
    @classmethod
    def _check_ident(cls, value: str) -> str:
        if value and not _IDENT.match(value):
            raise ValueError("use lower-case letters, digits and _ (starting with a letter or _), at most 41 characters")
        return value


#: table -> [(column, SQL type)], in COPY order; every event table starts with ts and published_at
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "summary": [
        ("ts", "timestamptz NOT NULL"),  # Summary.timestamp
        ("published_at", "timestamptz NOT NULL"),  # Event.ts
        ("symbol", "text NOT NULL"),
        ("best_bid", "double precision"),
        ("best_ask", "double precision"),
        ("mid", "double precision"),
        ("spread", "double precision"),
        ("crossed", "boolean NOT NULL"),
        ("venues", "text[] NOT NULL"),
        ("excluded", "jsonb NOT NULL"),  # {"okx": "STALE"}
        ("venue_age_ms", "jsonb NOT NULL"),  # {"binance": 3.2}
        ("bids", "jsonb NOT NULL"),  # [{"price", "quantity", "exchange", "timestamp"}], best first
        ("asks", "jsonb NOT NULL"),
    ],
    "arbitrage": [
        ("ts", "timestamptz NOT NULL"),
        ("published_at", "timestamptz NOT NULL"),
        ("symbol", "text NOT NULL"),
        ("event", "text NOT NULL"),  # opened | updated | closed
        ("buy_exchange", "text NOT NULL"),
        ("sell_exchange", "text NOT NULL"),
        ("buy_price", "double precision NOT NULL"),
        ("sell_price", "double precision NOT NULL"),
        ("profit_percentage", "double precision NOT NULL"),
        ("profit", "double precision NOT NULL"),
        ("volume", "double precision NOT NULL"),
        ("duration_ms", "double precision NOT NULL"),
        ("peak_profit_percentage", "double precision NOT NULL"),
        ("peak_volume", "double precision NOT NULL"),
        ("gross_spread_percentage", "double precision"),  # added later: NULL in rows written before
        ("buy_fee", "double precision"),  # a fraction: 0.001 = 0.1 %
        ("sell_fee", "double precision"),
    ],
    "health": [
        ("ts", "timestamptz NOT NULL"),  # published_at (a health report is about "now")
        ("published_at", "timestamptz NOT NULL"),
        ("name", "text NOT NULL"),  # exchange, or sink:<name>
        ("kind", "text NOT NULL"),  # exchange | sink | analyzer | bus
        ("is_healthy", "boolean NOT NULL"),
        ("connected", "boolean NOT NULL"),
        ("last_update", "timestamptz"),
        ("error_message", "text"),
        ("reconnects", "bigint NOT NULL"),
        ("resyncs", "bigint NOT NULL"),
        ("checksum_failures", "bigint NOT NULL"),
        ("symbols", "jsonb NOT NULL"),  # {"BTC/USDT": {"symbol": "BTC/USDT", "state": "LIVE", ...}}: every SymbolHealth field
        ("events", "jsonb"),  # a sink's accounting {"produced": ..., "delivered": ...}; added later: NULL in rows written before
    ],
    "metrics": [
        ("ts", "timestamptz NOT NULL"),
        ("published_at", "timestamptz NOT NULL"),
        ("exchange", "text NOT NULL"),
        ("symbol", "text NOT NULL"),
        ("updates_per_second", "double precision NOT NULL"),
        ("latency_ms", "double precision NOT NULL"),
        ("error_count", "bigint NOT NULL"),
        ("last_update", "timestamptz"),
        ("messages", "bigint NOT NULL"),
        ("level_updates", "bigint NOT NULL"),
        ("gaps", "bigint NOT NULL"),
        ("resyncs", "bigint NOT NULL"),
        ("checksum_failures", "bigint NOT NULL"),
    ],
    "book": [
        ("ts", "timestamptz NOT NULL"),  # when the feed built the message (published_ts)
        ("published_at", "timestamptz NOT NULL"),
        ("venue", "text NOT NULL"),
        ("symbol", "text NOT NULL"),  # the exchange's own symbol
        ("pair", "text NOT NULL"),
        ("state", "text NOT NULL"),  # LIVE | SYNCING | RESYNCING | STALE | FAILED; only LIVE has levels
        ("reason", "text"),
        ("epoch", "bigint NOT NULL"),  # (epoch, version) orders a book's rows
        ("version", "bigint NOT NULL"),
        ("bids", "jsonb NOT NULL"),  # the full top of the book, [[price, quantity], ...], best first
        ("asks", "jsonb NOT NULL"),
        ("exchange_ts", "timestamptz"),
        ("receipt_ts", "timestamptz NOT NULL"),
        ("seen_ts", "timestamptz NOT NULL"),
    ],
}

#: columns added to a table after its first release: nullable (NULL in the rows written before, never
#: a made-up default); a table created by an earlier version gets them at start (``create_tables``)
ADDED: dict[str, list[str]] = {
    "arbitrage": ["gross_spread_percentage", "buy_fee", "sell_fee"],
    "health": ["events"],
}

_INDEX = {
    "summary": "symbol, ts DESC",
    "arbitrage": "symbol, ts DESC",
    "health": "name, ts DESC",
    "metrics": "exchange, symbol, ts DESC",
    "book": "venue, symbol, ts DESC",
}


def ddl(schema: str = "public", prefix: str = "aggcore_") -> list[str]:
    """The statements that create the tables and indexes (what ``create_tables`` runs)."""
    out = []
    for table, cols in COLUMNS.items():
        body = ",\n  ".join(f"{c} {t}" for c, t in cols)
        out.append(f"CREATE TABLE IF NOT EXISTS {schema}.{prefix}{table} (\n  {body}\n)")
        out.append(f"CREATE INDEX IF NOT EXISTS {prefix}{table}_key ON {schema}.{prefix}{table} ({_INDEX[table]})")
    out.append(
        f"CREATE TABLE IF NOT EXISTS {schema}.{prefix}sink_progress (\n"
        "  run_id text PRIMARY KEY,\n  batch bigint NOT NULL,\n  updated_at timestamptz NOT NULL DEFAULT now()\n)"
    )
    return out


def upgrade_ddl(schema: str = "public", prefix: str = "aggcore_") -> list[str]:
    """The statements that bring tables created by an earlier version up to date (:data:`ADDED`;
    what the sink runs at start for the columns a table lacks, when ``create_tables`` is on)."""
    out = []
    for table, added in ADDED.items():
        types = dict(COLUMNS[table])
        body = ",\n  ".join(f"ADD COLUMN IF NOT EXISTS {c} {types[c]}" for c in added)
        out.append(f"ALTER TABLE {schema}.{prefix}{table}\n  {body}")
    return out


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _row(event: Event) -> tuple[str, tuple[Any, ...]] | None:
    """(table, record) of one event, read from the payload's attributes; None for other kinds."""
    p: Any = event.payload
    kind = event.kind
    pub = _utc(event.ts)
    if kind == "summary":
        data = event.to_dict()["data"]
        return "summary", (
            p.timestamp, pub, p.symbol, p.best_bid, p.best_ask, p.mid, p.spread, bool(p.crossed), list(p.venues),
            _json(data["excluded"]), _json(data["venue_age_ms"]), _json(data["bids"]), _json(data["asks"]),
        )  # fmt: skip
    if kind == "arbitrage":
        return "arbitrage", (
            p.timestamp, pub, p.symbol, p.event, p.buy_exchange, p.sell_exchange, p.buy_price, p.sell_price,
            p.profit_percentage, p.profit, p.volume, p.duration_ms, p.peak_profit_percentage, p.peak_volume,
            p.gross_spread_percentage, p.buy_fee, p.sell_fee,
        )  # fmt: skip
    if kind == "health":
        data = event.to_dict()["data"]
        return "health", (
            pub, pub, p.exchange, p.kind, bool(p.is_healthy), bool(p.connected), p.last_update, p.error_message,
            p.reconnects, p.resyncs, p.checksum_failures, _json(data["symbols"]), _json(data["events"]),
        )  # fmt: skip
    if kind == "metrics":
        return "metrics", (
            pub, pub, p.exchange, p.symbol, p.updates_per_second, p.latency_ms, p.error_count, p.last_update, p.messages,
            p.level_updates, p.gaps, p.resyncs, p.checksum_failures,
        )  # fmt: skip
    if kind == "book":
        return "book", (
            _utc(p.published_ts), pub, p.venue, p.symbol, p.pair, p.state, p.reason, p.epoch, p.version,
            _json(p.bids), _json(p.asks), None if p.exchange_ts is None else _utc(p.exchange_ts), _utc(p.receipt_ts),
            _utc(p.seen_ts),
        )  # fmt: skip
    return None


def _settle_orphaned_waiter(conn: asyncpg.Connection[Any]) -> None:
    """Mark a waiter that asyncpg left behind as seen, before the connection is aborted.

    asyncpg's COPY (``Protocol.copy_in``, asyncpg 0.32) makes the future it waits on before it
    switches the protocol's state, outside its ``try``. When the server's FATAL message arrived
    just after the previous reply (a terminated backend, a shutdown), that switch raises, the
    future stays the protocol's waiter with no one awaiting it, and aborting the connection sets
    an exception on it: asyncio would log "Future exception was never retrieved" for a failure the
    sink has already handled. The writer is the connection's only user and is past its last
    operation here, so a pending future the protocol holds has no one else to read it.
    """
    for ref in gc.get_referents(getattr(conn, "_protocol", None)):
        if isinstance(ref, asyncio.Future) and not ref.done():
            ref.add_done_callback(_seen)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class PostgresSink(BufferedSink):
    """Events as rows, one COPY per table per batch, exactly once across reconnects."""

    name = "postgres"
    Config = PostgresSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        cfg = config if isinstance(config, PostgresSinkConfig) else PostgresSinkConfig.model_validate(config.model_dump(by_alias=True))
        super().__init__(cfg)
        self.cfg = cfg
        self.conn: asyncpg.Connection[Any] | None = None
        self.run_id = uuid.uuid4().hex
        self.hypertables = False
        self._created = False
        self.tables = {t: f"{cfg.table_prefix}{t}" for t in COLUMNS}

    def describe(self) -> str:
        return f"postgres {self.cfg.dsn}"

    def scrub(self, text: str) -> str:
        return self.cfg.dsn.scrub(text)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(
            exc,
            (OSError, TimeoutError, pgexc.PostgresConnectionError, pgexc.InterfaceError, pgexc.OperatorInterventionError,
             pgexc.InternalClientError),  # the client's connection state is broken: start on a new one
        )

    def is_refusal(self, exc: BaseException) -> bool:
        # disk full, out of memory, too many connections (class 53), read-only transaction (a standby)
        return isinstance(exc, (pgexc.InsufficientResourcesError, pgexc.ReadOnlySQLTransactionError))

    def is_permanent(self, exc: BaseException) -> bool:
        return isinstance(exc, ConfigError)

    async def connect(self) -> None:
        cfg = self.cfg
        try:
            conn: asyncpg.Connection[Any] = await asyncpg.connect(cfg.dsn.get_secret_value(), timeout=cfg.connect_timeout_s)
        except (pgexc.InvalidAuthorizationSpecificationError, pgexc.InvalidCatalogNameError) as exc:
            raise ConfigError(f"sinks.postgres.dsn: {self.describe()}: {self.scrub(str(exc))}") from exc
        self.conn = conn
        if not self._created:
            await self._prepare(conn)
            self._created = True

    async def _prepare(self, conn: asyncpg.Connection[Any]) -> None:
        cfg = self.cfg
        where = f"{self.describe()} schema {cfg.db_schema!r}"
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", cfg.db_schema):
                raise ConfigError(f"sinks.postgres.schema: {where} does not exist")
            if cfg.create_tables:
                for statement in ddl(cfg.db_schema, cfg.table_prefix):
                    await conn.execute(statement)
            has_ts = bool(await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"))
            if cfg.timescale == "on" and not has_ts:
                raise ConfigError("sinks.postgres.timescale: 'on' but the timescaledb extension is not installed in the database")
            if has_ts and cfg.timescale != "off":
                for table in COLUMNS:
                    await conn.execute(
                        f"SELECT create_hypertable('{cfg.db_schema}.{self.tables[table]}', 'ts', "
                        "if_not_exists => TRUE, migrate_data => TRUE)"
                    )
                self.hypertables = True
            for table in self.tables.values():  # the tables exist (created by us or by the DBA)
                await conn.fetchval(f"SELECT 1 FROM {cfg.db_schema}.{table} LIMIT 0")
            await self._add_columns(conn)
        except (pgexc.InsufficientPrivilegeError, pgexc.UndefinedTableError, pgexc.InvalidSchemaNameError) as exc:
            raise ConfigError(f"sinks.postgres: {where}: {self.scrub(str(exc))}") from exc

    async def _add_columns(self, conn: asyncpg.Connection[Any]) -> None:
        """A table created by an earlier version lacks the columns added since: add them (nullable,
        no default: the rows written before hold NULL there, not a value they never had)."""
        cfg = self.cfg
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = ANY($2::text[])",
            cfg.db_schema,
            list(self.tables.values()),
        )
        present: dict[str, set[str]] = {}
        for r in rows:
            present.setdefault(r["table_name"], set()).add(r["column_name"])
        for table, cols in COLUMNS.items():
            name = self.tables[table]
            missing = [(c, t) for c, t in cols if c not in present.get(name, set())]
            if not missing:
                continue
            qualified = f"{cfg.db_schema}.{name}"
            statement = f"ALTER TABLE {qualified} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in missing)
            if not cfg.create_tables:
                raise ConfigError(
                    f"sinks.postgres: table {qualified} lacks the columns {', '.join(c for c, _ in missing)} "
                    f"(created by an earlier version?): run `{statement}` or set create_tables: true"
                )
            try:
                await conn.execute(statement)
            except pgexc.PostgresError as exc:  # e.g. a NOT NULL column missing from a hand-made table that has rows
                raise ConfigError(f"sinks.postgres: cannot add the columns {qualified} lacks: {self.scrub(str(exc))}") from exc
            log.info("sink postgres: added the columns %s to %s", ", ".join(c for c, _ in missing), qualified)

    async def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            _settle_orphaned_waiter(conn)
            try:
                conn.terminate()
            except Exception:
                pass

    async def committed(self, batch_no: int) -> bool:
        assert self.conn is not None
        done = await self.conn.fetchval(
            f"SELECT batch FROM {self.cfg.db_schema}.{self.cfg.table_prefix}sink_progress WHERE run_id = $1", self.run_id
        )
        return done is not None and int(done) >= batch_no

    async def deliver(self, batch: Sequence[Event], batch_no: int) -> None:
        assert self.conn is not None
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for event in batch:
            r = _row(event)
            if r is not None:
                rows.setdefault(r[0], []).append(r[1])
        schema = self.cfg.db_schema
        async with self.conn.transaction():
            for table, records in rows.items():
                await self.conn.copy_records_to_table(
                    self.tables[table], records=records, columns=[c for c, _ in COLUMNS[table]], schema_name=schema
                )
            await self.conn.execute(
                f"INSERT INTO {schema}.{self.cfg.table_prefix}sink_progress (run_id, batch, updated_at) VALUES ($1, $2, now()) "
                "ON CONFLICT (run_id) DO UPDATE SET batch = EXCLUDED.batch, updated_at = now()",
                self.run_id,
                batch_no,
            )
