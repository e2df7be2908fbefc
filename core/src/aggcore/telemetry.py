"""The one place OpenTelemetry and the Prometheus exporter are set up.

The hot path only bumps plain integer counters on books and connectors; the instruments here
are *observable*: OpenTelemetry reads those counters when Prometheus scrapes. Histograms
(exchange time -> receipt, receipt -> summary) are recorded by the analysis task, off the
hot path. Each :class:`Telemetry` has its own Prometheus registry, so several aggregators
(tests) never collide.

The HTTP endpoint (``monitoring.metrics.prometheus``; 127.0.0.1 by default) serves
``/metrics`` (Prometheus text, or OpenMetrics when the scraper's ``Accept`` asks for
``application/openmetrics-text``), ``/healthz`` (the process is alive) and ``/readyz`` (200 when
every configured pair has at least one LIVE venue, else 503 with the pairs that have none).

Every metric name is listed in :data:`METRIC_NAMES` and documented in the README's metrics table
(a test fails when one disappears from a scrape). Conventions: counters end in ``_total``, every
error counter exists at zero from the first scrape (so ``rate()`` works), and a book's state is
one series per book (``aggcore_book_state{exchange,symbol,state} 1``), not one per state.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import anyio
import orjson
from anyio.abc import SocketStream
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .errors import ConfigError
if TYPE_CHECKING:
    from .aggregator import Aggregator
    from .models import ArbitrageOpportunity

__all__ = ["ERROR_KINDS", "LATENCY_BUCKETS", "METRIC_NAMES", "Telemetry"]

log = logging.getLogger("aggcore.telemetry")

#: seconds; from 10 microseconds to 10 seconds
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: error kinds every exchange reports at zero from the first scrape (others appear when they happen)
ERROR_KINDS = ("exchange", "parsing", "network", "websocket", "timeout", "rate_limit", "maintenance", "checksum")

#: every metric family a scrape exposes (Prometheus names; counters without ``_total``)
METRIC_NAMES = (
    "aggcore_build_info",
    "aggcore_plugin_info",
    "aggcore_exchange_up",
    "aggcore_connections_open",
    "aggcore_frames",
    "aggcore_reconnects",
    "aggcore_errors",
    "aggcore_sink_errors",
    "aggcore_messages",
    "aggcore_level_updates",
    "aggcore_gaps",
    "aggcore_resyncs",
    "aggcore_checksum_failures",
    "aggcore_crossed_books",
    "aggcore_invalid_messages",
    "aggcore_sink_events",
    "aggcore_sink_dropped",
    "aggcore_book_state",
    "aggcore_book_age_seconds",
    "aggcore_best_bid",
    "aggcore_best_ask",
    "aggcore_spread",
    "aggcore_mid",
    "aggcore_venues_used",
    "aggcore_arbitrage_opened",
    "aggcore_arbitrage_closed",
    "aggcore_arbitrage_best_net_profit_percent",
    "aggcore_dropped",
    "aggcore_buffer_depth",
    "aggcore_exchange_latency_seconds",
    "aggcore_summary_latency_seconds",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_open_fds",
)

Samples = Iterable[tuple[float, dict[str, str]]]


_BOOK_COUNTERS = (
    ("messages", "aggcore_messages", "book messages applied"),
    ("level_updates", "aggcore_level_updates", "price-level updates applied"),
    ("gaps", "aggcore_gaps", "sequence gaps detected"),
    ("resyncs", "aggcore_resyncs", "book resyncs (one symbol each)"),
    ("checksum_failures", "aggcore_checksum_failures", "checksum mismatches"),
    ("crossed_books", "aggcore_crossed_books", "crossed books detected"),
    ("invalid_messages", "aggcore_invalid_messages", "messages rejected for an impossible level (resynced)"),
)


class _BookCollector:
    """The per-book series (8 per book: 6 counters, state, age), read straight from the books.

    These are most of a scrape (7 exchanges x 300 books = 16,800 series). Going through
    OpenTelemetry's observable instruments cost about 50 us per series (measurement objects,
    aggregation, exemplars, translation: ~1 s per scrape, blocking the event loop), so the
    Prometheus endpoint reads them directly; ``bench/scrape.py`` measures it.
    """

    def __init__(self, agg: "Aggregator") -> None:
        self.agg = agg

    def describe(self) -> list[Metric]:
        return []  # collected lazily; nothing to check for duplicates at registration

    def collect(self) -> Iterator[Metric]:
        counters = [(attr, CounterMetricFamily(name, doc, labels=("exchange", "symbol"))) for attr, name, doc in _BOOK_COUNTERS]
        state = GaugeMetricFamily(
            "aggcore_book_state", "1, labelled with the state the book is in (one series per book)",
            labels=("exchange", "symbol", "state"),
        )  # fmt: skip
        age = GaugeMetricFamily(
            "aggcore_book_age_seconds", "seconds since the book last changed (absent before its first update)",
            labels=("exchange", "symbol"),
        )  # fmt: skip
        now_ns = time.monotonic_ns()
        for b in self.agg.all_books():  # a consolidator's remote books too
            labels = (b.exchange, b.pair)
            for attr, family in counters:
                family.add_metric(labels, getattr(b, attr))
            state.add_metric((b.exchange, b.pair, b.state.value), 1)
            if b.last_update_ns:
                age.add_metric(labels, (now_ns - b.last_update_ns) / 1e9)
        for _, family in counters:
            yield family
        yield state
        yield age


class Telemetry:
    def __init__(self, agg: "Aggregator", *, prometheus: bool, extra_readers: Iterable[MetricReader] = ()) -> None:
        from . import __version__

        self.agg = agg
        self.registry = CollectorRegistry()
        readers: list[MetricReader] = list(extra_readers)
        if prometheus:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers.append(PrometheusMetricReader(registry=self.registry, scope_info_enabled=False))
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, _resident_memory_bytes, _open_fds
            self.registry.register(_BookCollector(agg))
        views = [
            View(instrument_name="aggcore.*latency*", aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS)),
        ]
        resource = Resource.create({"service.name": "aggcore", "service.version": __version__})
        self.provider = MeterProvider(metric_readers=readers, views=views, resource=resource)
        #: whether any reader collects the instruments (the analysis task records its histograms only then)
        self.recording = bool(readers)
        meter = self.provider.get_meter("aggcore", __version__)
        # arbitrage events, counted by Aggregator.publish (rare: never per book message)
        self.arbitrage_opened: dict[str, int] = {}
        self.arbitrage_closed: dict[str, int] = {}
        self.arbitrage_open: dict[str, dict[tuple[str, str], float]] = {}

        def counter(name: str, desc: str, fn: Callable[[], Samples]) -> None:
            def cb(_: CallbackOptions) -> Iterable[Observation]:
                return [Observation(v, attrs) for v, attrs in fn()]

            meter.create_observable_counter(name, [cb], description=desc)

        def gauge(name: str, desc: str, fn: Callable[[], Samples]) -> None:
            def cb(_: CallbackOptions) -> Iterable[Observation]:
                return [Observation(v, attrs) for v, attrs in fn()]

            meter.create_observable_gauge(name, [cb], description=desc)

        build = {"version": __version__, "python": platform.python_version()}
        gauge("aggcore.build_info", "always 1; labels: aggcore and Python versions", lambda: [(1, build)])

        def plugin_info() -> Samples:
            for info in agg.registry.plugins:
                if info.ok:
                    yield 1, {"plugin": info.name, "distribution": info.distribution or "", "version": info.version or ""}

        gauge("aggcore.plugin_info", "always 1 per loaded plugin; labels: distribution and version", plugin_info)
        gauge(
            "aggcore.exchange_up",
            "1 while the exchange has at least one open WebSocket connection",
            lambda: ((1 if c.connected else 0, {"exchange": c.name}) for c in agg.connectors.values()),
        )
        gauge(
            "aggcore.connections_open",
            "open WebSocket connections",
            lambda: ((len(c.connections), {"exchange": c.name}) for c in agg.connectors.values()),
        )
        counter(
            "aggcore.reconnects",
            "WebSocket reconnects",
            lambda: ((c.reconnects, {"exchange": c.name}) for c in agg.connectors.values()),
        )
        counter(
            "aggcore.frames",
            "WebSocket frames received",
            lambda: ((c.messages, {"exchange": c.name}) for c in agg.connectors.values()),
        )

        def errors() -> Samples:
            for c in agg.connectors.values():
                for kind in ERROR_KINDS:
                    yield c.error_counts.get(kind, 0), {"exchange": c.name, "kind": kind}
                for kind, n in c.error_counts.items():
                    if kind not in ERROR_KINDS:
                        yield n, {"exchange": c.name, "kind": kind}

        counter("aggcore.errors", "exchange errors by kind (the usual kinds exist at zero from the start)", errors)

        # the bus (aggcore run --role feed|consolidate): only in such a process
        def bus_counts(attr: str) -> Callable[[], Samples]:
            def read() -> Samples:
                if agg.bus is not None:
                    yield getattr(agg.bus, attr), {"bus": agg.bus.name}

            return read

        def remote_counts(attr: str) -> Callable[[], Samples]:
            def read() -> Samples:
                if agg.remote is not None and agg.bus is not None:
                    yield getattr(agg.remote, attr), {"bus": agg.bus.name}

            return read

        counter("aggcore.bus_connection_losses", "connections to the bus lost (each one counted)", bus_counts("connection_losses"))
        counter("aggcore.bus_published", "book messages and heartbeats a feed published to the bus", bus_counts("published"))
        counter("aggcore.bus_received", "book messages a consolidator received (older and duplicates included)", remote_counts("received"))
        counter("aggcore.bus_bad_messages", "bus messages that could not be used (counted and ignored)", remote_counts("bad_messages"))
        counter(
            "aggcore.sink_errors",
            "sink write errors",
            lambda: ((r.errors, {"sink": r.name}) for r in agg.hub.sinks),
        )

        def drops() -> Samples:
            for r in agg.hub.sinks:
                yield r.total_dropped, {"consumer": f"sink:{r.name}"}
            for kind, subs in agg.hub.subscriptions.items():
                yield sum(s.dropped for s in subs), {"consumer": f"subscriber:{kind}"}

        counter("aggcore.dropped", "events dropped by bounded buffers", drops)

        def sink_events() -> Samples:
            for r in agg.hub.sinks:
                yield r.produced, {"sink": r.name, "outcome": "produced"}
                yield r.delivered, {"sink": r.name, "outcome": "delivered"}

        counter("aggcore.sink_events", "events per sink: produced = delivered + sink_dropped + in flight", sink_events)

        def sink_dropped() -> Samples:
            for r in agg.hub.sinks:
                for reason, n in r.drop_counts().items():
                    yield n, {"sink": r.name, "reason": reason}

        counter("aggcore.sink_dropped", "events a sink lost, by reason (buffer_full, write_error, shutdown, sink)", sink_dropped)

        tops: dict[str, tuple[float | None, float | None, float | None, float | None, int]] = {}

        def top(index: int) -> Callable[[], Samples]:
            def read() -> Samples:
                if index == 0:  # the first of the five instruments read in a collection refreshes them all
                    tops.clear()
                    for pair, s in agg.get_all_summaries().items():
                        tops[pair] = (s.best_bid, s.best_ask, s.spread, s.mid, len(s.venues))
                for pair, values in tops.items():
                    value = values[index]
                    if value is not None:
                        yield float(value), {"pair": pair}

            return read

        gauge("aggcore.best_bid", "best bid of the consolidated book", top(0))
        gauge("aggcore.best_ask", "best ask of the consolidated book", top(1))
        gauge("aggcore.spread", "best ask - best bid of the consolidated book (negative when crossed)", top(2))
        gauge("aggcore.mid", "mid price of the consolidated book", top(3))
        gauge("aggcore.venues_used", "venues in the consolidated book (LIVE and fresh)", top(4))
        counter(
            "aggcore.arbitrage_opened",
            "arbitrage opportunities opened",
            lambda: ((self.arbitrage_opened.get(p, 0), {"pair": p}) for p in agg.router.views),
        )
        counter(
            "aggcore.arbitrage_closed",
            "arbitrage opportunities closed",
            lambda: ((self.arbitrage_closed.get(p, 0), {"pair": p}) for p in agg.router.views),
        )

        def best_profit() -> Samples:
            for pair in agg.router.views:
                legs = self.arbitrage_open.get(pair)
                yield (max(legs.values()) if legs else 0.0), {"pair": pair}

        gauge(
            "aggcore.arbitrage_best_net_profit_percent",
            "net profit (after fees, percent) of the best open opportunity; 0 when none is open",
            best_profit,
        )

        def depth() -> Samples:
            for r in agg.hub.sinks:
                yield len(r.buffer), {"consumer": f"sink:{r.name}"}
            for kind, subs in agg.hub.subscriptions.items():
                yield sum(len(s) for s in subs), {"consumer": f"subscriber:{kind}"}

        gauge("aggcore.buffer_depth", "events waiting in bounded buffers", depth)
        gauge(
            "aggcore.sink_in_flight",
            "events produced for a sink, not yet delivered nor dropped",
            lambda: ((r.in_flight, {"sink": r.name}) for r in agg.hub.sinks),
        )

        self.exchange_latency = meter.create_histogram(
            "aggcore.exchange_latency", unit="s", description="exchange event time -> receipt"
        )
        self.summary_latency = meter.create_histogram(
            "aggcore.summary_latency", unit="s", description="frame receipt -> consolidated view analysed"
        )

    def on_arbitrage(self, opp: "ArbitrageOpportunity") -> None:
        """Count an arbitrage event (opened/updated/closed) for the pair's counters and gauge."""
        legs = self.arbitrage_open.setdefault(opp.symbol, {})
        key = (opp.buy_exchange, opp.sell_exchange)
        if opp.event == "closed":
            self.arbitrage_closed[opp.symbol] = self.arbitrage_closed.get(opp.symbol, 0) + 1
            legs.pop(key, None)
            return
        if opp.event == "opened":
            self.arbitrage_opened[opp.symbol] = self.arbitrage_opened.get(opp.symbol, 0) + 1
        legs[key] = opp.profit_percentage

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:  # pragma: no cover - shutting down twice is harmless
            pass

    def scrape(self, openmetrics: bool = False) -> bytes:
        """The metrics body: Prometheus text format, or OpenMetrics with ``openmetrics=True``."""
        return _encode(list(self.registry.collect()), openmetrics)

    async def scrape_async(self, openmetrics: bool = False) -> bytes:
        """:meth:`scrape` for the event loop: the collection (it reads the books) runs here, the
        text encoding (most of a scrape with thousands of books) in a worker thread, so the
        books are paused only for the collection and the loop keeps running meanwhile."""
        families = list(self.registry.collect())
        return await anyio.to_thread.run_sync(_encode, families, openmetrics)

    # -- HTTP ------------------------------------------------------------------------------------------------
    async def listen(self, host: str, port: int) -> "anyio.abc.Listener[SocketStream]":
        """Bind the HTTP endpoint (port 0: any free port; ``self.port`` tells which)."""
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
        except OSError as exc:
            raise ConfigError(
                f"monitoring.metrics.prometheus: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        log.info("metrics on http://%s:%d/metrics (/healthz, /readyz)", host, self.port)
        return listener

    async def serve(self, listener: "anyio.abc.Listener[SocketStream]") -> None:
        async with listener:
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(5):
                    data = b""
                    while b"\r\n\r\n" not in data and len(data) < 16384:
                        chunk = await stream.receive(4096)
                        if not chunk:
                            return
                        data += chunk
                head_lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                parts = head_lines[0].split()
                path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
                accept = ""
                for header in head_lines[1:]:
                    name, _, value = header.partition(":")
                    if name.strip().lower() == "accept":
                        accept = value
                status, ctype, body = await self.route_async(path, accept)
                head = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                await stream.send(head + body)
            except (anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError, OSError):
                return

    def route(self, path: str, accept: str = "") -> tuple[str, str, bytes]:
        """``(status, content type, body)`` of ``/metrics``, ``/healthz`` or ``/readyz`` (404
        otherwise). On the event loop prefer :meth:`route_async` (``/metrics`` encodes in a
        worker thread)."""
        if path == "/metrics":
            openmetrics = "application/openmetrics-text" in accept
            return "200 OK", _content_type(openmetrics), self.scrape(openmetrics=openmetrics)
        return self._route_other(path)

    async def route_async(self, path: str, accept: str = "") -> tuple[str, str, bytes]:
        """:meth:`route`, with ``/metrics`` from :meth:`scrape_async`."""
        if path == "/metrics":
            openmetrics = "application/openmetrics-text" in accept
            return "200 OK", _content_type(openmetrics), await self.scrape_async(openmetrics=openmetrics)
        return self._route_other(path)

    def _route_other(self, path: str) -> tuple[str, str, bytes]:
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"alive"}'
        if path == "/readyz":
            missing = self.agg.pairs_without_live_venue()
            body = orjson.dumps({"ready": not missing, "pairs_without_live_venue": missing})
            return ("200 OK" if not missing else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"


class _Collected:
    """Metric families collected already, for the encoders (which call ``collect()``)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _encode(families: list[Metric], openmetrics: bool) -> bytes:
    """The text of collected families (reads them only: safe in a worker thread)."""
    collected = _Collected(families)
    if openmetrics:
        body: bytes = generate_openmetrics(collected)  # type: ignore[no-untyped-call]
        return body
    return generate_latest(collected)


def _content_type(openmetrics: bool) -> str:
    return OPENMETRICS_CONTENT_TYPE if openmetrics else "text/plain; version=0.0.4; charset=utf-8"
