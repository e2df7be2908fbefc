"""Throughput of the storage sinks (issue 21): parquet, postgres, redis.

    uv run --all-packages python bench/sinks.py [--seconds 10] [--max-events 20000] [--no-e2e]

Each sink runs behind the runtime's own ``SinkRunner`` (the bounded buffer and accounting every
sink gets), against a real server started on 127.0.0.1 (PostgreSQL 15, redis-server; a
temporary directory for Parquet). Events are summaries with 10 consolidated levels per side
(the demo's ``max_price_levels``) and arbitrage events, in the demo's proportions.

1. **10x the demo**: the seven-exchange demo (``examples/demo.yaml`` under ``--simulate``)
   publishes about 2 summaries/s and 2.5 arbitrage events/s (measured: 4.5 events/s). Ten
   times that (45 events/s) is offered at an even pace for ``--seconds``: events written and
   dropped, the CPU of this process and of the server, as % of one core.
2. **Most it writes**: ``--max-events`` events offered at once (buffer large enough to hold
   them): events/s written until the last one is delivered (for Parquet: until its file is
   closed and renamed), CPU per 1000 events.
3. **End to end** (unless ``--no-e2e``): ``aggcore run --simulate`` of the demo at 10x its
   summary rate (``summary_interval_ms: 100``) with the three sinks configured by name, for
   ``--seconds``; the stop line of each sink (produced = delivered + dropped + in flight).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio

from aggcore.fanout import SinkRunner
from aggcore.sink import Event, Sink
from aggcore.testing.events import sample_events
from aggcore.testing.services import postgres_server, redis_server

DEMO_RATE = 4.5  # summary + arbitrage events/s of the demo (measured, see the docstring)
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each of these processes."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def cpu_since(start: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since ``start`` by the processes alive now (new ones count in full)."""
    return sum(v - start.get(pid, 0.0) for pid, v in proc_cpu(pids).items())


def children_of(pid: int) -> list[int]:
    out = [pid]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def book_events(n: int) -> list[Event]:
    """Per-venue books (the ``book`` kind) with 50+50 levels, the default ``aggregation.book_levels``."""
    from aggcore.bus import BookMessage

    out = []
    for i in range(n):
        t = 1.7e9 + i * 0.005
        bids = [(100.0 - k * 0.01 - i * 1e-4, 1.0 + k) for k in range(50)]
        asks = [(100.01 + k * 0.01 + i * 1e-4, 2.0 + k) for k in range(50)]
        msg = BookMessage(venue="binance", symbol="BTCUSDT", pair="BTC/USDT", state="LIVE", epoch=1, version=i + 1,
                          bids=bids, asks=asks, exchange_ts=t, receipt_ts=t, seen_ts=t, published_ts=t)  # fmt: skip
        out.append(Event("book", msg, ts=t))
    return out


def events(n: int) -> list[Event]:
    out: list[Event] = []
    seed = 1
    while len(out) < n:
        out += [e for e in sample_events(min(n, 20_000) * 2, seed=seed, levels=10) if e.kind in ("summary", "arbitrage")]
        seed += 1
    return out[:n]


