"""The Parquet datasets: one per event kind, their schemas (stable: columns are only ever added)
and how an event becomes a row and picks its partition.

Every timestamp is ``timestamp[ns, tz=UTC]``. Layout under ``path``::

    summary/date=2026-03-01/part-....parquet
    arbitrage/date=2026-03-01/part-....parquet
    health/date=2026-03-01/venue=binance/part-....parquet
    metrics/date=2026-03-01/venue=binance/part-....parquet
    book/date=2026-03-01/venue=binance/part-....parquet

``date`` is the UTC date of the row's ``ts``; ``venue`` the exchange (or ``sink:<name>`` for a
sink's health, written percent-encoded: ``sink%3Afile``). Partition values are in the directory
names only (Hive style): read with ``hive_partitioning`` (DuckDB) or ``partitioning="hive"``
(pyarrow).

Files written by an earlier version lack the columns added since (and the nested fields added
to ``symbols``). Read a directory with :func:`read_schema` (pyarrow) or ``union_by_name = true``
(DuckDB) and those are null in the older rows; without, a reader takes the schema of whichever
file it opens first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
from pydantic import BaseModel

from aggcore.sink import Event

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["DATASETS", "Dataset", "open_dataset", "read_schema", "schema_markdown"]

TS = pa.timestamp("ns", tz="UTC")

LEVEL = pa.struct(
    [
        pa.field("price", pa.float64()),
        pa.field("quantity", pa.float64()),
        pa.field("exchange", pa.string()),  # the venue of this level
        pa.field("timestamp", TS),  # when that venue's book last changed
    ]
)
SYMBOL_HEALTH = pa.struct(
    [
        pa.field("state", pa.string()),
        pa.field("last_update", TS),
        pa.field("age_ms", pa.float64()),
        pa.field("last_sequence", pa.int64()),
        pa.field("resyncs", pa.int64()),
        pa.field("gaps", pa.int64()),
        pa.field("checksum_failures", pa.int64()),
        pa.field("crossed_books", pa.int64()),
        pa.field("error_message", pa.string()),
        # added later: null in files written before
        pa.field("invalid_messages", pa.int64()),
        pa.field("waiting_for", pa.string()),
        pa.field("next_retry_s", pa.float64()),
    ]
)
BOOK_LEVEL = pa.list_(pa.float64(), 2)  # [price, quantity]


def _f(name: str, typ: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


SCHEMAS: dict[str, pa.Schema] = {
    "summary": pa.schema(
        [
            _f("ts", TS, "the summary's time (Summary.timestamp)", False),
            _f("published_at", TS, "when aggcore published the event (Event.ts)", False),
            _f("symbol", pa.string(), "the pair, BASE/QUOTE", False),
            _f("best_bid", pa.float64(), "consolidated best bid"),
            _f("best_ask", pa.float64(), "consolidated best ask"),
            _f("mid", pa.float64(), "(best_bid + best_ask) / 2"),
            _f("spread", pa.float64(), "best_ask - best_bid"),
            _f("crossed", pa.bool_(), "best_bid >= best_ask across venues", False),
            _f("venues", pa.list_(pa.string()), "venues whose books were used", False),
            _f("excluded", pa.map_(pa.string(), pa.string()), "venue -> why it was left out", False),
            _f("venue_age_ms", pa.map_(pa.string(), pa.float64()), "venue -> age of its book (ms)", False),
            _f("bids", pa.list_(LEVEL), "consolidated bids, best first, with the venue of each level", False),
            _f("asks", pa.list_(LEVEL), "consolidated asks, best first, with the venue of each level", False),
        ]
    ),
    "arbitrage": pa.schema(
        [
            _f("ts", TS, "ArbitrageOpportunity.timestamp", False),
            _f("published_at", TS, "Event.ts", False),
            _f("symbol", pa.string(), "the pair", False),
            _f("event", pa.string(), "opened, updated or closed", False),
            _f("buy_exchange", pa.string(), "venue to buy on", False),
            _f("sell_exchange", pa.string(), "venue to sell on", False),
            _f("buy_price", pa.float64(), "", False),
            _f("sell_price", pa.float64(), "", False),
            _f("profit_percentage", pa.float64(), "", False),
            _f("profit", pa.float64(), "", False),
            _f("volume", pa.float64(), "", False),
            _f("duration_ms", pa.float64(), "how long the opportunity has been open", False),
            _f("peak_profit_percentage", pa.float64(), "", False),
            _f("peak_volume", pa.float64(), "", False),
            _f("gross_spread_percentage", pa.float64(), "spread before fees, percent (null in files written before it was stored)"),
            _f("buy_fee", pa.float64(), "taker fee used on the buy venue, a fraction: 0.001 = 0.1 % (null in older files)"),
            _f("sell_fee", pa.float64(), "taker fee used on the sell venue, a fraction (null in older files)"),
        ]
    ),
    "health": pa.schema(
        [
            _f("ts", TS, "Event.ts (a health report is about that instant)", False),
            _f("name", pa.string(), "the exchange, or sink:<name>", False),
            _f("kind", pa.string(), "exchange, sink, analyzer or bus", False),
            _f("is_healthy", pa.bool_(), "", False),
            _f("connected", pa.bool_(), "", False),
            _f("last_update", TS, "last book update (exchange) or write (sink)"),
            _f("error_message", pa.string(), "why it is not healthy"),
            _f("reconnects", pa.int64(), "", False),
            _f("resyncs", pa.int64(), "", False),
            _f("checksum_failures", pa.int64(), "", False),
            _f("symbols", pa.map_(pa.string(), SYMBOL_HEALTH), "symbol -> its book's health (SymbolHealth; the symbol is the key)", False),
            _f("events", pa.map_(pa.string(), pa.int64()), "a sink's event accounting: produced, delivered, dropped, in_flight, dropped_<reason> (null in older files)"),
        ]
    ),
    "metrics": pa.schema(
        [
            _f("ts", TS, "Event.ts", False),
            _f("exchange", pa.string(), "", False),
            _f("symbol", pa.string(), "", False),
            _f("updates_per_second", pa.float64(), "", False),
            _f("latency_ms", pa.float64(), "", False),
            _f("error_count", pa.int64(), "", False),
            _f("last_update", TS, ""),
            _f("messages", pa.int64(), "", False),
            _f("level_updates", pa.int64(), "", False),
            _f("gaps", pa.int64(), "", False),
            _f("resyncs", pa.int64(), "", False),
            _f("checksum_failures", pa.int64(), "", False),
        ]
    ),
    "book": pa.schema(
        [
            _f("ts", TS, "when the feed built the message (BookMessage.published_ts)", False),
            _f("symbol", pa.string(), "the exchange's own symbol", False),
            _f("pair", pa.string(), "the normalized pair", False),
            _f("state", pa.string(), "LIVE, SYNCING, RESYNCING, STALE or FAILED; only a LIVE book has levels", False),
            _f("reason", pa.string(), "why the book is not LIVE"),
            _f("epoch", pa.int64(), "new at every (re)sync of the book", False),
            _f("version", pa.int64(), "1, 2, ... within the epoch; (epoch, version) orders a book's rows", False),
            _f("bids", pa.list_(BOOK_LEVEL), "the full top of the book, [price, quantity], best first", False),
            _f("asks", pa.list_(BOOK_LEVEL), "the full top of the book, [price, quantity], best first", False),
            _f("exchange_ts", TS, "the exchange's time of the last update, when it sends one"),
            _f("receipt_ts", TS, "when the last update applied was received", False),
            _f("seen_ts", TS, "when the book was last known current", False),
        ]
    ),
}


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1_000_000_000)


def _builtins(payload: Any) -> dict[str, Any]:
    if isinstance(payload, BaseModel):
        out: dict[str, Any] = payload.model_dump()
    else:
        out = msgspec.to_builtins(payload, builtin_types=(datetime,))
    return out


def _summary(e: Event) -> tuple[float, str | None, dict[str, Any]]:
    d = _builtins(e.payload)
    d["ts"] = d["timestamp"]
    d["published_at"] = _ns(e.ts)
    return d["timestamp"].timestamp(), None, d


def _arbitrage(e: Event) -> tuple[float, str | None, dict[str, Any]]:
    d = _builtins(e.payload)
    d["ts"] = d["timestamp"]
    d["published_at"] = _ns(e.ts)
    return d["timestamp"].timestamp(), None, d


def _health(e: Event) -> tuple[float, str | None, dict[str, Any]]:
    d = _builtins(e.payload)
    d["ts"] = _ns(e.ts)
    d["name"] = d["exchange"]
    return e.ts, d["exchange"], d


def _metrics(e: Event) -> tuple[float, str | None, dict[str, Any]]:
    d = _builtins(e.payload)
    d["ts"] = _ns(e.ts)
    return e.ts, d["exchange"], d


def _book(e: Event) -> tuple[float, str | None, dict[str, Any]]:
    d = _builtins(e.payload)
    published = d["published_ts"]
    d["ts"] = _ns(published)
    d["exchange_ts"] = _ns(d.get("exchange_ts"))
    d["receipt_ts"] = _ns(d["receipt_ts"])
    d["seen_ts"] = _ns(d["seen_ts"])
    return published, d["venue"], d


@dataclass(frozen=True)
class Dataset:
    name: str
    schema: pa.Schema
    by_venue: bool
    row: Callable[[Event], tuple[float, str | None, dict[str, Any]]]  # -> (epoch seconds of ts, venue, row)


DATASETS: dict[str, Dataset] = {
    "summary": Dataset("summary", SCHEMAS["summary"], False, _summary),
    "arbitrage": Dataset("arbitrage", SCHEMAS["arbitrage"], False, _arbitrage),
    "health": Dataset("health", SCHEMAS["health"], True, _health),
    "metrics": Dataset("metrics", SCHEMAS["metrics"], True, _metrics),
    "book": Dataset("book", SCHEMAS["book"], True, _book),
}


def read_schema(name: str) -> pa.Schema:
    """The schema to read dataset ``name`` with: its columns, then its partition columns (``date``,
    and ``venue`` where it applies, as strings). Files of any version read together with it; a
    column a file lacks is null in that file's rows."""
    ds = DATASETS[name]
    parts = [pa.field("date", pa.string())] + ([pa.field("venue", pa.string())] if ds.by_venue else [])
    return pa.schema(list(ds.schema) + parts)


def open_dataset(root: str | Path, name: str) -> pads.Dataset:
    """``pyarrow.dataset`` of dataset ``name`` under the sink's ``path`` ``root``, read with
    :func:`read_schema` (Hive partitions), so old and new files read together."""
    import pyarrow.dataset as pads_

    return pads_.dataset(Path(root) / name, format="parquet", partitioning="hive", schema=read_schema(name))


def schema_markdown() -> str:
    """The schemas as Markdown tables (what the README shows)."""
    out = []
    for name, ds in DATASETS.items():
        part = "date, venue" if ds.by_venue else "date"
        out.append(f"`{name}/` (partitioned by {part})\n\n| column | type | meaning |\n|---|---|---|")
        for f in ds.schema:
            out.append(f"| `{f.name}` | `{f.type}`{'' if f.nullable else ' not null'} | {f.metadata[b'doc'].decode() if f.metadata else ''} |")
        out.append("")
    return "\n".join(out)
