"""Hot-path benchmark: the same Binance frames through every design, in ONE process.

Designs (each replays the workload's text frames, after seeding its books from the same REST
snapshot bodies, outside the timed region):

- ``orjson.loads`` alone: the floor.
- cryptofeed's Binance feed handler, driven with no network (``Symbols.set``, ``Binance(...)``,
  ``http_conn.read`` patched to return the snapshot, seeded through ``_snapshot()``; timed
  ``await feed.message_handler(frame, None, ts)``), with a no-op callback (``apply``) and with
  a callback reading the top-10 of both sides (``top10``).
- ccxt.pro's ``binance().handle_order_book_message(None, data, orderbook)`` on an ``OrderBook``
  from ``ccxt.async_support.base.ws.order_book``, after ``orjson.loads``, then a top-10 slice.
- aggcore: the Binance plugin's ``on_frame`` (parse -> sync checks -> SymbolBook -> consolidated
  view marked dirty), then, per policy, the built-in SummaryAnalyzer (merged top-N, a Summary
  only when it changed): ``apply`` (no analysis), ``full/msg`` (analysis after every message),
  ``full/100`` (analysis every 100 messages, i.e. every 10 ms of simulated time at 10k msg/s).

Repeats are interleaved (the order of designs rotates every round); figures are medians with
the min/max spread; ratios are taken within each round and then the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import Workload, binance_recorded, seven, synthetic  # noqa: E402

Top = dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]]  # "venue:SYMBOL" -> top-10

QUOTES = ("USDT", "USDC", "BUSD", "EUR", "BTC", "ETH", "BNB", "USD")
ANALYZE_EVERY = 100


def pair_of(symbol: str) -> str:
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return f"{symbol[: -len(q)]}/{q}"
    return symbol


def std_of(symbol: str) -> str:
    return pair_of(symbol).replace("/", "-")


# -- designs ------------------------------------------------------------------------------------------


class Design:
    name = ""
    peer = False
    multi_venue = False  # can it feed several venues into one consolidated pair?

    def setup(self, wl: Workload) -> None:
        self.wl = wl

    def run(self, frames: list[tuple[int, str]], lat: list[int] | None) -> int:
        """Process every frame; return elapsed ns; append per-message ns to ``lat`` when given."""
        raise NotImplementedError

    def top10(self) -> Top:
        return {}

    def extra(self) -> dict[str, Any]:
        return {}


class Floor(Design):
    name = "orjson.loads (floor)"
    multi_venue = True

    def run(self, frames: list[tuple[int, str]], lat: list[int] | None) -> int:
        loads = orjson.loads
        texts = [f for _, f in frames]
        pc = time.perf_counter_ns
        if lat is None:
            t0 = pc()
            for f in texts:
                loads(f)
            return pc() - t0
        append = lat.append
        t0 = pc()
        for f in texts:
            a = pc()
            loads(f)
            append(pc() - a)
        return pc() - t0


class LastEvent:
    """The analyzer's ``emit``: counts events and keeps the last (a fan-out hop is not timed)."""

    def __init__(self) -> None:
        self.count = 0
        self.last: Any = None

    def __call__(self, event: Any) -> None:
        self.count += 1
        self.last = event