@contextmanager
def servers(need: set[str]) -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        out: dict[str, Any] = {"tmp": Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aggcore-bench-")))}
        if "postgres" in need:
            out["postgres"] = stack.enter_context(postgres_server())
        if "redis" in need:
            out["redis"] = stack.enter_context(redis_server())
        yield out


def build(name: str, srv: dict[str, Any], run: str, buffer: int) -> tuple[Sink, Callable[[], list[int]]]:
    common = {"events": ["summary", "arbitrage"], "buffer_size": buffer}
    if name == "parquet":
        from aggcore_plugin_parquet import ParquetSink, ParquetSinkConfig

        return ParquetSink(ParquetSinkConfig.model_validate({**common, "path": str(srv["tmp"] / run)})), lambda: []
    if name == "postgres":
        from aggcore_plugin_postgres import PostgresSink, PostgresSinkConfig

        pg = srv["postgres"]
        pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        cfg = {**common, "dsn": pg.dsn, "table_prefix": f"{run}_", "max_pending_events": buffer}
        return PostgresSink(PostgresSinkConfig.model_validate(cfg)), lambda: children_of(pid)
    from aggcore_plugin_redis import RedisSink, RedisSinkConfig

    rd = srv["redis"]
    cfg = {**common, "url": rd.url, "key_prefix": f"{run}:", "max_pending_events": buffer}
    assert rd.proc is not None
    rpid = rd.proc.pid
    return RedisSink(RedisSinkConfig.model_validate(cfg)), lambda: [rpid]


async def paced(name: str, srv: dict[str, Any], seconds: float, rate: float) -> dict[str, Any]:
    sink, server_pids = build(name, srv, "paced", 10_000)
    runner = SinkRunner(sink)
    evs = events(int(seconds * rate) + 1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        await anyio.sleep(0.3)  # opened
        pids = server_pids()
        cpu0, scpu0, t0 = time.process_time(), proc_cpu(pids), time.monotonic()
        for i, e in enumerate(evs):
            runner.put(e)
            await anyio.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        await runner.flush(10)
        while runner.in_flight and name != "parquet":
            await anyio.sleep(0.005)
        scpu = cpu_since(scpu0, server_pids())  # before close(): its connection's server process ends with it
        await sink.close()
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        tg.cancel_scope.cancel()
    return {
        "offered": len(evs), "offered_per_s": round(len(evs) / wall, 1), "delivered": runner.delivered,
        "dropped": runner.total_dropped, "cpu_pct": round(100 * cpu / wall, 2),
        "server_cpu_pct": round(100 * scpu / wall, 2) if pids else None,
    }  # fmt: skip


async def flat_out(name: str, srv: dict[str, Any], n: int, *, books: bool = False) -> dict[str, Any]:
    sink, server_pids = build(name, srv, "books" if books else "max", n + 1)
    if books:
        sink.config.events.append("book")
    runner = SinkRunner(sink)
    evs = book_events(n) if books else events(n)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        await anyio.sleep(0.3)
        pids = server_pids()
        cpu0, scpu0, t0 = time.process_time(), proc_cpu(pids), time.monotonic()
        for e in evs:
            runner.put(e)
        await runner.flush(60)
        while name != "parquet" and runner.in_flight:  # the sink holds what it has not written yet
            await anyio.sleep(0.005)
        scpu = cpu_since(scpu0, server_pids())
        await sink.close()  # parquet: rows are delivered when the file is closed
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        tg.cancel_scope.cancel()
    return {
        "events": n, "delivered": runner.delivered, "dropped": runner.total_dropped,
        "events_per_s": round(runner.delivered / wall), "seconds": round(wall, 2),
        "cpu_ms_per_1000": round(1000 * cpu / n * 1000, 1),
        "server_cpu_ms_per_1000": round(1000 * scpu / n * 1000, 1) if pids else None,
    }  # fmt: skip


def e2e(srv: dict[str, Any], seconds: float) -> dict[str, Any]:
    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "examples" / "demo.yaml").read_text())
    config["aggregation"]["summary_interval_ms"] = 100  # 10x the demo's summaries
    config["logging"] = {"level": "INFO"}
    config["sinks"] = {
        "parquet": {"path": str(srv["tmp"] / "e2e"), "events": ["summary", "arbitrage"]},
        "postgres": {"dsn": srv["postgres"].dsn, "table_prefix": "e2e_", "events": ["summary", "arbitrage"]},
        "redis": {"url": srv["redis"].url, "key_prefix": "e2e:", "events": ["summary", "arbitrage"]},
    }
    path = srv["tmp"] / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore.cli", "run", "--simulate", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root,
    )  # fmt: skip
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = {m.group(1): m.group(0) for m in re.finditer(r"sink (\w+): (produced .*)", err)}
    return {"seconds": seconds, "exit": proc.returncode, "sinks": {k: v.split(": ", 1)[1] for k, v in lines.items()}}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"paced": {}, "max": {}}
    with servers({"postgres", "redis"}) as srv:
        for name in ("parquet", "postgres", "redis"):
            out["paced"][name] = await paced(name, srv, args.seconds, DEMO_RATE * 10)
            out["max"][name] = await flat_out(name, srv, args.max_events)
            print(name, json.dumps(out["paced"][name]), json.dumps(out["max"][name]), flush=True)
        out["max"]["parquet books"] = await flat_out("parquet", srv, args.max_events, books=True)
        print("parquet books", json.dumps(out["max"]["parquet books"]), flush=True)
        if args.e2e:
            out["e2e"] = e2e(srv, args.seconds)
            print(json.dumps(out["e2e"], indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--max-events", type=int, default=20_000)
    parser.add_argument("--no-e2e", dest="e2e", action="store_false")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = anyio.run(bench, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
