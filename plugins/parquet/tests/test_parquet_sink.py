"""The parquet sink: files read back with pyarrow and DuckDB and checked value by value against the
events emitted; partitions, rotation, no partial file ever visible, a kill -9, a full disk."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import duckdb
import msgspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.fanout import SinkRunner
from aggcore.models import HealthStatus
from aggcore.plugins import load_plugins
from aggcore.sink import Event
from aggcore.testing.events import T0, payload_type, sample_books, sample_events, sample_metrics, unset_fields
from aggcore_plugin_parquet import DATASETS, ParquetSink, ParquetSinkConfig, open_dataset, read_schema, schema_markdown
from aggcore_plugin_parquet.schema import SYMBOL_HEALTH

pytestmark = pytest.mark.anyio

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def make(root: Path, **kw: Any) -> ParquetSink:
    return ParquetSink(ParquetSinkConfig.model_validate({"path": str(root), "events": ["summary", "arbitrage", "health", "book", "metrics"], **kw}))


def ns(dt: datetime | None) -> int | None:
    return None if dt is None else (dt - EPOCH) // pa.scalar(1, pa.duration("us")).as_py() * 1000


def sec_ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1_000_000_000)


def ns_col(table: pa.Table, name: str) -> list[int | None]:
    return table.column(name).cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]


def read(root: Path, name: str) -> pa.Table:
    return pads.dataset(root / name, format="parquet", partitioning="hive").to_table()


def expected_summary(e: Event) -> dict[str, Any]:
    p: Any = e.payload
    lv = lambda levels: [(x.price, x.quantity, x.exchange, ns(x.timestamp)) for x in levels]  # noqa: E731
    return {
        "ts": ns(p.timestamp), "published_at": sec_ns(e.ts), "symbol": p.symbol, "best_bid": p.best_bid,
        "best_ask": p.best_ask, "mid": p.mid, "spread": p.spread, "crossed": p.crossed, "venues": list(p.venues),
        "excluded": dict(p.excluded), "venue_age_ms": dict(p.venue_age_ms), "bids": lv(p.bids), "asks": lv(p.asks),
        "date": datetime.fromtimestamp(p.timestamp.timestamp(), timezone.utc).strftime("%Y-%m-%d"),
    }  # fmt: skip


def actual_summaries(t: pa.Table) -> list[dict[str, Any]]:
    t = t.sort_by("published_at")
    rows = t.drop_columns(["ts", "published_at", "bids", "asks"]).to_pylist()
    ts, pub = ns_col(t, "ts"), ns_col(t, "published_at")
    out = []
    for i, r in enumerate(rows):
        side = lambda name: [  # noqa: E731
            (x["price"], x["quantity"], x["exchange"], ns(x["timestamp"])) for x in t.column(name)[i].as_py()
        ]
        r.update(ts=ts[i], published_at=pub[i], bids=side("bids"), asks=side("asks"))
        r["excluded"], r["venue_age_ms"] = dict(r["excluded"]), dict(r["venue_age_ms"])
        r["date"] = str(r["date"])
        out.append(r)
    return out


async def test_every_value_read_back_with_pyarrow_and_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aggcore_plugin_parquet.sink

    monkeypatch.setattr(aggcore_plugin_parquet.sink, "CONVERT_ROWS", 64)  # rows turned into Arrow in several chunks
    events = sorted(sample_events(900, levels=10) + sample_books(90) + sample_metrics(40), key=lambda e: e.ts)
    sink = make(tmp_path / "data", row_group_rows=300)
    await sink.open()
    for k in range(0, len(events), 70):
        await sink.write(events[k : k + 70])
    assert sink.pending_events == len(events) and not list((tmp_path / "data").rglob("*.parquet"))  # all in open files
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0 and sink.health_error is None
    assert not list((tmp_path / "data").rglob(".*"))  # no temporary file left

    # pyarrow: every column of every row
    summaries = [e for e in events if e.kind == "summary"]
    assert actual_summaries(read(tmp_path / "data", "summary")) == [expected_summary(e) for e in summaries]
    assert {e["date"] for e in map(expected_summary, summaries)} == {"2026-03-01", "2026-03-02"}  # two partitions

    arb = read(tmp_path / "data", "arbitrage").sort_by("published_at")
    arbs = [e for e in events if e.kind == "arbitrage"]
    fields = ["symbol", "event", "buy_exchange", "sell_exchange", "buy_price", "sell_price", "profit_percentage",
              "profit", "volume", "duration_ms", "peak_profit_percentage", "peak_volume"]  # fmt: skip
    assert arb.select(fields).to_pylist() == [{f: getattr(e.payload, f) for f in fields} for e in arbs]
    assert ns_col(arb, "ts") == [ns(e.payload.timestamp) for e in arbs]  # type: ignore[attr-defined]
    assert ns_col(arb, "published_at") == [sec_ns(e.ts) for e in arbs]

    health = read(tmp_path / "data", "health").sort_by("ts")
    hs = [e for e in events if e.kind == "health"]
    assert ns_col(health, "ts") == [sec_ns(e.ts) for e in hs]
    got = health.drop_columns(["ts", "last_update", "symbols", "events", "date"]).to_pylist()
    assert got == [
        {"name": p.exchange, "kind": p.kind, "is_healthy": p.is_healthy, "connected": p.connected,
         "error_message": p.error_message, "reconnects": p.reconnects, "resyncs": p.resyncs,
         "checksum_failures": p.checksum_failures, "venue": p.exchange}
        for e in hs for p in [e.payload]  # type: ignore[attr-defined]
    ]  # fmt: skip
    for row, e in zip(health.column("symbols").to_pylist(), hs, strict=True):
        p: Any = e.payload
        assert {k: (v["state"], v["age_ms"], v["last_sequence"], ns(v["last_update"])) for k, v in row} == {
            k: (s.state.value, s.age_ms, s.last_sequence, ns(s.last_update)) for k, s in p.symbols.items()
        }

    book = read(tmp_path / "data", "book").sort_by("ts")
    bs = [e for e in events if e.kind == "book"]
    assert book.select(["symbol", "pair", "state", "reason", "epoch", "version", "bids", "asks", "venue"]).to_pylist() == [
        {"symbol": m.symbol, "pair": m.pair, "state": m.state, "reason": m.reason, "epoch": m.epoch, "version": m.version,
         "bids": [list(x) for x in m.bids], "asks": [list(x) for x in m.asks], "venue": m.venue}
        for e in bs for m in [e.payload]  # type: ignore[attr-defined]
    ]  # fmt: skip
    for col, attr in (("ts", "published_ts"), ("exchange_ts", "exchange_ts"), ("receipt_ts", "receipt_ts"), ("seen_ts", "seen_ts")):
        assert ns_col(book, col) == [sec_ns(getattr(e.payload, attr)) for e in bs], col

    metrics = read(tmp_path / "data", "metrics").sort_by("ts")
    ms = [e for e in events if e.kind == "metrics"]
    mfields = ["exchange", "symbol", "updates_per_second", "latency_ms", "error_count", "messages", "level_updates",
               "gaps", "resyncs", "checksum_failures"]  # fmt: skip
    assert metrics.select(mfields).to_pylist() == [{f: getattr(e.payload, f) for f in mfields} for e in ms]
    assert ns_col(metrics, "ts") == [sec_ns(e.ts) for e in ms]
    assert ns_col(metrics, "last_update") == [ns(e.payload.last_update) for e in ms]  # type: ignore[attr-defined]
    assert metrics.column("venue").to_pylist() == [e.payload.exchange for e in ms]  # type: ignore[attr-defined]

    # DuckDB over the Hive-partitioned dataset (what users run)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    glob = str(tmp_path / "data" / "summary" / "**" / "*.parquet")
    rows = con.execute(
        f"SELECT epoch_ns(ts), epoch_ns(published_at), symbol, best_bid, best_ask, mid, spread, crossed, venues,"
        f" map_keys(excluded), bids, asks, CAST(date AS VARCHAR) FROM read_parquet('{glob}', hive_partitioning = true)"
        f" ORDER BY published_at"
    ).fetchall()
    assert len(rows) == len(summaries)
    for r, e in zip(rows, summaries, strict=True):
        x = expected_summary(e)
        assert r[:8] == (x["ts"], x["published_at"], x["symbol"], x["best_bid"], x["best_ask"], x["mid"],
                         x["spread"], x["crossed"])  # fmt: skip
        assert (r[8], r[9], r[12]) == (x["venues"], list(x["excluded"]), x["date"])
        for got_side, want_side in ((r[10], x["bids"]), (r[11], x["asks"])):
            assert [(lv["price"], lv["quantity"], lv["exchange"], ns(lv["timestamp"])) for lv in got_side] == want_side
    arb_glob = str(tmp_path / "data" / "arbitrage" / "**" / "*.parquet")
    cols = ", ".join(fields)
    got_arbs = con.execute(
        f"SELECT epoch_ns(ts), epoch_ns(published_at), {cols} FROM read_parquet('{arb_glob}', hive_partitioning = true) ORDER BY published_at"
    ).fetchall()
    assert got_arbs == [(ns(e.payload.timestamp), sec_ns(e.ts), *(getattr(e.payload, f) for f in fields)) for e in arbs]  # type: ignore[attr-defined]
    health_glob = str(tmp_path / "data" / "health" / "**" / "*.parquet")
    got_health = con.execute(
        f"SELECT epoch_ns(ts), venue, name, is_healthy, error_message, reconnects, symbols FROM read_parquet('{health_glob}',"
        " hive_partitioning = true) ORDER BY ts"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], sorted(r[6])) for r in got_health] == [
        (sec_ns(e.ts), p.exchange, p.exchange, p.is_healthy, p.error_message, p.reconnects, sorted(p.symbols))
        for e in hs for p in [e.payload]  # type: ignore[attr-defined]
    ]  # fmt: skip
    best_venue = con.execute(
        f"SELECT bids[1].exchange AS venue, count(*) FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    want: dict[str, int] = {}
    for e in summaries:
        v = e.payload.bids[0].exchange  # type: ignore[attr-defined]
        want[v] = want.get(v, 0) + 1
    assert best_venue == sorted(want.items())
    book_glob = str(tmp_path / "data" / "book" / "**" / "*.parquet")
    per_venue = con.execute(
        f"SELECT venue, count(*), sum(len(bids)) FROM read_parquet('{book_glob}', hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert per_venue == sorted(
        (v, sum(1 for e in bs if e.payload.venue == v), sum(len(e.payload.bids) for e in bs if e.payload.venue == v))  # type: ignore[attr-defined]
        for v in {e.payload.venue for e in bs}  # type: ignore[attr-defined]
    )


async def test_layout_zstd_and_row_groups(tmp_path: Path) -> None:
    events = sample_events(400) + [Event("health", HealthStatus(exchange="sink:file", kind="sink", is_healthy=True, last_update=None), ts=T0.timestamp())]
    sink = make(tmp_path, row_group_rows=100)
    await sink.open()
    await sink.write(events)
    await sink.close()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert any(f.startswith("summary/date=2026-03-01/part-") for f in files)
    assert any(f.startswith("summary/date=2026-03-02/part-") for f in files)
    assert any(f.startswith("health/date=2026-03-01/venue=binance/") for f in files)
    assert any(f.startswith("health/date=2026-03-01/venue=sink%3Afile/") for f in files)
    for f in tmp_path.rglob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        assert all(meta.row_group(i).num_rows <= 100 for i in range(meta.num_row_groups))
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert meta.row_group(0).column(0).statistics is not None
    names = set(read(tmp_path, "health").column("venue").to_pylist())
    assert "sink:file" in names
    assert schema_markdown().count("| `ts` |") == len(DATASETS)


async def test_rotation_by_size_and_time_and_no_partial_file_visible(tmp_path: Path) -> None:
    summaries = [e for e in sample_events(3000, levels=10) if e.kind == "summary" and e.ts < T0.timestamp() + 1.9]
    sink = make(tmp_path, events=["summary"], row_group_rows=50, rotate_bytes=20_000)
    await sink.open()
    visible_counts = []
    for k in range(0, len(summaries), 25):
        await sink.write(summaries[k : k + 25])
        # a reader at any moment: only complete files, each readable, rows never seen twice
        visible = read(tmp_path, "summary") if (tmp_path / "summary").exists() else pa.table({"x": []})
        visible_counts.append(visible.num_rows)
        assert visible.num_rows == sink.delivered_events
    await sink.close()
    assert len(sink.files_written) >= 3  # rotated by size
    assert visible_counts == sorted(visible_counts) and 0 < visible_counts[len(visible_counts) // 2] < len(summaries)
    assert ns_col(read(tmp_path, "summary").sort_by("published_at"), "published_at") == [sec_ns(e.ts) for e in summaries]

    # by time: an idle sink closes its file after rotate_seconds, without any further write
    timed = make(tmp_path / "t", events=["summary"], rotate_seconds=1.0)  # (0.2 s passed by itself on a busy machine)
    await timed.open()
    await timed.write(summaries[:10])
    assert not list((tmp_path / "t").rglob("*.parquet"))
    with anyio.fail_after(10):
        while not list((tmp_path / "t").rglob("*.parquet")):
            await anyio.sleep(0.05)
    assert timed.delivered_events == 10 and timed.pending_events == 0
    await timed.close()


KILL_SCRIPT = """
import os, signal, sys, anyio
from aggcore.testing.events import sample_events
from aggcore_plugin_parquet import ParquetSink, ParquetSinkConfig