class Aggcore(Design):
    multi_venue = True

    def __init__(self, policy: str) -> None:
        self.policy = policy  # "apply" | "msg" | "every" | "top"
        self.name = {"apply": "aggcore apply (no analysis)", "msg": "aggcore full, analysis/msg",
                     "every": f"aggcore full, analysis/{ANALYZE_EVERY} msgs",
                     "top": f"aggcore full, top of book/msg + analysis/{ANALYZE_EVERY} msgs"}[policy]  # fmt: skip

    def setup(self, wl: Workload) -> None:
        from aggcore.book import SymbolBook
        from aggcore.builtins.analyzers.summary import SummaryAnalyzer, SummaryConfig
        from aggcore.config import AggregationConfig
        from aggcore.consolidated import Router
        from aggcore_plugin_binance.connector import BinanceConfig, BinanceConnector
        from aggcore_plugin_binance.messages import parse_snapshot

        self.wl = wl
        self.router = Router()
        self.connectors = []
        self.books: dict[str, Any] = {}
        for v, snaps in enumerate(wl.snapshots):
            conn = BinanceConnector(BinanceConfig(trading_pairs=list(snaps)), listener=self.router)
            exchange = "binance" if len(wl.snapshots) == 1 else f"venue{v}"
            for sym, body in snaps.items():
                book = SymbolBook(exchange, sym, pair_of(sym), conn.rules, depth=conn.depth, listener=self.router)
                conn.books[sym] = book
                self.router.attach(book)
                book.snapshot_fetched(parse_snapshot(sym, orjson.loads(body)))
                self.books[f"{v}:{sym}"] = book
            conn.subscribe_frames(list(snaps))  # as the runtime does on connecting (it picks the decoder)
            self.connectors.append(conn)
        self.sink = LastEvent()
        settings = AggregationConfig(max_price_levels=10)
        self.analyzer = SummaryAnalyzer(SummaryConfig(), self.sink, settings)
        self.analyses = 0

    def run(self, frames: list[tuple[int, str]], lat: list[int] | None) -> int:
        handlers = [c.on_frame for c in self.connectors]
        work = [(handlers[v], f) for v, f in frames]
        router = self.router
        on_update = self.analyzer.on_update
        clock = time.monotonic_ns
        wall = time.time
        pc = time.perf_counter_ns
        policy = self.policy
        every = ANALYZE_EVERY
        analyses = 0
        t0 = pc()
        if policy == "apply":
            if lat is None:
                for on_frame, f in work:
                    on_frame(None, f, clock())
            else:
                for on_frame, f in work:
                    a = pc()
                    on_frame(None, f, clock())
                    lat.append(pc() - a)
            router.take_dirty()
        elif policy == "top":
            # after every message the consolidated top of book of the pair it changed (a reader
            # that knows its pair), and the analysis every 100 messages
            views = {}
            for v, f in frames:
                if (v, f) not in views:
                    data = orjson.loads(f)
                    sym = (data.get("data") or data)["s"]
                    views[(v, f)] = router.view_for(pair_of(sym))
            tasks = [(handlers[v], f, views[(v, f)]) for v, f in frames]
            i = 0
            dirty = router.dirty
            top = None
            t0 = pc()
            if lat is None:  # throughput: nothing timed per message (as in the other designs' loops)
                for on_frame, f, view in tasks:
                    on_frame(None, f, clock())
                    top = view.top_of_book()
                    i += 1
                    if i % every == 0 and dirty:
                        now = wall()
                        for view in router.take_dirty():
                            on_update(view, now)
                            analyses += 1
            else:
                for on_frame, f, view in tasks:
                    a = pc()
                    on_frame(None, f, clock())
                    top = view.top_of_book()
                    i += 1
                    if i % every == 0 and dirty:
                        now = wall()
                        for view in router.take_dirty():
                            on_update(view, now)
                            analyses += 1
                    lat.append(pc() - a)
            self.top = top
            if router.dirty:
                now = wall()
                for view in router.take_dirty():
                    on_update(view, now)
        else:
            i = 0
            step = 1 if policy == "msg" else every
            dirty = router.dirty
            if lat is None:  # throughput: nothing timed per message
                for on_frame, f in work:
                    on_frame(None, f, clock())
                    i += 1
                    if dirty and i % step == 0:
                        now = wall()
                        for view in router.take_dirty():
                            on_update(view, now)
                            analyses += 1
            else:
                for on_frame, f in work:
                    a = pc()
                    on_frame(None, f, clock())
                    i += 1
                    if dirty and i % step == 0:
                        now = wall()
                        for view in router.take_dirty():
                            on_update(view, now)
                            analyses += 1
                    lat.append(pc() - a)
            if router.dirty:  # what is left at the end (not timed per message)
                now = wall()
                for view in router.take_dirty():
                    on_update(view, now)
        elapsed = pc() - t0
        self.analyses = analyses
        return elapsed

    def top10(self) -> Top:
        out: Top = {}
        for key, book in self.books.items():
            out[key] = (book.book.bids.top(10), book.book.asks.top(10))
        return out

    def merged(self) -> tuple[list[float], list[float]] | None:
        if self.sink.last is None:
            return None
        s = self.sink.last.payload
        return [lv.price for lv in s.bids], [lv.price for lv in s.asks]

    def extra(self) -> dict[str, Any]:
        return {"analyses": self.analyses, "summaries": self.sink.count}


