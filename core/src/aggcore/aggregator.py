"""The :class:`Aggregator`: the library API, and the supervisor of every task.

Tasks (one anyio task group)::

    connector[binance] ─┐  frame -> parse -> SymbolBook -> view.mark_dirty   (hot path, per connection)
    connector[kraken]  ─┤
    ...                 ┘
    analysis   dirty views -> analyzers (summary, arbitrage) -> Hub.publish   (<= every analyze_interval_ms)
    ticker     analyzers.on_tick, venues ageing out of the view               (every 100 ms)
    health     HealthStatus + Metrics -> Hub.publish("health"/"metrics")       (every health_check_interval_ms)
    sink[name] bounded buffer -> sink.write(batch)                             (one task per sink)
    telemetry  /metrics /healthz /readyz                                       (when prometheus is enabled)
    books      changed books -> BookMessage ("book" events; the bus in a feed)  (every book_interval_ms, when wanted)
    bus        feed: BookMessages + heartbeats -> bus; consolidate: bus -> RemoteBooks -> views

Roles (``role=``, ``aggcore run --role``): ``None`` runs everything in this process;
``"feed"`` runs the connectors and publishes their books to the bus (no analyzers, no sinks);
``"consolidate"`` runs no connectors: it takes the books from the bus (see :mod:`aggcore.bus`).

A connector that crashes (a plugin bug) is logged, shown in its health, and restarted after a
pause; the other exchanges, sinks and subscribers go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from anyio.abc import TaskGroup

from .analyzer import Analyzer
from .clock import SYSTEM_CLOCK, Clock
from .book import SymbolBook
from .bus import BookMessage, Bus, FeedOutbox, RemoteBooks, Role
from .connector import Connector, WsOpener
from .consolidated import ConsolidatedView, Router
from .errors import ConfigError, UnknownPairError
from .fanout import Hub, SinkRunner, Subscription
from .models import ArbitrageOpportunity, BookState, HealthStatus, Metrics, Summary, SymbolHealth, TradingPair
from .sink import Event, Sink

if TYPE_CHECKING:
    from .config import AppConfig
    from .plugins import PluginRegistry
    from .telemetry import Telemetry
    from .runtime import Simulation

__all__ = ["Aggregator"]

log = logging.getLogger("aggcore")


def _wall(mono_ns: int, now_mono: int, now_wall: float) -> datetime:
    return datetime.fromtimestamp(now_wall - (now_mono - mono_ns) / 1e9, timezone.utc)


class Aggregator:
    """Consolidated order books from every configured exchange.

    ``config`` is an :class:`~aggcore.config.AppConfig`, a mapping of the same shape, or the
    path of a YAML/JSON file. Use ``async with Aggregator(config) as agg:`` (or ``await
    agg.start()`` / ``await agg.stop()`` from one task).

    ``simulate=True`` runs offline, like ``aggcore run --simulate``: ``start()`` first starts
    every configured exchange plugin's fake exchange on 127.0.0.1, quoting one simulated market
    (see :class:`~aggcore.runtime.Simulation`), and points the connectors at them; ``stop()``
    stops them. It needs the exchange plugins installed (each ships its fake), no network.
    """

    def __init__(
        self,
        config: "AppConfig | Mapping[str, Any] | str | Path",
        *,
        registry: "PluginRegistry | None" = None,
        http: httpx.AsyncClient | None = None,
        ws_connect: WsOpener | None = None,
        sinks: list[Sink] | None = None,
        role: Role | None = None,
        clock: Clock | None = None,
        connector_io: "Callable[[str], tuple[httpx.AsyncClient | None, WsOpener | None]] | None" = None,
        simulate: bool = False,
    ) -> None:
        from .config import AppConfig, load_config
        from .plugins import load_plugins

        self.registry = registry if registry is not None else load_plugins()
        self.config: AppConfig = config if isinstance(config, AppConfig) else load_config(config, registry=self.registry)
        agg = self.config.aggregation
        #: the clock everything reads time from (the system clock live, a recorded one in replay)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._connector_io = connector_io
        self.router = Router(agg.quote_groups, clock=self.clock)
        self.hub = Hub()
        self._http = http
        self._ws_connect = ws_connect
        self.connectors: dict[str, Connector] = {}
        self.analyzers: list[Analyzer] = []
        self._extra_sinks = list(sinks or [])
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._wake = anyio.Event()
        self._books_asked = anyio.Event()
        self.telemetry: Telemetry | None = None
        self.metrics_port: int | None = None
        self._health: dict[str, HealthStatus] = {}
        self._prev_counts: dict[tuple[str, str], tuple[int, float]] = {}
        self._rates: dict[tuple[str, str], float] = {}
        self._latency_ms: dict[tuple[str, str], float] = {}
        self._lag_sampled: dict[SymbolBook, int] = {}  # book -> the update its latency was last sampled at
        self._crashes: dict[str, str] = {}
        self.started = False
        self._started_at: float | None = None  # clock time of start()
        self.simulate = simulate
        self._simulation: Simulation | None = None
        self.role: Role | None = role
        self.bus: Bus | None = None
        self.remote: RemoteBooks | None = None
        self.outbox = FeedOutbox(agg.book_levels)
        self.outbox.on_message = self._publish_book
        self._book_sinks = False
        if role is not None:
            if role not in ("feed", "consolidate"):
                raise ConfigError(f"unknown role {role!r}: expected feed or consolidate")
            bus = self.config.bus
            if bus is None:
                raise ConfigError(f"--role {role} needs a 'bus' section in the configuration (e.g. bus: {{nats: {{servers: [...]}}}})")
            bus_cls = self.registry.buses.get(bus.name)
            if bus_cls is None:
                raise ConfigError(f"bus.{bus.name}: no bus plugin named {bus.name!r} is installed")
            self.bus = bus_cls(bus.settings, bus)
            if role == "consolidate":
                pairs = [str(TradingPair.parse(p)) + (":" + p.split(":", 1)[1].upper() if ":" in p else "") for p in bus.pairs or []]
                self.remote = RemoteBooks(self.router.attach, silent_after_ms=bus.silent_after_ms, pairs=pairs or None)
        self._build()

    # -- construction ------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        for name, section in cfg.exchanges.items():
            if not section.enabled or self.role == "consolidate":
                continue
            cls = self.registry.connectors.get(name)
            if cls is None:  # load_config already rejects this; kept for hand-built AppConfig
                raise ConfigError(f"exchanges.{name}: no connector plugin named {name!r} is installed")
            self.connectors[name] = self._make_connector(name, cls, section)
        analyzer_sections = dict(cfg.analyzers) if cfg.analyzers else {}
        if not analyzer_sections:
            for name in ("summary", "arbitrage"):
                acls = self.registry.analyzers.get(name)
                if acls is not None:
                    analyzer_sections[name] = acls.Config()
        if self.role == "feed":
            if any(s.enabled for s in cfg.sinks.values()) or self._extra_sinks:
                log.info("role feed: analyzers and sinks are not run (they run in the consolidators)")
            return
        for name, asection in analyzer_sections.items():
            if not asection.enabled:
                continue
            self.analyzers.append(self.registry.analyzers[name](asection, self.publish, cfg.aggregation))
        for name, ssection in cfg.sinks.items():
            if ssection.enabled:
                self.hub.sinks.append(SinkRunner(self.registry.sinks[name](ssection)))
        for sink in self._extra_sinks:
            self.hub.sinks.append(SinkRunner(sink))
        self._book_sinks = any("book" in r.kinds for r in self.hub.sinks)

    def _make_connector(self, name: str, cls: type[Connector], section: Any) -> Connector:
        http, opener = self._connector_io(name) if self._connector_io is not None else (None, None)
        return cls(
            section,
            http=http or self._http,
            ws_connect=opener or self._ws_connect,
            listener=self.router,
            on_event=None,
            clock=self.clock,
        )

    async def _start_simulation(self) -> None:
        """``simulate=True``: the fake exchanges first, then connectors pointed at them."""
        from .runtime import Simulation

        sim = Simulation(self.config, self.registry)
        self.config = await sim.__aenter__()
        self._simulation = sim
        for name in list(self.connectors):
            self.connectors[name] = self._make_connector(name, type(self.connectors[name]), self.config.exchanges[name])

    async def _stop_simulation(self) -> None:
        sim, self._simulation = self._simulation, None
        if sim is not None:
            with anyio.CancelScope(shield=True):
                await sim.__aexit__(None, None, None)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def __aenter__(self) -> "Aggregator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.started:
            return
        if self.simulate and self._simulation is None and self.role != "consolidate":
            await self._start_simulation()
        try:
            await self._start()
        except BaseException:
            await self._stop_simulation()
            raise

    async def _start(self) -> None:
        from .telemetry import Telemetry

        self._started_at = self.clock.time()

        mon = self.config.monitoring
        prom = mon.metrics.enabled and mon.metrics.prometheus.enabled
        sinks = [runner.sink for runner in self.hub.sinks]
        reader = prom or (mon.metrics.enabled and any(sink.wants_metrics() for sink in sinks))
        self.telemetry = Telemetry(self, prometheus=reader)
        listener = None
        if prom:  # bind before anything runs, so a taken port fails start() cleanly
            p = mon.metrics.prometheus
            listener = await self.telemetry.listen(p.host, p.port)
            self.metrics_port = self.telemetry.port
        bound: list[Sink] = []
        try:  # likewise a sink's port (the dashboard's)
            for sink in sinks:
                sink.telemetry = self.telemetry
                await sink.bind()
                bound.append(sink)
        except BaseException:
            if listener is not None:
                await listener.aclose()
            for sink in bound:
                await sink.close()
            raise
        self._stack = AsyncExitStack()
        if self._http is None:
            self._http = await self._stack.enter_async_context(httpx.AsyncClient())
            for c in self.connectors.values():
                if c._own_http:  # not one given to this connector alone (recording, replay)
                    c.http = self._http
                    c._own_http = False
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self.router.on_dirty = self._wake.set
        for runner in self.hub.sinks:
            self._tg.start_soon(runner.run)
        for connector in self.connectors.values():
            self._tg.start_soon(self._supervise, connector)
        self._tg.start_soon(self._analysis)
        self._tg.start_soon(self._ticker)
        self._tg.start_soon(self._health_loop)
        self._tg.start_soon(self._book_loop)
        if self.bus is not None:
            self._tg.start_soon(self._supervise_bus, self.bus)
            if self.role == "feed":
                self._tg.start_soon(self._heartbeat_loop)
        if listener is not None:
            self._tg.start_soon(self.telemetry.serve, listener)
        self.started = True

    async def stop(self, flush_deadline_s: float = 5.0) -> None:
        """Stop reading, flush sinks within ``flush_deadline_s``, close everything."""
        if not self.started or self._stack is None or self._tg is None:
            await self._stop_simulation()
            return
        self.started = False
        tg = self._tg
        # publish a last health snapshot, then drain the sinks (shielded: we may be stopping
        # because of a cancellation), then cancel every task
        with anyio.CancelScope(shield=True):
            self._publish_health()
            self.hub.seal()  # the last health snapshot is the last event the sinks get
            await self._shutdown_sinks(flush_deadline_s)
        tg.cancel_scope.cancel()
        try:
            await self._stack.aclose()
        finally:
            self._account_sinks()
            self.hub.close()
            if self.telemetry is not None:
                self.telemetry.shutdown()
            self._tg = None
            self._stack = None
            await self._stop_simulation()

    async def _shutdown_sinks(self, deadline_s: float) -> None:
        """Flush then close every sink, all sinks at once, all within one deadline: a stuck
        sink costs at most the deadline and never holds up the others."""

        async def shutdown(runner: SinkRunner) -> None:
            if not await runner.flush(deadline_s):
                log.warning("sink %s: not flushed in time; %d events still buffered", runner.name, len(runner.buffer))
            if runner.opened:
                try:
                    await runner.sink.close()
                except Exception as exc:
                    log.warning("sink %s: close failed: %s", runner.name, exc)

        with anyio.move_on_after(deadline_s) as scope:
            async with anyio.create_task_group() as tg:
                for runner in self.hub.sinks:
                    tg.start_soon(shutdown, runner)
        if scope.cancelled_caught:
            log.warning("sinks not flushed and closed within %.1fs", deadline_s)

    def _account_sinks(self) -> None:
        """Every sink's events are delivered or counted: what the shutdown cut is counted now."""
        for runner in self.hub.sinks:
            cut = runner.finish()
            if cut:
                log.warning("sink %s: %d events cut by the shutdown deadline (counted as dropped)", runner.name, cut)
            level = logging.WARNING if runner.total_dropped else logging.INFO
            log.log(level, "sink %s: %s", runner.name, runner.accounting())

    async def run_forever(self) -> None:
        async with self:
            await anyio.sleep_forever()

    # -- tasks -----------------------------------------------------------------------------------------------------
    async def _supervise(self, connector: Connector) -> None:
        delay = 1.0
        while True:
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(connector.run)
                    for book in connector.books.values():
                        self.router.attach(book)
                    self._wake.set()
                    self._crashes.pop(connector.name, None)
            except Exception as exc:  # a plugin bug: contain it to this exchange
                self._crashes[connector.name] = f"connector crashed: {type(exc).__name__}: {exc}"
                log.exception("%s: connector crashed; restarting in %.0fs", connector.name, delay)
                for book in connector.books.values():
                    book.state = BookState.RESYNCING
                    book.error = self._crashes[connector.name]
                    if book.listener is not None:
                        book.listener.book_state_changed(book)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _supervise_bus(self, bus: Bus) -> None:
        delay = 1.0
        while True:
            try:
                if self.role == "feed":
                    await bus.run_feed(self.outbox)
                else:
                    assert self.remote is not None
                    await bus.run_consolidate(self.remote)
                return
            except Exception as exc:  # a plugin bug or a lasting server error: contain it, retry
                bus.connected = False
                bus.last_error = f"bus crashed: {type(exc).__name__}: {exc}"
                log.exception("bus %s: %s; restarting in %.0fs", bus.name, bus.last_error, delay)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 30.0)

    def all_books(self) -> list[SymbolBook]:
        """Every book of this process: its connectors' and, in a consolidator, the remote ones."""
        books = [b for c in self.connectors.values() for b in c.books.values()]
        if self.remote is not None:
            books.extend(r.book for r in self.remote.books.values())
        return books

    def _books_wanted(self) -> bool:
        return self.role == "feed" or self._book_sinks or bool(self.hub.subscriptions.get("book"))

    def _publish_book(self, msg: BookMessage) -> None:
        if self._book_sinks or self.hub.subscriptions.get("book"):
            self.hub.publish(Event("book", msg, self.clock.time()))

    async def _book_loop(self) -> None:
        """Per-venue book messages, conflated per book: at most one per book per interval.
        While nobody wants them (no feed role, no ``book`` sink or subscriber) it does not tick:
        :meth:`subscribe_books` wakes it (and it looks again every second)."""
        interval = self.config.aggregation.book_interval_ms / 1000
        while True:
            if not self._books_wanted():
                self._books_asked = anyio.Event()
                with anyio.move_on_after(1.0):
                    await self._books_asked.wait()
                continue
            await self.clock.sleep(interval)
            if self._books_wanted():
                self.outbox.scan(self.all_books())

    async def _heartbeat_loop(self) -> None:
        assert self.config.bus is not None
        interval_ms = self.config.bus.heartbeat_ms
        while True:
            self.outbox.beat((b for c in self.connectors.values() for b in c.books.values()), interval_ms)
            await self.clock.sleep(interval_ms / 1000)

    async def _analysis(self) -> None:
        interval = self.config.aggregation.analyze_interval_ms / 1000
        last = 0.0
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            self.router.on_dirty = self._wake.set
            wait = last + interval - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
            last = self.clock.monotonic()
            self._analyse(self.router.take_dirty())

    def _analyse(self, views: list[ConsolidatedView]) -> None:
        if not views:
            return
        now = self.clock.time()
        now_ns = self.clock.monotonic_ns()
        telemetry = self.telemetry
        if telemetry is not None and not telemetry.recording:
            telemetry = None  # no reader: a histogram nobody reads is not recorded
        sampled = self._lag_sampled
        for view in views:
            for analyzer in self.analyzers:
                try:
                    analyzer.on_update(view, now)
                except Exception:
                    log.exception("analyzer %s failed on %s", analyzer.name, view.pair)
            if telemetry is not None and view.first_dirty_ns:
                telemetry.summary_latency.record((self.clock.monotonic_ns() - view.first_dirty_ns) / 1e9, {"pair": view.pair})
            # exchange time -> receipt, sampled once per update a book received since the last
            # analysis of its view (a book that did not change would repeat its last sample)
            for book in view.venues.values():
                ts = book.last_exchange_ts
                updated = book.last_update_ns
                if ts is None or not updated or sampled.get(book) == updated:
                    continue
                sampled[book] = updated
                lag = now - (now_ns - updated) / 1e9 - ts
                key = (book.exchange, book.pair)
                prev = self._latency_ms.get(key)
                self._latency_ms[key] = lag * 1000 if prev is None else prev * 0.9 + lag * 100
                if telemetry is not None and lag >= 0:
                    telemetry.exchange_latency.record(lag, {"exchange": book.exchange})

    async def _ticker(self) -> None:
        max_age = self.config.aggregation.max_age_ms
        used: dict[str, frozenset[str]] = {}
        while True:
            await self.clock.sleep(0.1)
            now = self.clock.time()
            now_ns = self.clock.monotonic_ns()
            limit = max_age * 1e6
            for pair, view in self.router.views.items():
                fresh = frozenset(
                    n for n, b in view.venues.items()
                    if b.state is BookState.LIVE and b.last_update_ns and now_ns - b.seen_ns() <= limit
                )  # fmt: skip
                if used.get(pair) != fresh:
                    used[pair] = fresh
                    view.touch()
            if self.remote is not None:
                for venue in self.remote.check_silent():
                    log.warning("bus: the %s feed is silent; its books are left out", venue)
            for analyzer in self.analyzers:
                try:
                    analyzer.on_tick(self.router.views, now)
                except Exception:
                    log.exception("analyzer %s failed on tick", analyzer.name)

    async def _health_loop(self) -> None:
        interval = self.config.monitoring.health_check_interval_ms / 1000
        while True:
            await self.clock.sleep(interval)
            self._publish_health()

    def publish(self, event: Event) -> None:
        """Publish an analyzer's event to subscribers and sinks (and count arbitrage for metrics)."""
        if event.kind == "arbitrage" and self.telemetry is not None:
            self.telemetry.on_arbitrage(event.payload)  # type: ignore[arg-type]
        self.hub.publish(event)

    def _publish_health(self) -> None:
        statuses = self.get_all_health_statuses()
        now = self.clock.time()
        for status in statuses.values():
            self.hub.publish(Event("health", status, now))
        for m in self.get_all_metrics():
            self.hub.publish(Event("metrics", m, now))

    # -- subscriptions -----------------------------------------------------------------------------------------------
    def subscribe_summaries(self, pair: str | None = None, *, maxsize: int = 1000) -> Subscription[Summary]:
        """Summaries as they change. Policy: conflate to the latest per pair (a slow reader
        skips intermediate states, never sees stale ones); replaced summaries are counted."""
        accept = None
        if pair is not None:
            key = self._checked_pair(pair)
            accept = lambda s: s.symbol == key  # noqa: E731
        sub: Subscription[Summary] = Subscription(
            "summary", maxsize=maxsize, policy="conflate", key=lambda s: s.symbol, accept=accept
        )
        return self.hub.subscribe(sub)

    def subscribe_arbitrage(self, *, maxsize: int = 1000) -> Subscription[ArbitrageOpportunity]:
        """Arbitrage events (opened/updated/closed). Policy: drop the oldest when full (counted)."""
        return self.hub.subscribe(Subscription("arbitrage", maxsize=maxsize, policy="drop_oldest"))

    def subscribe_books(self, *, maxsize: int = 10_000) -> Subscription[BookMessage]:
        """Per-venue book messages (the ``book`` event kind): each changed book's top
        ``aggregation.book_levels`` levels at most every ``aggregation.book_interval_ms``.
        Policy: conflate to the latest per (venue, symbol); replaced messages are counted."""
        sub: Subscription[BookMessage] = Subscription(
            "book", maxsize=maxsize, policy="conflate", key=lambda m: (m.venue, m.symbol)
        )
        self.hub.subscribe(sub)
        self._books_asked.set()  # the book loop waits for a first reader
        return sub

    def subscribe_health(self, *, maxsize: int = 1000) -> Subscription[HealthStatus]:
        """Health statuses every ``health_check_interval_ms``. Policy: drop the oldest when full."""
        return self.hub.subscribe(Subscription("health", maxsize=maxsize, policy="drop_oldest"))

    # -- reading ----------------------------------------------------------------------------------------------------------
    def _view_name(self, pair: str | TradingPair) -> str:
        text = str(pair)
        if "/" not in text:
            for c in self.connectors.values():
                if c.symbols is not None and text in c.symbols:
                    text = c.symbols.pair_of(text)
                    break
        else:
            text = str(TradingPair.parse(text)) + (":" + text.split(":", 1)[1].upper() if ":" in text else "")
        from .consolidated import view_key

        return view_key(text, self.config.aggregation.quote_groups)

    def _configured_views(self) -> tuple[set[str], bool]:
        """The view names of every configured pair, and whether some may be missing (an
        exchange's own spelling before its instrument list has loaded)."""
        from .consolidated import view_key

        names: set[str] = set()
        unsure = False
        for c in self.connectors.values():
            for text in c.config.trading_pairs:
                if "/" in text:
                    try:
                        names.add(self._view_name(text))
                    except ValueError:
                        unsure = True
                elif c.symbols is not None:
                    try:
                        names.add(view_key(c.symbols.resolve(text).pair, self.config.aggregation.quote_groups))
                    except KeyError:
                        pass  # the connector reports it (pair_errors)
                else:
                    unsure = True
        return names, unsure

    def _checked_pair(self, pair: str | TradingPair) -> str:
        """The view name of ``pair``; :class:`UnknownPairError` when no configured exchange
        reads it (a consolidator's pairs come from the bus: not checked)."""
        try:
            name = self._view_name(pair)
        except ValueError as exc:
            raise UnknownPairError(f"{str(pair)!r} is not a pair: {exc}") from exc
        if name in self.router.views or self.remote is not None:
            return name
        configured, unsure = self._configured_views()
        if name in configured or unsure:
            return name
        listing = ", ".join(sorted(configured | set(self.router.views))) or "none"
        raise UnknownPairError(f"pair {str(pair)!r} is not configured: no exchange reads it (configured pairs: {listing})")

    def get_summary(self, pair: str | TradingPair) -> Summary | None:
        """The consolidated summary of ``pair`` now; ``None`` while a configured pair is not
        ready yet (no book set up), :class:`UnknownPairError` for a pair no exchange reads."""
        from .builtins.analyzers.summary import build_summary

        view = self.router.views.get(self._checked_pair(pair))
        if view is None:
            return None
        agg = self.config.aggregation
        return build_summary(view.merge(agg.max_price_levels, agg.max_age_ms), self.clock.time())

    def get_all_summaries(self) -> dict[str, Summary]:
        out = {}
        for pair in list(self.router.views):
            summary = self.get_summary(pair)
            if summary is not None:
                out[pair] = summary
        return out

    def pairs_without_live_venue(self) -> list[str]:
        missing = []
        for pair, view in self.router.views.items():
            if not any(b.state is BookState.LIVE for b in view.venues.values()):
                missing.append(pair)
        for c in self.connectors.values():
            for text in c.pair_errors:
                missing.append(f"{c.name}:{text}")
        if not self.router.views and (self.connectors or self.remote is not None):
            missing.append("(no book set up yet)")
        return sorted(missing)

    def get_all_health_statuses(self) -> dict[str, HealthStatus]:
        """Per exchange (and per sink): healthy or why not, with every symbol's book state."""
        now_ns = self.clock.monotonic_ns()
        now = self.clock.time()
        out: dict[str, HealthStatus] = {}
        for name, c in self.connectors.items():
            symbols: dict[str, SymbolHealth] = {}
            problems: list[str] = []
            last_ns = 0
            for b in c.books.values():
                last_ns = max(last_ns, b.last_update_ns)
                waiting, retry_s = c.healing(b.symbol)
                symbols[b.pair] = SymbolHealth(
                    symbol=b.pair,
                    state=b.state,
                    last_update=_wall(b.last_update_ns, now_ns, now) if b.last_update_ns else None,
                    age_ms=b.age_ms(now_ns),
                    last_sequence=b.last_seq,
                    resyncs=b.resyncs,
                    gaps=b.gaps,
                    checksum_failures=b.checksum_failures,
                    crossed_books=b.crossed_books,
                    invalid_messages=b.invalid_messages,
                    waiting_for=waiting,
                    next_retry_s=retry_s,
                    error_message=b.error if b.state is not BookState.LIVE else None,
                )
                if b.state is not BookState.LIVE:
                    problems.append(
                        f"{b.pair}: {b.state.value}"
                        + (f" ({b.error})" if b.error else "")
                        + (f"; waiting for {waiting}" if waiting else "")
                        + (f" in {retry_s:g}s" if retry_s is not None else "")
                    )
            for text, err in c.pair_errors.items():
                symbols[text] = SymbolHealth(symbol=text, state=BookState.FAILED, error_message=err)
                problems.append(f"{text}: {err}")
            crash = self._crashes.get(name)
            if crash:
                problems.insert(0, crash)
            if not c.connected:
                problems.insert(0, f"not connected: {c.last_error}" if c.last_error else "not connected")
            out[name] = HealthStatus(
                exchange=name,
                is_healthy=not problems and bool(c.books),
                last_update=_wall(last_ns, now_ns, now) if last_ns else None,
                error_message="; ".join(problems) or None,
                connected=c.connected,
                reconnects=c.reconnects,
                resyncs=sum(b.resyncs for b in c.books.values()),
                checksum_failures=sum(b.checksum_failures for b in c.books.values()),
                symbols=symbols,
            )
        if self.remote is not None:
            for venue, books in self.remote.venues().items():
                symbols = {}
                problems = []
                last_ns = 0
                for b in books:
                    last_ns = max(last_ns, b.last_update_ns)
                    symbols[b.pair] = SymbolHealth(
                        symbol=b.pair,
                        state=b.state,
                        last_update=_wall(b.last_update_ns, now_ns, now) if b.last_update_ns else None,
                        age_ms=b.age_ms(now_ns),
                        error_message=b.error if b.state is not BookState.LIVE else None,
                    )
                    if b.state is not BookState.LIVE:
                        problems.append(f"{b.pair}: {b.state.value}" + (f" ({b.error})" if b.error else ""))
                feed_alive = self.remote.venue_alive(venue, now_ns)
                out[venue] = HealthStatus(
                    exchange=venue,
                    is_healthy=not problems and feed_alive,
                    last_update=_wall(last_ns, now_ns, now) if last_ns else None,
                    error_message="; ".join(problems) or None,
                    connected=feed_alive,
                    symbols=symbols,
                )
        if self.bus is not None:
            bus = self.bus
            problems = []
            if not bus.connected:
                problems.append(f"not connected: {bus.last_error}" if bus.last_error else "not connected")
            if self.remote is not None and self.remote.bad_messages:
                problems.append(f"{self.remote.bad_messages} bad messages ignored (last: {self.remote.last_bad})")
            out[f"bus:{bus.name}"] = HealthStatus(
                exchange=f"bus:{bus.name}",
                kind="bus",
                is_healthy=bus.connected,
                last_update=None,
                error_message="; ".join(problems) or None,
                connected=bus.connected,
                reconnects=bus.connection_losses,
            )
        for runner in self.hub.sinks:
            sink_error = runner.health_error
            out[f"sink:{runner.name}"] = HealthStatus(
                exchange=f"sink:{runner.name}",
                kind="sink",
                is_healthy=sink_error is None and runner.total_dropped == 0,
                last_update=datetime.fromtimestamp(runner.last_write, timezone.utc) if runner.last_write else None,
                error_message="; ".join(
                    p for p in (sink_error, _drops_text(runner) if runner.total_dropped else None) if p
                )
                or None,
                # a sink with a connection (BufferedSink) says whether it has one and how often it was lost
                connected=runner.opened and bool(getattr(runner.sink, "connected", True)),
                reconnects=int(getattr(runner.sink, "reconnects", 0)),
                events=runner.counts(),
            )
        self._health = out
        return out

    def get_all_metrics(self) -> list[Metrics]:
        """The specification's Metrics per (exchange, symbol), from the same counters as Prometheus."""
        now_ns = self.clock.monotonic_ns()
        now = self.clock.time()
        out = []
        for b in self.all_books():  # a consolidator's remote books too
            key = (b.exchange, b.pair)
            prev = self._prev_counts.get(key)
            rate = self._rates.get(key, 0.0)
            if prev is None or now - prev[1] >= 0.5:
                if prev is not None:
                    rate = (b.level_updates - prev[0]) / (now - prev[1])
                elif self._started_at is not None and now - self._started_at > 0:
                    rate = b.level_updates / (now - self._started_at)  # the first reading: since start
                self._prev_counts[key] = (b.level_updates, now)
                self._rates[key] = rate
            out.append(
                Metrics(
                    exchange=b.exchange,
                    symbol=b.pair,
                    updates_per_second=round(rate, 3),
                    latency_ms=round(self._latency_ms.get(key, 0.0), 3),
                    error_count=b.gaps + b.checksum_failures + b.crossed_books + b.invalid_messages + (1 if b.state is BookState.FAILED else 0),
                    last_update=_wall(b.last_update_ns, now_ns, now) if b.last_update_ns else None,
                    messages=b.messages,
                    level_updates=b.level_updates,
                    gaps=b.gaps,
                    resyncs=b.resyncs,
                    checksum_failures=b.checksum_failures,
                )
            )
        return out


def _drops_text(runner: SinkRunner) -> str:
    why = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in runner.drop_counts().items() if v)
    return (
        f"{runner.total_dropped} of {runner.produced} events dropped ({why}; buffer {runner.maxsize}); "
        f"{runner.delivered} delivered, {runner.in_flight} in flight"
    )