async def main():
    sink = ParquetSink(ParquetSinkConfig(path=sys.argv[1], events=["summary", "arbitrage", "health"],
                                         row_group_rows=100, rotate_bytes=30_000))
    await sink.open()
    events = sample_events(1500)
    for k in range(0, len(events), 50):
        await sink.write(events[k:k + 50])
    print(sink.delivered_events, sink.pending_events, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

anyio.run(main)
"""


async def test_kill_9_loses_only_the_open_files_and_counts_them(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    delivered, pending = map(int, proc.stdout.split())
    assert delivered > 0 and pending > 0
    assert list(tmp_path.rglob(".part-*.parquet.tmp"))  # the open files, never renamed
    complete = sum(read(tmp_path, name).num_rows for name in ("summary", "arbitrage", "health") if (tmp_path / name).exists())
    assert complete == delivered  # what was delivered is readable, the rest was never visible

    sink = make(tmp_path)
    await sink.open()
    assert sink.lost_in_previous_run == pending and f"{pending} events were lost" in (sink.health_error or "")
    assert not list(tmp_path.rglob(".part-*"))
    await sink.write(sample_events(10))
    await sink.close()
    assert sink.health_error is None  # a file completed since


FULL_DISK_SCRIPT = """
import json, resource, signal, sys, anyio
from aggcore.testing.events import sample_events
from aggcore_plugin_parquet import ParquetSink, ParquetSinkConfig

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead

async def main():
    sink = ParquetSink(ParquetSinkConfig(path=sys.argv[1], events=["summary"], row_group_rows=100))
    await sink.open()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))   # "the disk is full"
    events = [e for e in sample_events(2000) if e.kind == "summary"]
    for k in range(0, 800, 50):
        await sink.write(events[k:k + 50])
    full = {"dropped": sink.dropped_events, "error": sink.health_error, "failed_files": sink.failed_files}
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))     # space again
    for k in range(800, len(events), 50):
        await sink.write(events[k:k + 50])
    await sink.close()
    print(json.dumps({"full": full, "n": len(events), "delivered": sink.delivered_events,
                      "dropped": sink.dropped_events, "error": sink.health_error}))