class Cryptofeed(Design):
    peer = True

    def __init__(self, top10: bool) -> None:
        self.read_top = top10
        self.name = "cryptofeed Binance handler, top-10 read" if top10 else "cryptofeed Binance handler, no-op callback"

    def setup(self, wl: Workload) -> None:
        from cryptofeed.defines import BINANCE, L2_BOOK
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbols

        self.wl = wl
        snaps = wl.snapshots[0]
        norm = {std_of(s): s for s in snaps}
        Symbols.set(BINANCE, norm, {"tick_size": {n: "0.01" for n in norm}, "instrument_type": {n: "spot" for n in norm}})
        read_top = self.read_top

        async def cb(book: Any, ts: float) -> None:
            if read_top:
                bids = book.book.bids
                asks = book.book.asks
                for i in range(min(10, len(bids))):
                    bids.index(i)
                for i in range(min(10, len(asks))):
                    asks.index(i)

        async def build() -> Any:
            feed = Binance(symbols=list(norm), channels=[L2_BOOK], callbacks={L2_BOOK: cb})

            async def read(address: str, *args: Any, **kwargs: Any) -> str:
                sym = address.split("symbol=", 1)[1].split("&", 1)[0]
                return snaps[sym]

            feed.http_conn.read = read
            for sym in snaps:
                await feed._snapshot(sym)
            return feed

        self.feed = asyncio.run(build())

    def run(self, frames: list[tuple[int, str]], lat: list[int] | None) -> int:
        handler = self.feed.message_handler
        texts = [f for _, f in frames]
        pc = time.perf_counter_ns
        wall = time.time

        async def go() -> int:
            if lat is None:
                t0 = pc()
                for f in texts:
                    await handler(f, None, wall())
                return pc() - t0
            append = lat.append
            t0 = pc()
            for f in texts:
                a = pc()
                await handler(f, None, wall())
                append(pc() - a)
            return pc() - t0

        return asyncio.run(go())

    def top10(self) -> Top:
        out: Top = {}
        for std, book in self.feed._l2_book.items():
            sym = std.replace("-", "")
            sides = []
            for side in (book.book.bids, book.book.asks):
                sides.append([(float(p), float(q)) for p, q in (side.index(i) for i in range(min(10, len(side))))])
            out[f"0:{sym}"] = (sides[0], sides[1])
        return out


