"""End-to-end benchmark: every plugin's fake exchange pushes frames over real loopback
WebSockets into a running :class:`aggcore.Aggregator`, at rising rates.

- The fakes run in separate processes (``multiprocessing``, spawn; ``--fake-procs``, default 2),
  so their cost does not count against the aggregator's process (on a 2-CPU machine they still
  compete with it for the CPUs: the figures are then conservative); the aggregator runs on one core (one event loop,
  the default runtime: parse -> book -> dirty mark in the connection task, analysis at most
  every ``analyze_interval_ms`` = 10 ms, summary + arbitrage analyzers).
- One symbol per venue, all feeding ONE consolidated pair (``quote_groups`` merges BTC/USD and
  BTC/USDT into ``BTC/USD``). Each fake steps its book ``rate / venues`` times a second
  (``FakeExchange(rate_hz=...)``); the fake's 1/rate sleep loop is replaced by a catch-up loop
  (steps owed since the last 1 ms wake-up) so rates above the sleep granularity are exact.
  Each fake's book is its own order flow around one starting price (``BTC_MID``), so the venues
  quote within a few ticks of each other and seldom cross after fees (until 2026-12-02 Coinbase's
  fake quoted at its own default of 60,000, twice the others: the consolidated book crossed by
  100% and the arbitrage analyzer walked six venue pairs to its level limit on every analysis;
  the fakes' defaults now agree, and ``BTC_MID`` keeps the benchmark from depending on them);
  ``--market`` makes every venue follow one latent price that moves, as ``aggcore run
  --simulate`` quotes (a side measurement: its books cost the fakes more, so its ramp stops
  lower).
- Per rate step: frames sent (counted in the fakes) and received (the connectors' counters),
  receipt->summary lag (first frame that dirtied the view -> the summary analyzer ran,
  the runtime's own ``summary_latency``), send->summary lag (the fake's timestamp in the
  freshest frame -> the summary), and the aggregator process's CPU time
  (``time.process_time``) per 10k frames/s.
- A rate is *sustained* when the aggregator received >= 97% of what was sent and the p99
  send->summary lag stayed under 100 ms. The run stops at the first rate not sustained.
- ``--parts``: also where the aggregator's CPU goes in each step (:class:`Parts`); the timers
  cost about 0.02 core at 10k frames/s themselves, so the headline figures come from runs
  without it.
- ``--floor``: the receive path alone. Once every book is LIVE, each frame gets only the
  connector's own bookkeeping (its receipt time, the count; :func:`bookkeeping_only`), not the
  plugin's parser, the book or the analyses: what the event loop, the sockets and the WebSocket
  framing cost at each rate, the part of the aggregator's CPU that no parser or book work can
  remove. A step is then sustained on the frames received alone (there are no summaries).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

MARKET_SEED = 7
#: where every venue's BTC book starts, whatever the fakes' own defaults (Coinbase's BTC-USD was
#: at 60,000 until 2026-12-02, the others' at 30,000: the consolidated book crossed by 100%)
BTC_MID = 30_000.0
RATES = [2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000]


# -- the fakes' process ------------------------------------------------------------------------------


def _paced_tick(shared: Any, venues: int) -> Any:
    async def tick(self: Any) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        owed = 0.0
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            hz = shared.value / venues
            owed = min(owed + (now - last) * hz, hz * 0.05 + 1)  # never more than 50 ms of backlog
            last = now
            k = int(owed)
            owed -= k
            if not self.running or now < self.stalled_until:
                continue
            for _ in range(k):
                self._step_all()

    return tick


def fakes_main(names: list[str], rate: Any, conn: Any, seed: int, venues: int, market: bool = False) -> None:
    asyncio.run(_serve_fakes(names, rate, conn, seed, venues, market))


async def _serve_fakes(names: list[str], rate: Any, conn: Any, seed: int, venues: int, market: bool = False) -> None:
    from aggcore.plugins import load_plugins
    from aggcore.testing.market import Market

    # --market: every venue follows one latent price (the same seed in each process), as
    # ``aggcore run --simulate`` quotes; else each book is its own random walk
    shared = Market(MARKET_SEED) if market else None

    registry = load_plugins()
    fakes: dict[str, Any] = {}
    sent: dict[str, int] = {}
    for i, name in enumerate(names):
        cls = registry.connectors[name]
        module, _, attr = cls.fake_server.partition(":")
        fake_cls = getattr(importlib.import_module(module), attr)
        probe = fake_cls(seed=seed + i, rate_hz=1.0, autostart=False)
        symbol = next(s for s, spec in probe.specs.items() if spec.base.upper() in ("BTC", "XBT") and spec.kind == "spot")
        spec = dataclasses.replace(probe.specs[symbol], mid=BTC_MID)
        fake = fake_cls(symbols={symbol: spec}, seed=seed + i, rate_hz=max(1.0, rate.value / venues), market=shared)
        fake._tick = types.MethodType(_paced_tick(rate, venues), fake)
        sent[name] = 0
        deliver = fake.deliver

        def counted(session: Any, sym: str, frames: list[str], _d: Any = deliver, _n: str = name) -> None:
            sent[_n] += len(frames)
            _d(session, sym, frames)

        fake.deliver = counted  # type: ignore[method-assign]
        await fake.start()
        fakes[name] = fake
    conn.send({n: f.connector_config() for n, f in fakes.items()})
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def on_command() -> None:
        cmd = conn.recv()
        if cmd == "stats":
            conn.send({"sent": dict(sent), "cpu": time.process_time()})
        elif cmd == "stop":
            done.set()

    loop.add_reader(conn.fileno(), on_command)
    await done.wait()
    loop.remove_reader(conn.fileno())
    for fake in fakes.values():
        await fake.stop()
    conn.send("stopped")


# -- the aggregator's side ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Parts:
    """Where the aggregator's process spends its CPU in a step, from timers around each part:

    - ``handle_us``: each venue's ``Connector._handle`` per frame (its plugin's parse, the book,
      the view's dirty mark), and ``handle_core`` all of them together;
    - ``reads_core``: the socket reads (``data_received``: frames cut out of the read and
      handled, so ``handle_core`` is part of it) and how many there were;
    - ``analyses_core``: the analysis passes (summary and arbitrage on the pair), with each
      analyzer's ``on_update`` per pass in ``analyzer_us``;
    - ``gc_core``: the garbage collector; ``user_core``/``system_core``: the process's CPU in
      user space and in the kernel (sockets, epoll); ``rest_core``: what the timers do not
      cover (the event loop, timers, health checks: the aggregator's CPU minus reads and
      analyses; near 0, or below, where the CPUs are saturated and the timers' own cost shows).
    """

    def __init__(self) -> None:
        self.handle: dict[str, list[int]] = {}
        self.reads = [0, 0]
        self.analyses = [0, 0]
        self.analyzers: dict[str, list[int]] = {}
        self.gc = [0, 0]
        self._gc_start = 0
        self._rusage: Any = None

    def install(self, agg: Any) -> None:
        import gc

        import aggcore.connector as connector

        clock = time.perf_counter_ns
        handle = connector.Connector._handle
        per_venue = self.handle

        def timed_handle(self: Any, conn: Any, frame: Any, now: int) -> None:
            t0 = clock()
            handle(self, conn, frame, now)
            c = per_venue.get(self.name)
            if c is None:
                c = per_venue[self.name] = [0, 0]
            c[0] += 1
            c[1] += clock() - t0

        connector.Connector._handle = timed_handle  # type: ignore[method-assign]
        received = connector._ClientConnection.data_received
        reads = self.reads

        def timed_received(self: Any, data: bytes) -> None:
            t0 = clock()
            received(self, data)
            reads[0] += 1
            reads[1] += clock() - t0

        connector._ClientConnection.data_received = timed_received  # type: ignore[method-assign]
        for analyzer in agg.analyzers:
            on_update = analyzer.on_update
            c = self.analyzers[analyzer.name] = [0, 0]

            def timed_update(view: Any, now: float, _f: Any = on_update, _c: list[int] = c) -> None:
                t0 = clock()
                _f(view, now)
                _c[0] += 1
                _c[1] += clock() - t0

            analyzer.on_update = timed_update

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                self._gc_start = clock()
            else:
                self.gc[0] += 1
                self.gc[1] += clock() - self._gc_start

        gc.callbacks.append(on_gc)

    def timed_analysis(self, analyse: Any, views: list[Any]) -> None:
        t0 = time.perf_counter_ns()
        analyse(views)
        self.analyses[0] += 1
        self.analyses[1] += time.perf_counter_ns() - t0

    def reset(self) -> None:
        for c in (*self.handle.values(), self.reads, self.analyses, *self.analyzers.values(), self.gc):
            c[0] = c[1] = 0
        self._rusage = resource.getrusage(resource.RUSAGE_SELF)

    def report(self, dt: float, cpu_core: float) -> dict[str, Any]:
        now = resource.getrusage(resource.RUSAGE_SELF)

        def core(ns: int) -> float:
            return round(ns / 1e9 / dt, 3)
        reads = core(self.reads[1])
        analyses = core(self.analyses[1])
        return {
            "handle_us": {n: round(c[1] / c[0] / 1000, 1) for n, c in sorted(self.handle.items()) if c[0]},
            "handle_core": core(sum(c[1] for c in self.handle.values())),
            "reads_core": reads,
            "reads_per_s": round(self.reads[0] / dt),
            "analyses_core": analyses,
            "analyses_per_s": round(self.analyses[0] / dt),
            "analyzer_us": {n: round(c[1] / c[0] / 1000, 1) for n, c in sorted(self.analyzers.items()) if c[0]},
            "gc_core": core(self.gc[1]),
            "user_core": round((now.ru_utime - self._rusage.ru_utime) / dt, 3),
            "system_core": round((now.ru_stime - self._rusage.ru_stime) / dt, 3),
            "rest_core": round(cpu_core - reads - analyses, 3),
        }


def bookkeeping_only() -> Any:
    """``--floor``: ``Connector._handle`` replaced by its bookkeeping alone (the receipt time, the
    count, the connection's last parsed frame, which keeps its books LIVE) once the returned
    switch is called; until then it handles frames as always (the books get LIVE)."""
    import aggcore.connector as connector

    handle = connector.Connector._handle
    on = [False]

    def floor_handle(self: Any, conn: Any, frame: Any, now: int) -> None:
        if not on[0]:
            handle(self, conn, frame, now)
            return
        conn.last_frame_ns = now
        self.messages += 1
        conn.last_parsed_ns = now

    connector.Connector._handle = floor_handle  # type: ignore[method-assign]

    def switch() -> None:
        on[0] = True

    return switch


async def run(
    rates: list[int], window_s: float, settle_s: float, names: list[str] | None, procs: int, log: Any, market: bool = False,
    parts: Parts | None = None, floor: bool = False,
) -> dict[str, Any]:
    import anyio
    from aggcore import Aggregator
    from aggcore.plugins import load_plugins

    registry = load_plugins()
    names = names or sorted(n for n, c in registry.connectors.items() if c.fake_server)
    ctx = mp.get_context("spawn")
    rate = ctx.Value("d", float(rates[0]), lock=False)
    groups = [names[i::procs] for i in range(min(procs, len(names)))]
    pipes, children = [], []
    for g, group in enumerate(groups):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=fakes_main, args=(group, rate, child, 11 + 10 * g, len(names), market), daemon=True)
        proc.start()
        pipes.append(parent)
        children.append(proc)

    def ask(cmd: str) -> Any:
        for p in pipes:
            p.send(cmd)
        replies = [p.recv() for p in pipes]
        if cmd != "stats":
            return replies
        return {"sent": {n: v for r in replies for n, v in r["sent"].items()}, "cpu": sum(r["cpu"] for r in replies)}

    def hello() -> dict[str, Any]:
        return {n: c for p in pipes for n, c in p.recv().items()}

    try:
        sections = await anyio.to_thread.run_sync(hello)
        for section in sections.values():
            section["stale_after_s"] = 10
        config = {
            "exchanges": sections,
            "aggregation": {"max_price_levels": 10, "max_age_ms": 5000, "quote_groups": {"USD": ["USD", "USDT", "USDC"]}},
            "monitoring": {"health_check_interval_ms": 1000, "metrics": {"enabled": False}},
            "logging": {"level": "WARNING"},
        }
        steps: list[dict[str, Any]] = []
        async with Aggregator(config, registry=registry) as agg:
            receipt_lag: list[float] = []
            send_lag: list[float] = []
            original = agg._analyse

            def analyse(views: list[Any]) -> None:
                firsts = [(v, v.first_dirty_ns) for v in views]
                if parts is None:
                    original(views)
                else:
                    parts.timed_analysis(original, views)
                now_ns = time.monotonic_ns()
                now = time.time()
                for view, first in firsts:
                    if first:
                        receipt_lag.append((now_ns - first) / 1e6)
                    stamps = [b.last_exchange_ts for b in view.venues.values() if b.live and b.last_exchange_ts]
                    if stamps:
                        send_lag.append((now - max(stamps)) * 1000)

            agg._analyse = analyse  # type: ignore[method-assign]
            floor_on = bookkeeping_only() if floor else None
            if parts is not None:
                parts.install(agg)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                books = [b for c in agg.connectors.values() for b in c.books.values()]
                if books and all(b.live for b in books):
                    break
                await anyio.sleep(0.1)
            live = {n: all(b.live for b in c.books.values()) for n, c in agg.connectors.items()}
            log(f"  venues LIVE: {sum(live.values())}/{len(live)} {[n for n, ok in live.items() if not ok] or ''}")
            if floor_on is not None:
                floor_on()
                log("  --floor: from now on every frame gets the connector's bookkeeping alone (no parser, book or analysis)")
            views = list(agg.router.views)
            for r in rates:
                rate.value = float(r)
                await anyio.sleep(settle_s)
                receipt_lag.clear()
                send_lag.clear()
                s0 = await anyio.to_thread.run_sync(ask, "stats")
                m0 = sum(c.messages for c in agg.connectors.values())
                if parts is not None:
                    parts.reset()
                cpu0, t0 = time.process_time(), time.monotonic()
                resync0 = sum(b.resyncs for c in agg.connectors.values() for b in c.books.values())
                await anyio.sleep(window_s)
                s1 = await anyio.to_thread.run_sync(ask, "stats")
                m1 = sum(c.messages for c in agg.connectors.values())
                cpu1, t1 = time.process_time(), time.monotonic()
                resync1 = sum(b.resyncs for c in agg.connectors.values() for b in c.books.values())
                dt = t1 - t0
                sent = sum(s1["sent"].values()) - sum(s0["sent"].values())
                recv = m1 - m0
                cpu = cpu1 - cpu0
                fake_cpu = (s1["cpu"] - s0["cpu"]) / dt
                step = {
                    "offered_fps": r,
                    "sent_fps": round(sent / dt),
                    "received_fps": round(recv / dt),
                    "received_ratio": round(recv / sent, 4) if sent else None,
                    "receipt_summary_ms": {"p50": pct(receipt_lag, 0.5), "p99": pct(receipt_lag, 0.99), "n": len(receipt_lag)},
                    "send_summary_ms": {"p50": pct(send_lag, 0.5), "p99": pct(send_lag, 0.99), "n": len(send_lag)},
                    "agg_cpu_core": round(cpu / dt, 3),
                    "cpu_s_per_10k_fps": round((cpu / dt) / (recv / dt / 10_000), 3) if recv else None,
                    "fakes_cpu_core": round(fake_cpu, 3),  # summed over the fakes' processes
                    "resyncs": resync1 - resync0,
                    "per_venue_sent_fps": {n: round((s1["sent"][n] - s0["sent"][n]) / dt) for n in s1["sent"]},
                }
                p99 = step["send_summary_ms"]["p99"]
                step["sustained"] = bool(sent and recv >= 0.97 * sent and (floor or (p99 is not None and p99 < 100)))
                # the fakes' process is one core too: when it cannot produce the offered rate the
                # step measures the generator, not the aggregator
                step["generator_limited"] = sent < 0.9 * r * dt
                if parts is not None:
                    step["parts"] = pp = parts.report(dt, cpu / dt)
                    log(
                        f"    parts: handle {pp['handle_core']:.3f} core "
                        f"({', '.join(f'{n} {us:.1f}' for n, us in pp['handle_us'].items())} us/frame); "
                        f"reads {pp['reads_core']:.3f} ({pp['reads_per_s']}/s, handling included); "
                        f"analyses {pp['analyses_core']:.3f} ({pp['analyses_per_s']}/s: "
                        f"{', '.join(f'{n} {us:.0f}' for n, us in pp['analyzer_us'].items())} us each); "
                        f"gc {pp['gc_core']:.3f}; rest {pp['rest_core']:.3f}; "
                        f"user {pp['user_core']:.3f} + system {pp['system_core']:.3f}"
                    )
                steps.append(step)
                log(
                    f"  offered {r:>6}/s sent {step['sent_fps']:>6}/s recv {step['received_fps']:>6}/s "
                    f"receipt->summary p50/p99 {step['receipt_summary_ms']['p50'] or 0:.1f}/{step['receipt_summary_ms']['p99'] or 0:.1f} ms "
                    f"send->summary p99 {p99 or 0:.1f} ms cpu {step['agg_cpu_core']:.2f} core (fakes {fake_cpu:.2f}) "
                    f"{'OK' if step['sustained'] else 'NOT sustained'}{' (generator-limited)' if step['generator_limited'] else ''}"
                )
                if not step["sustained"] or step["generator_limited"]:
                    break
        ok = [s for s in steps if s["sustained"]]
        best = max(ok, key=lambda s: s["received_fps"]) if ok else None
        cpu_per = [s["cpu_s_per_10k_fps"] for s in ok if s["cpu_s_per_10k_fps"] and s["offered_fps"] >= 5000]  # the steps offered at 5k/s and up
        return {
            "venues": names,
            "views": views,
            "window_s": window_s,
            "steps": steps,
            "max_sustained_fps": best["received_fps"] if best else 0,
            "at_max": best,
            "cpu_s_per_10k_fps": statistics.median(cpu_per) if cpu_per else None,
            "floor": floor,
            "limited_by": ("generator (fakes' process)" if steps and steps[-1]["generator_limited"] and steps[-1]["sustained"]
                           else "aggregator" if steps and not steps[-1]["sustained"] else "rate list exhausted"),  # fmt: skip
        }
    finally:
        try:
            await anyio.to_thread.run_sync(ask, "stop")
        except Exception:
            pass
        for proc in children:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import anyio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rates, 2 s windows (< 40 s)")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="total frames/s across all venues")
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--venues", default="", help="comma-separated plugin names (default: every plugin with a fake)")
    ap.add_argument("--fake-procs", type=int, default=2, help="processes the fakes are spread over")
    ap.add_argument("--market", action="store_true", help="the venues follow one market price (as --simulate); default: independent books")
    ap.add_argument("--parts", action="store_true", help="also time each part of the aggregator (handle per venue, reads, analyses, gc)")
    ap.add_argument("--floor", action="store_true", help="the receive path alone: no parser, book or analysis once the books are LIVE")
    ap.add_argument("--json", default=None, help="default: bench/results/e2e.json (e2e-market.json with --market, e2e-floor.json with --floor)")
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    if args.quick:
        rates, args.window, args.settle = [5_000, 10_000, 20_000], 2.0, 1.0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"end-to-end: rates {rates} frames/s, {args.window:.0f} s windows, {os.cpu_count()} CPUs")
    t0 = time.monotonic()
    venues = [v for v in args.venues.split(",") if v] or None
    if args.floor and args.market:
        ap.error("--floor and --market: choose one")
    result = anyio.run(
        run, rates, args.window, args.settle, venues, args.fake_procs, log, args.market, Parts() if args.parts else None, args.floor
    )
    result["fake_procs"] = args.fake_procs
    result["market"] = args.market
    result["parts"] = args.parts
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    if args.json is None:
        name = "e2e-market.json" if args.market else "e2e-floor.json" if args.floor else "e2e.json"
        args.json = str(Path(__file__).resolve().parent / "results" / name)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    log(f"wrote {args.json} ({result['elapsed_s']} s)")
    return result


if __name__ == "__main__":
    main()