anyio.run(main)
"""


async def test_full_disk_drops_and_counts_the_file_then_goes_on(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["full"]["dropped"] > 0 and out["full"]["failed_files"] >= 1
    assert "File too large" in out["full"]["error"] and "events dropped" in out["full"]["error"]
    assert out["delivered"] + out["dropped"] == out["n"]  # every event delivered or counted
    assert out["error"] is None and out["delivered"] > 0
    assert read(tmp_path, "summary").num_rows == out["delivered"]
    assert not list(tmp_path.rglob(".part-*"))


async def test_a_partition_that_cannot_be_created_drops_and_counts_only_its_events(tmp_path: Path) -> None:
    sink = make(tmp_path, events=["summary", "arbitrage"])
    await sink.open()
    (tmp_path / "arbitrage").write_text("not a directory")  # the arbitrage dataset cannot be created
    events = [e for e in sample_events(300) if e.kind in ("summary", "arbitrage")]
    await sink.write(events)
    n_arb = sum(e.kind == "arbitrage" for e in events)
    assert sink.dropped_events == n_arb and "cannot create a file under" in (sink.health_error or "")
    await sink.close()
    assert sink.delivered_events == len(events) - n_arb  # the summaries are not affected
    assert read(tmp_path, "summary").num_rows == len(events) - n_arb


async def test_accounting_through_the_runtime(tmp_path: Path) -> None:
    runner = SinkRunner(make(tmp_path, row_group_rows=64))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        events = sample_events(500)
        for e in events:
            runner.put(e)
        assert await runner.flush(5)
        assert runner.produced == 500 and runner.in_flight == 500 - runner.total_dropped - runner.delivered
        await runner.sink.close()
        tg.cancel_scope.cancel()
    assert runner.delivered == 500 and runner.total_dropped == 0 and runner.in_flight == 0


async def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sinks.parquet.path: the parent directory of .* does not exist"):
        await make(tmp_path / "no" / "data").open()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        await make(tmp_path / "file").open()
    runner = SinkRunner(make(tmp_path / "no" / "data"))
    await runner.run()
    assert not runner.opened and "cannot open" in (runner.health_error or "")
    if Path("/sys/kernel").is_dir():  # sysfs refuses new directories even to root: a real permission error
        with pytest.raises(ConfigError, match="sinks.parquet.path: cannot create .*: Operation not permitted"):
            await make(Path("/sys/aggcore-parquet-test")).open()
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="not writable"):
            await make(locked).open()


def test_config_errors_name_the_key() -> None:
    registry = load_plugins()
    assert registry.sinks["parquet"] is ParquetSink
    with pytest.raises(ConfigError) as info:
        load_config({"sinks": {"parquet": {"rotate_bytes": 0, "compresion_level": 3}}}, registry=registry)
    text = str(info.value)
    assert "sinks.parquet.rotate_bytes" in text and "sinks.parquet.compresion_level" in text


def test_readme_lists_the_schema() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert schema_markdown() in readme


# -- every field of every payload type -----------------------------------------------------------------------------
#: dataset -> {field: column} for the fields stored under another name; every other field is the column of its name
RENAMED: dict[str, dict[str, str]] = {
    "summary": {"timestamp": "ts"},
    "arbitrage": {"timestamp": "ts"},
    "health": {"exchange": "name"},
    "metrics": {},
    "book": {"published_ts": "ts"},  # and venue: the Hive partition column (read_schema)
}
#: nested fields not stored inside their struct, and where they are instead
MAP_KEYS = {("SymbolHealth", "symbol")}  # HealthStatus.symbols: the symbol is the map key
KINDS = ("summary", "arbitrage", "health", "metrics", "book")


def all_samples() -> list[Event]:
    return sorted(sample_events(900, levels=10) + sample_books(90) + sample_metrics(40), key=lambda e: e.ts)


def unstored(info: msgspec.inspect.Type, arrow: pa.DataType, path: str, renamed: dict[str, str]) -> list[str]:
    """The fields of msgspec type ``info`` that have no place in Arrow type ``arrow``."""
    if isinstance(info, msgspec.inspect.UnionType):
        return [m for t in info.types if not isinstance(t, msgspec.inspect.NoneType) for m in unstored(t, arrow, path, renamed)]
    if isinstance(info, msgspec.inspect.StructType):
        if not pa.types.is_struct(arrow):
            return [f"{path} ({info.cls.__name__}) is stored as {arrow}, not a struct"]
        names = {arrow.field(k).name: arrow.field(k).type for k in range(arrow.num_fields)}
        out = []
        for f in info.fields:
            col = renamed.get(f.name, f.name)
            if (info.cls.__name__, f.name) in MAP_KEYS:
                continue
            if col not in names:
                out.append(f"{info.cls.__name__}.{f.name} (at {path}{col})")
            else:
                out += unstored(f.type, names[col], f"{path}{col}.", {})
        return out
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)):
        assert pa.types.is_list(arrow) or pa.types.is_fixed_size_list(arrow), (path, arrow)
        return unstored(info.item_type, arrow.value_type, path.rstrip(".") + "[].", {})
    if isinstance(info, msgspec.inspect.DictType):
        assert pa.types.is_map(arrow), (path, arrow)
        return unstored(info.value_type, arrow.item_type, path.rstrip(".") + "{}.", {})
    return []


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_the_payload_type_has_a_column(kind: str) -> None:
    """Derived from the msgspec type: a field added to a public type fails here until the dataset stores it."""
    T = payload_type(kind)  # type: ignore[arg-type]
    schema = read_schema(kind)
    as_struct = pa.struct([schema.field(k) for k in range(len(schema))])
    assert unstored(msgspec.inspect.type_info(T), as_struct, "", RENAMED[kind]) == []


def _ints(t: pa.DataType) -> pa.DataType:
    """``t`` with every timestamp (nested ones too) as its int64 nanoseconds."""
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(k).name, _ints(t.field(k).type)) for k in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(t.key_type, _ints(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_ints(t.value_type), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(_ints(t.value_type))
    return t


def _got(value: Any, t: pa.DataType) -> Any:
    """A value read back (timestamps already int ns) as plain Python: maps as dicts."""
    if value is None:
        return None
    if pa.types.is_map(t):
        return {k: _got(v, t.item_type) for k, v in value}
    if pa.types.is_struct(t):
        return {t.field(k).name: _got(value[t.field(k).name], t.field(k).type) for k in range(t.num_fields)}
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return [_got(x, t.value_type) for x in value]
    return value


def _want(value: Any, t: pa.DataType) -> Any:
    """What the payload's ``value`` must read back as from a column of Arrow type ``t``."""
    if value is None:
        return None
    if pa.types.is_timestamp(t):
        return ns(value) if isinstance(value, datetime) else sec_ns(value)  # BookMessage times: float seconds
    if isinstance(value, enum.Enum):
        return value.value
    if pa.types.is_map(t):
        return {k: _want(v, t.item_type) for k, v in value.items()}
    if pa.types.is_struct(t):
        out = {}
        for k in range(t.num_fields):
            f = t.field(k)
            out[f.name] = _want(getattr(value, f.name), f.type)
        return out
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return [_want(x, t.value_type) for x in value]
    return value


