"""Bus benchmark: feed processes publish books to a real nats-server (JetStream), one consolidator
takes them, at rising frame rates, with one and with two feed processes.

- Every plugin's fake exchange (one BTC symbol each, as in ``e2e.py``) runs in a fakes process
  per feed process (the generator). Each feed process runs ``Aggregator(role="feed")`` over its
  venues (all seven with one feed; split 4/3 with two) and publishes each changed book
  (conflated every ``book_interval_ms`` = 5 ms, top 50 levels, msgpack) to NATS.
- The consolidator is ``Aggregator(role="consolidate")`` in this process: remote books ->
  consolidated view (one pair through ``quote_groups``) -> summary and arbitrage analyzers.
- Per rate step: frames sent (fakes) and received (feeds), book messages received by the
  consolidator, its CPU (``time.process_time``) per 10k frames/s, and the added latency
  **feed receipt -> consolidated summary** (the frame's receipt time in the feed, carried in the
  book message, -> the consolidator's analyzers ran; same clock: one machine), p50/p99. The
  single-process ``e2e.py`` measures the same span without the bus (receipt -> summary).
- A rate is sustained when the feeds received >= 97% of what was sent and the p99 feed receipt
  -> summary < 100 ms. Needs ``nats-server`` on PATH (Debian package ``nats-server``); without
  it the run is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import fakes_main, pct  # noqa: E402

RATES = [2_000, 5_000, 10_000, 15_000, 20_000, 25_000]


def feed_main(sections: dict[str, Any], url: str, conn: Any) -> None:
    import anyio

    anyio.run(_feed, sections, url, conn)


async def _feed(sections: dict[str, Any], url: str, conn: Any) -> None:
    from aggcore import Aggregator

    config = {
        "exchanges": sections,
        "bus": {"nats": {"servers": [url]}},
        "monitoring": {"metrics": {"enabled": False}},
        "logging": {"level": "WARNING"},
    }
    agg = Aggregator(config, role="feed")
    async with agg:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_command() -> None:
            cmd = conn.recv()
            if cmd == "stats":
                books = [b for c in agg.connectors.values() for b in c.books.values()]
                conn.send(
                    {
                        "frames": sum(c.messages for c in agg.connectors.values()),
                        "live": sum(b.live for b in books),
                        "books": len(books),
                        "published": agg.bus.published if agg.bus else 0,
                        "scans": agg.outbox.scans,
                        "cpu": time.process_time(),
                    }
                )
            elif cmd == "stop":
                done.set()

        loop.add_reader(conn.fileno(), on_command)
        conn.send("ready")
        await done.wait()
        loop.remove_reader(conn.fileno())
    conn.send("stopped")


async def run_one(n_feeds: int, rates: list[int], window_s: float, settle_s: float, url: str, log: Any) -> dict[str, Any]:
    import anyio

    from aggcore import Aggregator
    from aggcore.plugins import load_plugins

    registry = load_plugins()
    names = sorted(n for n, c in registry.connectors.items() if c.fake_server)
    groups = [names[i::n_feeds] for i in range(n_feeds)]
    ctx = mp.get_context("spawn")
    rate = ctx.Value("d", float(rates[0]), lock=False)
    fake_pipes, feed_pipes, children = [], [], []
    try:
        for g, group in enumerate(groups):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=fakes_main, args=(group, rate, child, 11 + 10 * g, len(names)), daemon=True)
            proc.start()
            fake_pipes.append(parent)
            children.append(proc)
        sections_per_feed = [await anyio.to_thread.run_sync(p.recv) for p in fake_pipes]
        for sections in sections_per_feed:
            for s in sections.values():
                s["stale_after_s"] = 10
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=feed_main, args=(sections, url, child), daemon=True)
            proc.start()
            feed_pipes.append(parent)
            children.append(proc)
        for p in feed_pipes:
            assert await anyio.to_thread.run_sync(p.recv) == "ready"

        def ask(pipes: list[Any], cmd: str) -> list[Any]:
            for p in pipes:
                p.send(cmd)
            return [p.recv() for p in pipes]

        config = {
            "bus": {"nats": {"servers": [url]}},
            "aggregation": {"max_price_levels": 10, "max_age_ms": 5000, "quote_groups": {"USD": ["USD", "USDT", "USDC"]}},
            "monitoring": {"health_check_interval_ms": 1000, "metrics": {"enabled": False}},
            "logging": {"level": "WARNING"},
        }
        steps: list[dict[str, Any]] = []
        async with Aggregator(config, registry=registry, role="consolidate") as agg:
            lag: list[float] = []
            original = agg._analyse

            def analyse(views: list[Any]) -> None:
                firsts = [v.first_dirty_ns for v in views]
                original(views)
                now_ns = time.monotonic_ns()
                lag.extend((now_ns - f) / 1e6 for f in firsts if f)

            agg._analyse = analyse  # type: ignore[method-assign]
            remote = agg.remote
            assert remote is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if len(remote.books) >= len(names) and all(r.book.live for r in remote.books.values()):
                    break
                await anyio.sleep(0.1)
            log(f"  {n_feeds} feed(s): {sum(r.book.live for r in remote.books.values())}/{len(names)} remote books LIVE")
            for r in rates:
                rate.value = float(r)
                await anyio.sleep(settle_s)
                lag.clear()
                f0 = await anyio.to_thread.run_sync(ask, fake_pipes, "stats")
                d0 = await anyio.to_thread.run_sync(ask, feed_pipes, "stats")
                m0, cpu0, t0 = remote.received, time.process_time(), time.monotonic()
                await anyio.sleep(window_s)
                f1 = await anyio.to_thread.run_sync(ask, fake_pipes, "stats")
                d1 = await anyio.to_thread.run_sync(ask, feed_pipes, "stats")
                m1, cpu1, t1 = remote.received, time.process_time(), time.monotonic()
                dt = t1 - t0
                sent = sum(sum(b["sent"].values()) for b in f1) - sum(sum(a["sent"].values()) for a in f0)
                recv = sum(b["frames"] for b in d1) - sum(a["frames"] for a in d0)
                feeds_cpu = sum(b["cpu"] for b in d1) - sum(a["cpu"] for a in d0)
                fakes_cpu = sum(b["cpu"] for b in f1) - sum(a["cpu"] for a in f0)
                cpu = cpu1 - cpu0
                step = {
                    "offered_fps": r,
                    "sent_fps": round(sent / dt),
                    "received_fps": round(recv / dt),
                    "bus_msgs_per_s": round((m1 - m0) / dt),
                    "feeds_published_per_s": round((sum(b["published"] for b in d1) - sum(a["published"] for a in d0)) / dt),
                    "feed_books_live": f"{sum(b['live'] for b in d1)}/{sum(b['books'] for b in d1)}",
                    "feed_scans_per_s": round((sum(b["scans"] for b in d1) - sum(a["scans"] for a in d0)) / dt),
                    "receipt_summary_ms": {"p50": pct(lag, 0.5), "p99": pct(lag, 0.99), "n": len(lag)},
                    "consolidator_cpu_core": round(cpu / dt, 3),
                    "consolidator_cpu_s_per_10k_fps": round((cpu / dt) / (recv / dt / 10_000), 3) if recv else None,
                    "feeds_cpu_core": round(feeds_cpu / dt, 3),
                    "fakes_cpu_core": round(fakes_cpu / dt, 3),
                }
                p99 = step["receipt_summary_ms"]["p99"]
                step["sustained"] = bool(sent and recv >= 0.97 * sent and p99 is not None and p99 < 100)
                step["generator_limited"] = sent < 0.9 * r * dt
                steps.append(step)
                log(
                    f"  offered {r:>6}/s sent {step['sent_fps']:>6}/s recv {step['received_fps']:>6}/s "
                    f"live {step['feed_books_live']} scans {step['feed_scans_per_s']}/s bus {step['feeds_published_per_s']:>5} -> {step['bus_msgs_per_s']:>5} msg/s feed receipt->summary p50/p99 "
                    f"{step['receipt_summary_ms']['p50'] or 0:.1f}/{p99 or 0:.1f} ms consolidator {step['consolidator_cpu_core']:.2f} core "
                    f"(feeds {step['feeds_cpu_core']:.2f}, fakes {step['fakes_cpu_core']:.2f}) "
                    f"{'OK' if step['sustained'] else 'NOT sustained'}{' (generator-limited)' if step['generator_limited'] else ''}"
                )
                if not step["sustained"] or step["generator_limited"]:
                    break
        ok = [s for s in steps if s["sustained"]]
        best = max(ok, key=lambda s: s["received_fps"]) if ok else None
        per = [s["consolidator_cpu_s_per_10k_fps"] for s in ok if s["consolidator_cpu_s_per_10k_fps"] and s["offered_fps"] >= 5000]  # the steps offered at 5k/s and up
        p50s = [s["receipt_summary_ms"]["p50"] for s in ok if s["receipt_summary_ms"]["p50"] is not None]
        p99s = [s["receipt_summary_ms"]["p99"] for s in ok if s["receipt_summary_ms"]["p99"] is not None]
        return {
            "feeds": n_feeds,
            "venues_per_feed": groups,
            "steps": steps,
            "max_sustained_fps": best["received_fps"] if best else 0,
            "consolidator_cpu_s_per_10k_fps": statistics.median(per) if per else None,
            "receipt_summary_ms_p50": statistics.median(p50s) if p50s else None,
            "receipt_summary_ms_p99": statistics.median(p99s) if p99s else None,
            "limited_by": ("generator (fakes' processes)" if steps and steps[-1]["generator_limited"] and steps[-1]["sustained"]
                           else "bus path" if steps and not steps[-1]["sustained"] else "rate list exhausted"),  # fmt: skip
        }
    finally:
        for pipes in (feed_pipes, fake_pipes):
            for p in pipes:
                try:
                    p.send("stop")
                except Exception:
                    pass
        for proc in children:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import anyio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rates, 2 s windows")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="total frames/s across all venues")
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "bus.json"))
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    if args.quick:
        rates, args.window, args.settle = [5_000, 10_000], 2.0, 1.0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("nats-server") is None:
        result: dict[str, Any] = {"skipped": "nats-server not found (Debian package nats-server)"}
        log(f"bus: skipped: {result['skipped']}")
        out.write_text(json.dumps(result, indent=1))
        return result
    from aggcore_plugin_nats.testing import NatsServer
    from aggcore.testing.services import free_port
    import tempfile

    log(f"bus: rates {rates} frames/s, {args.window:.0f} s windows, {os.cpu_count()} CPUs")
    t0 = time.monotonic()
    runs = []
    with tempfile.TemporaryDirectory(prefix="aggcore-bench-nats-") as d:
        for n_feeds in (1, 2):
            server = NatsServer("nats-server", Path(d) / str(n_feeds), free_port())
            server.dir.mkdir()
            server.start()
            try:
                runs.append(anyio.run(run_one, n_feeds, rates, args.window, args.settle, server.url, log))
            finally:
                server.stop()
    result = {"runs": runs, "elapsed_s": round(time.monotonic() - t0, 1), "cpus": os.cpu_count()}
    out.write_text(json.dumps(result, indent=1))
    log(f"wrote {out} ({result['elapsed_s']} s)")
    return result


if __name__ == "__main__":
    main()