class Ccxt(Design):
    name = "ccxt.pro handle_order_book_message + top-10"
    peer = True

    def setup(self, wl: Workload) -> None:
        import ccxt.pro
        from ccxt.async_support.base.ws.order_book import OrderBook

        self.wl = wl
        self.ex = ccxt.pro.binance()
        self.books: dict[str, Any] = {}
        for sym, body in wl.snapshots[0].items():
            snap = orjson.loads(body)
            self.books[sym] = OrderBook(
                {
                    "bids": [[float(p), float(q)] for p, q in snap["bids"]],
                    "asks": [[float(p), float(q)] for p, q in snap["asks"]],
                    "nonce": snap["lastUpdateId"],
                }
            )

    def run(self, frames: list[tuple[int, str]], lat: list[int] | None) -> int:
        handle = self.ex.handle_order_book_message
        books = self.books
        loads = orjson.loads
        texts = [f for _, f in frames]
        pc = time.perf_counter_ns

        def one(f: str) -> None:
            data = loads(f)["data"]
            ob = books[data["s"]]
            handle(None, data, ob)
            ob["bids"][:10]
            ob["asks"][:10]

        if lat is None:
            t0 = pc()
            for f in texts:
                one(f)
            return pc() - t0
        append = lat.append
        t0 = pc()
        for f in texts:
            a = pc()
            one(f)
            append(pc() - a)
        return pc() - t0

    def top10(self) -> Top:
        return {f"0:{s}": ([(p, q) for p, q in ob["bids"][:10]], [(p, q) for p, q in ob["asks"][:10]]) for s, ob in self.books.items()}


# -- summary build and arbitrage passes ------------------------------------------------------------------