def stored_rows(table: pa.Table) -> list[dict[str, Any]]:
    table = table.cast(pa.schema([pa.field(f.name, _ints(f.type)) for f in table.schema]))
    types = {f.name: f.type for f in table.schema}
    return [{k: _got(v, types[k]) for k, v in row.items()} for row in table.to_pylist()]


def expected_row(kind: str, e: Event, schema: pa.Schema) -> dict[str, Any]:
    """Every field of the payload under its column, valued as the column must hold it."""
    p: Any = e.payload
    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(type(p)):
        col = RENAMED[kind].get(f.name, f.name)
        out[col] = _want(getattr(p, f.name), schema.field(col).type)
    return out


@pytest.mark.parametrize("kind", KINDS)
async def test_every_field_read_back_equal(tmp_path: Path, kind: str) -> None:
    """Round trip through real files: every field of every event, compared by value (nested ones too)."""
    events = [e for e in all_samples() if e.kind == kind]
    assert unset_fields(events) == [], "give these fields a value in aggcore.testing.events"
    sink = make(tmp_path, events=[kind], row_group_rows=128)
    await sink.open()
    for k in range(0, len(events), 50):
        await sink.write(events[k : k + 50])
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0
    schema = read_schema(kind)
    got = sorted(stored_rows(open_dataset(tmp_path, kind).to_table()), key=lambda r: r["ts"])
    events.sort(key=lambda e: e.ts)  # every sample has its own time
    assert len(got) == len(events)
    assert [{c: r[c] for c in w} for r, w in zip(got, (expected_row(kind, e, schema) for e in events))] == [
        expected_row(kind, e, schema) for e in events
    ]
    if "published_at" in schema.names:
        assert [r["published_at"] for r in got] == [sec_ns(e.ts) for e in events]
    for r in got:  # the columns that are not payload fields: the partition date (and venue)
        assert r["date"] == datetime.fromtimestamp(r["ts"] / 1e9, timezone.utc).strftime("%Y-%m-%d")
        if "venue" in schema.names and kind != "book":
            assert r["venue"] == r["name" if kind == "health" else "exchange"]


#: the columns (and nested health fields) added since the first release: absent from files written before
ADDED_COLUMNS = {"arbitrage": ["gross_spread_percentage", "buy_fee", "sell_fee"], "health": ["events"]}
ADDED_SYMBOL_FIELDS = ["invalid_messages", "waiting_for", "next_retry_s"]


def first_release_schema(kind: str) -> pa.Schema:
    """The schema of ``kind`` as the first release wrote it."""
    fields = [f for f in DATASETS[kind].schema if f.name not in ADDED_COLUMNS.get(kind, [])]
    if kind == "health":
        old = pa.map_(pa.string(), pa.struct([f for f in SYMBOL_HEALTH if f.name not in ADDED_SYMBOL_FIELDS]))
        fields = [f.with_type(old) if f.name == "symbols" else f for f in fields]
    return pa.schema(fields)


@pytest.mark.parametrize("kind", ["arbitrage", "health"])
async def test_old_and_new_files_read_together(tmp_path: Path, kind: str) -> None:
    """A directory with a file of the first release's schema and new files: read as the README says
    (pyarrow with read_schema / open_dataset, DuckDB with union_by_name), every row is there, the
    old rows with null in the columns they never had and every other value as written."""
    events = sorted((e for e in sample_events(900) if e.kind == kind), key=lambda e: e.ts)
    old, new = events[: len(events) // 2], events[len(events) // 2 :]
    # the old file, as the first release wrote it, in its partition
    old_schema = first_release_schema(kind)
    rows = [DATASETS[kind].row(e)[2] for e in old]
    part = tmp_path / kind / "date=2026-03-01"
    if kind == "health":
        part = part / "venue=kraken"
        rows = [r for r in rows if r["exchange"] == "kraken"]
        old = [e for e in old if e.payload.exchange == "kraken"]  # type: ignore[attr-defined]
    part.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), part / "part-20260301T000000Z-1-old-00001.parquet")
    assert not set(ADDED_COLUMNS[kind]) & set(pq.read_schema(part / "part-20260301T000000Z-1-old-00001.parquet").names)
    sink = make(tmp_path, events=[kind])
    await sink.open()
    await sink.write(new)
    await sink.close()

    schema = read_schema(kind)
    got = sorted(stored_rows(open_dataset(tmp_path, kind).to_table()), key=lambda r: r["ts"])
    assert len(got) == len(old) + len(new)
    got_old = [r for r in got if r["ts"] <= max(sec_ns(e.ts) or 0 for e in old) + 1000]
    got_new = got[len(got_old) :]
    assert [{c: r[c] for c in w} for r, w in zip(got_new, (expected_row(kind, e, schema) for e in new))] == [
        expected_row(kind, e, schema) for e in new
    ]
    for r, e in zip(got_old, old, strict=True):
        want = expected_row(kind, e, schema)
        for c in ADDED_COLUMNS[kind]:
            want[c] = None  # never written: null, not a made-up value
        for sym in (want.get("symbols") or {}).values():
            sym.update(dict.fromkeys(ADDED_SYMBOL_FIELDS))
        assert {c: r[c] for c in want} == want

    # DuckDB: union_by_name = true reads the union of the columns; the old rows hold NULL in the new ones
    glob = str(tmp_path / kind / "**" / "*.parquet")
    added = ADDED_COLUMNS[kind]
    con = duckdb.connect()
    rows_db = con.execute(
        f"SELECT epoch_ns(ts), {', '.join(added)} FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true) ORDER BY ts"
    ).fetchall()
    assert [r[0] for r in rows_db] == [r["ts"] for r in got]
    assert [r[1:] for r in rows_db[: len(old)]] == [(None,) * len(added)] * len(old)
    assert [r[1:] for r in rows_db[len(old) :]] == [
        tuple(r[c] if c != "events" else (r[c] or {}) for c in added) for r in got_new
    ]
    if kind == "health":
        syms = con.execute(
            f"SELECT symbols FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true) ORDER BY ts"
        ).fetchall()
        assert [{k: v["invalid_messages"] for k, v in s[0].items()} for s in syms] == [
            {k: v["invalid_messages"] for k, v in r["symbols"].items()} for r in got
        ]