def summary_bench(n: int, repeats: int) -> dict[str, Any]:
    """Building a Summary of 2x20 levels from a merged view (7 venues), and encoding its event,
    against the pydantic models the public types were before issue 17 (same process, same rows);
    and what the analyzer pays when one of the 7 venues changed (its re-read and the fold into
    the merged top-20, then the Summary)."""
    from datetime import datetime, timezone

    from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
    from aggcore.builtins.analyzers.summary import build_summary
    from aggcore.consolidated import Merged, Router
    from aggcore.models import PriceLevel
    from aggcore.sink import Event
    from pydantic import BaseModel, Field, TypeAdapter

    class PydLevel(BaseModel):
        price: float
        quantity: float
        exchange: str
        timestamp: datetime

    class PydSummary(BaseModel):
        symbol: str
        spread: float | None
        bids: list[PydLevel]
        asks: list[PydLevel]
        timestamp: datetime
        mid: float | None = None
        best_bid: float | None = None
        best_ask: float | None = None
        crossed: bool = False
        venues: list[str] = Field(default_factory=list)
        excluded: dict[str, str] = Field(default_factory=dict)
        venue_age_ms: dict[str, float] = Field(default_factory=dict)

    levels_adapter = TypeAdapter(list[PydLevel])
    wall = time.time()
    venues = [f"venue{v}" for v in range(7)]
    stamps = {v: datetime.fromtimestamp(wall - (1.0 + i) / 1000, timezone.utc) for i, v in enumerate(venues)}
    bids = [PriceLevel(30000.0 - i * 0.5, 0.1 + i, venues[i % 7], stamps[venues[i % 7]]) for i in range(20)]
    asks = [PriceLevel(30000.5 + i * 0.5, 0.2 + i, venues[(i + 3) % 7], stamps[venues[(i + 3) % 7]]) for i in range(20)]
    ages = {v: 1.0 + i for i, v in enumerate(venues)}
    merged = Merged("BTC/USDT", bids, asks, venues, {}, ages, 0)

    def pydantic_build(m: Merged, wall: float) -> PydSummary:  # the pre-issue-17 build_summary
        ts = datetime.fromtimestamp(wall, timezone.utc)

        def lv(rows: list[PriceLevel]) -> list[PydLevel]:
            return levels_adapter.validate_python(
                [{"price": r.price, "quantity": r.quantity, "exchange": r.exchange, "timestamp": r.timestamp} for r in rows]
            )

        bid, ask = m.best_bid, m.best_ask
        return PydSummary(symbol=m.pair, spread=m.spread, bids=lv(m.bids), asks=lv(m.asks), timestamp=ts, mid=m.mid,
                          best_bid=bid, best_ask=ask, crossed=bid is not None and ask is not None and bid >= ask,
                          venues=m.venues, excluded=m.excluded, venue_age_ms=m.ages_ms)  # fmt: skip

    struct = build_summary(merged, wall)
    pyd = pydantic_build(merged, wall)
    assert orjson.loads(Event("summary", struct, 1.0).to_json()) == orjson.loads(orjson.dumps({"kind": "summary", "ts": 1.0, "data": pyd.model_dump(mode="json")}))

    # the analyzer's path: seven real books of 40+40 levels in one consolidated view (prices
    # interleaved across venues); one venue changes the size of one of its top levels, then the
    # view is merged (that venue re-read, folded into the previous top-20) and a Summary built
    router = Router()
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)
    books = []
    for v, name in enumerate(venues):
        book = SymbolBook(name, "BTCUSDT", "BTC/USDT", rules, listener=router, request_resync=lambda s, r: None)
        router.attach(book)
        book.apply(BookUpdate("BTCUSDT", [[f"{30000 - (7 * k + v) * 0.5:.1f}", "1"] for k in range(40)],
                              [[f"{30000.5 + (7 * k + v) * 0.5:.1f}", "1"] for k in range(40)], snapshot=True), time.monotonic_ns())  # fmt: skip
        books.append(book)
    (view,) = router.views.values()
    view.merge(20, 60_000)
    step = [0]
    clock = [wall]

    def later() -> float:  # every summary at a new time (one analysis round may share one)
        clock[0] += 0.001
        return clock[0]

    def merge_build() -> object:
        i = step[0] = step[0] + 1
        book = books[i % 7]
        price = f"{30000 - (7 * (i % 3) + i % 7) * 0.5:.1f}"  # one of the venue's top-3 bids
        book.apply(BookUpdate("BTCUSDT", [[price, str(1 + i % 5)]], []), time.monotonic_ns())
        return build_summary(view.merge(20, 60_000), later())

    got = merge_build()
    assert isinstance(got, type(struct)) and len(got.bids) == len(got.asks) == 20

    cases: dict[str, Callable[[], object]] = {
        "build: msgspec Struct (build_summary)": lambda: build_summary(merged, later()),
        "merge + build: one of 7 venues changed (re-read, fold, build_summary)": merge_build,
        "build: pydantic (before issue 17)": lambda: pydantic_build(merged, later()),
        "encode event: Event.to_json (msgspec)": lambda: Event("summary", struct, wall).to_json(),
        "encode event: pydantic model_dump + orjson (before)": lambda: orjson.dumps({"kind": "summary", "ts": wall, "data": pyd.model_dump(mode="json")}),
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    pc = time.perf_counter_ns
    names = list(cases)
    for r in range(repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:
            fn = cases[k]
            gc.collect()
            t0 = pc()
            for _ in range(n):
                fn()
            times[k].append((pc() - t0) / n / 1000)
    out: dict[str, Any] = {k: spread(v) for k, v in times.items()}
    out["build_x_cheaper"] = statistics.median(p / s for p, s in zip(times[names[2]], times[names[0]]))
    out["encode_x_cheaper"] = statistics.median(p / s for p, s in zip(times[names[4]], times[names[3]]))
    return out


def arbitrage_bench(frames: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The arbitrage analyzer on seven venues whose books cross each other (fees 0): one pass
    after every message (incremental: only the changed venue's pairs are looked at, and of those
    only the ones whose tops cross and whose last walk read a changed level are walked level by
    level), and every 10th message a full pass by a fresh analyzer (all 42 ordered pairs looked
    at), whose findings must be the same."""
    from aggcore.builtins.analyzers.arbitrage import ArbitrageAnalyzer, ArbitrageConfig
    from aggcore.config import AggregationConfig

    wl = seven(frames, spacing=6)
    d = Aggcore("apply")
    d.setup(wl)
    (view,) = d.router.views.values()
    cfg = ArbitrageConfig(default_taker_fee=0.0, min_profit_percentage=0.0)
    settings = AggregationConfig()
    arb = ArbitrageAnalyzer(cfg, LastEvent(), settings)
    handlers = [c.on_frame for c in d.connectors]
    clock = time.monotonic_ns
    pc = time.perf_counter_ns
    wall = time.time
    inc: list[int] = []
    full: list[int] = []
    walks_inc = walks_full = deep_inc = deep_full = 0
    found = mismatches = 0
    warm = 200
    for i, (v, f) in enumerate(wl.frames):
        handlers[v](None, f, clock())
        d.router.take_dirty()
        before, deep_before = arb.walks, arb.deep_walks
        a = pc()
        arb.on_update(view, wall())
        b = pc()
        if i >= warm:
            inc.append(b - a)
            walks_inc += arb.walks - before
            deep_inc += arb.deep_walks - deep_before
        if i >= warm and i % 10 == 0:
            fresh = ArbitrageAnalyzer(cfg, LastEvent(), settings)
            a = pc()
            fresh.on_update(view, wall())
            full.append(pc() - a)
            walks_full += fresh.walks
            deep_full += fresh.deep_walks
            now_ns = clock()
            mine, theirs = arb.find(view, now_ns), fresh.find(view, now_ns)
            found += len(theirs)
            mismatches += mine != theirs
    checks = len(full)
    log(f"  arbitrage: {len(inc)} incremental passes, {checks} full passes checked, {mismatches} mismatches")
    return {
        "frames": frames,
        "venues": 7,
        "incremental_us": {"p50": pct(inc, 0.5), "p99": pct(inc, 0.99), "mean": statistics.mean(inc) / 1000},
        "full_us": {"p50": pct(full, 0.5), "p99": pct(full, 0.99), "mean": statistics.mean(full) / 1000},
        "walks_per_incremental_pass": walks_inc / max(1, len(inc)),
        "walks_per_full_pass": walks_full / max(1, checks),
        "deep_walks_per_incremental_pass": deep_inc / max(1, len(inc)),
        "deep_walks_per_full_pass": deep_full / max(1, checks),
        "opportunities_per_pass": found / max(1, checks),
        "checks": checks,
        "correct": mismatches == 0,
    }


# -- memory ---------------------------------------------------------------------------------------------


def memory(snapshot_body: str, n_books: int, with_peers: bool) -> dict[str, dict[str, float]]:
    """Bytes still allocated per book built from a freshly parsed 1000+1000-level snapshot."""
    from aggcore.book import SymbolBook
    from aggcore_plugin_binance.connector import BinanceConnector
    from aggcore_plugin_binance.messages import parse_snapshot

    levels = len(orjson.loads(snapshot_body)["bids"]) + len(orjson.loads(snapshot_body)["asks"])

    def agg() -> Any:
        book = SymbolBook("binance", "BTCUSDT", "BTC/USDT", BinanceConnector.rules, depth=1000)
        book.snapshot_fetched(parse_snapshot("BTCUSDT", orjson.loads(snapshot_body)))
        return book

    builders: dict[str, Callable[[], Any]] = {"aggcore SymbolBook": agg}
    if with_peers:
        from decimal import Decimal

        from ccxt.async_support.base.ws.order_book import OrderBook as CcxtBook
        from cryptofeed.types import OrderBook as CfBook
        from yapic import json as yjson

        def cf() -> Any:
            resp = yjson.loads(snapshot_body, parse_float=Decimal)
            return CfBook("BINANCE", "BTC-USDT", max_depth=0,
                          bids={Decimal(u[0]): Decimal(u[1]) for u in resp["bids"]},
                          asks={Decimal(u[0]): Decimal(u[1]) for u in resp["asks"]})  # fmt: skip

        def cc() -> Any:
            snap = orjson.loads(snapshot_body)
            return CcxtBook({"bids": [[float(p), float(q)] for p, q in snap["bids"]],
                             "asks": [[float(p), float(q)] for p, q in snap["asks"]]})  # fmt: skip

        builders["cryptofeed OrderBook (Decimal)"] = cf
        builders["ccxt.pro OrderBook"] = cc
    out: dict[str, dict[str, float]] = {}
    for name, build in builders.items():
        build()  # warm caches (interned names, type caches) outside the measurement
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        keep = [build() for _ in range(n_books)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_book = (after - before) / n_books
        out[name] = {"bytes_per_book": per_book, "bytes_per_level": per_book / levels, "levels": levels}
        del keep
    return out


# -- running ----------------------------------------------------------------------------------------------


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def close(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(abs(x[0] - y[0]) < 1e-9 and abs(x[1] - y[1]) < 1e-9 for x, y in zip(a, b))


def bench_workload(wl: Workload, designs: list[Design], repeats: int, lat_passes: int, log: Callable[[str], None]) -> dict[str, Any]:
    active = [d for d in designs if d.multi_venue or len(wl.snapshots) == 1]
    floor = active[0]
    times: dict[str, list[float]] = {d.name: [] for d in active}
    ratios: dict[str, dict[str, list[float]]] = {d.name: {} for d in active}
    lats: dict[str, list[list[int]]] = {d.name: [] for d in active}  # one list per latency pass
    extras: dict[str, dict[str, Any]] = {}
    n = len(wl.frames)
    rounds = repeats + lat_passes
    for r in range(rounds):
        timing = r < repeats
        order = active[r % len(active):] + active[: r % len(active)]
        this: dict[str, float] = {}
        for d in order:
            d.setup(wl)
            gc.collect()
            lat: list[int] | None = None
            if not timing:
                lat = []
                lats[d.name].append(lat)
            ns = d.run(wl.frames, lat)
            if timing:
                this[d.name] = ns / n / 1000.0
                times[d.name].append(this[d.name])
            extras[d.name] = d.extra()
        if timing:
            for d in active:
                ratios[d.name].setdefault("floor", []).append(this[d.name] / this[floor.name])
                for p in active:
                    if p.peer:
                        # throughput of d relative to peer p (>1: d is faster)
                        ratios[d.name].setdefault(p.name, []).append(this[p.name] / this[d.name])
        log(f"  {wl.name} round {r + 1}/{rounds} done")
    # correctness: every design's final top-10 against the reference (aggcore, else truth)
    ref: Top = {}
    if wl.truth:
        for v, t in enumerate(wl.truth):
            for sym, tb in t.items():
                ref[f"{v}:{sym}"] = tb
    mismatches: list[str] = []
    agg = next((d for d in active if isinstance(d, Aggcore)), None)
    if not ref and agg is not None:
        ref = agg.top10()
    for d in active:
        if isinstance(d, Floor):
            continue
        got = d.top10()
        for key, (b, a) in ref.items():
            gb, ga = got.get(key, ([], []))
            if not (close(b, gb) and close(a, ga)):
                mismatches.append(f"{d.name}: {key} top-10 differs")
    merged_ok = None
    if agg is not None and wl.truth:
        # the consolidated top-10 (the last summary) against the truth merged across venues
        final = Aggcore("msg")
        final.setup(wl)
        final.run(wl.frames, None)
        m = final.merged()
        tb = sorted((p for t in wl.truth for tb in t.values() for p, _ in tb[0]), reverse=True)[:10]
        ta = sorted(p for t in wl.truth for tb in t.values() for p, _ in tb[1])[:10]
        merged_ok = m is not None and m[0] == tb and m[1] == ta
        if not merged_ok:
            mismatches.append("aggcore: consolidated top-10 differs from the merged truth")
    out: dict[str, Any] = {
        "frames": n,
        "level_updates": wl.level_updates,
        "levels_per_msg": round(wl.levels_per_msg, 2),
        "venues": len(wl.snapshots),
        "symbols": len(wl.symbols()),
        "note": wl.note,
        "correct": not mismatches,
        "merged_top10_ok": merged_ok,
        "mismatches": mismatches,
        "designs": {},
    }
    for d in active:
        us = times[d.name]
        passes = lats[d.name]
        lat = [ns for p in passes for ns in p]
        # every pass replays the same frames through fresh state, so a message does the same work
        # in each: its fastest pass is its own cost, without what the host did meanwhile
        best = [min(ns) for ns in zip(*passes)] if passes else []
        out["designs"][d.name] = {
            "peer": d.peer,
            "us_per_msg": spread(us),
            "upd_per_s": spread([wl.level_updates / (u * n / 1e6) for u in us]),
            "msg_per_s": spread([1e6 / u for u in us]),
            "x_floor": spread(ratios[d.name]["floor"]),
            "throughput_x": {p: spread(v) for p, v in ratios[d.name].items() if p != "floor"},
            "latency_us": {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999),
                           "max": max(lat) / 1000.0 if lat else float("nan"), "samples": len(lat),
                           "best_of_passes": {"passes": len(passes), "p50": pct(best, 0.5), "p99": pct(best, 0.99),
                                              "p999": pct(best, 0.999)}},  # fmt: skip
            **extras.get(d.name, {}),
        }
    return out


def profile(frames: int) -> str:
    """cProfile of aggcore's full hot path (analysis per message) on the synthetic workload."""
    import cProfile
    import io
    import pstats

    wl = synthetic(frames)
    d = Aggcore("msg")
    d.setup(wl)
    prof = cProfile.Profile()
    prof.enable()
    d.run(wl.frames, None)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3,000 frames, 3 repeats, 1 latency pass")
    ap.add_argument("--frames", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--lat-passes", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true", help="aggcore and the floor only (no cryptofeed/ccxt)")
    ap.add_argument("--workloads", default="synthetic,binance-rec,seven")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "hotpath.json"))
    ap.add_argument("--profile", action="store_true", help="print a cProfile of aggcore's full hot path and exit")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.repeats, args.lat_passes = 3_000, 3, 1
    if args.profile:
        print(profile(args.frames))
        return {}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    designs: list[Design] = [Floor()]
    if not args.no_peers:
        designs += [Cryptofeed(False), Cryptofeed(True), Ccxt()]
    designs += [Aggcore("apply"), Aggcore("msg"), Aggcore("every"), Aggcore("top")]
    results: dict[str, Any] = {"meta": meta(args), "workloads": {}, "skipped": {}}
    for name in args.workloads.split(","):
        log(f"building workload {name} ({args.frames} frames)")
        if name == "synthetic":
            wl: Workload | None = synthetic(args.frames)
        elif name == "seven":
            wl = seven(args.frames)
        elif name == "binance-rec":
            wl = binance_recorded(args.frames)
            if wl is None:
                results["skipped"][name] = "BINANCE.ws.1.0 / BINANCE.http.0.0 not found (../shared/recordings absent)"
                log(f"  skipped: {results['skipped'][name]}")
                continue
        else:
            raise SystemExit(f"unknown workload {name}")
        assert wl is not None
        results["workloads"][name] = bench_workload(wl, designs, args.repeats, args.lat_passes, log)
    log("summary build and encode (2x20 levels)")
    results["summary"] = summary_bench(5_000 if args.quick else 50_000, args.repeats)
    log("arbitrage passes, seven crossing venues")
    results["arbitrage"] = arbitrage_bench(args.frames, log)
    log("memory per 1000+1000-level book")
    snap = synthetic(1).snapshots[0]["BTCUSDT"]
    results["memory"] = memory(snap, 5 if args.quick else 20, not args.no_peers)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    log(f"wrote {args.json}")
    return results


def meta(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for pkg in ("aggcore", "cryptofeed", "order-book", "ccxt", "orjson", "yapic.json"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": vers,
        "frames": args.frames,
        "repeats": args.repeats,
        "lat_passes": args.lat_passes,
        "analyze_every": ANALYZE_EVERY,
    }


if __name__ == "__main__":
    main()
