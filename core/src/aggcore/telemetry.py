"""The one place OpenTelemetry and the Prometheus exporter are set up.

The hot path only bumps plain integer counters on books and connectors; the instruments here
are *observable*: OpenTelemetry reads those counters when Prometheus scrapes. Histograms
(exchange time -> receipt, receipt -> summary) are recorded by the analysis task, off the
hot path. Each :class:`Telemetry` has its own Prometheus registry, so several aggregators
(tests) never collide.

The HTTP endpoint (``monitoring.metrics.prometheus``; 127.0.0.1 by default) serves
``/metrics``, ``/healthz`` (the process is alive) and ``/readyz`` (200 when every configured
pair has at least one LIVE venue, else 503 with the pairs that have none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import anyio
import orjson
from anyio.abc import SocketStream
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import CollectorRegistry, generate_latest

from .errors import ConfigError
from .models import BookState

if TYPE_CHECKING:
    from .aggregator import Aggregator

__all__ = ["LATENCY_BUCKETS", "Telemetry"]

log = logging.getLogger("aggcore.telemetry")

#: seconds; from 10 microseconds to 10 seconds
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_STATES = [s.value for s in BookState]


class Telemetry:
    def __init__(self, agg: "Aggregator", *, prometheus: bool, extra_readers: Iterable[MetricReader] = ()) -> None:
        self.agg = agg
        self.registry = CollectorRegistry()
        readers: list[MetricReader] = list(extra_readers)
        if prometheus:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers.append(PrometheusMetricReader(registry=self.registry, scope_info_enabled=False))
        views = [
            View(instrument_name="aggcore.*latency*", aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS)),
        ]
        self.provider = MeterProvider(metric_readers=readers, views=views)
        meter = self.provider.get_meter("aggcore")

        def counter(name: str, desc: str, fn: Callable[[], Iterable[tuple[float, dict[str, str]]]]) -> None:
            def cb(_: CallbackOptions) -> Iterable[Observation]:
                return [Observation(v, attrs) for v, attrs in fn()]

            meter.create_observable_counter(name, [cb], description=desc)

        def gauge(name: str, desc: str, fn: Callable[[], Iterable[tuple[float, dict[str, str]]]]) -> None:
            def cb(_: CallbackOptions) -> Iterable[Observation]:
                return [Observation(v, attrs) for v, attrs in fn()]

            meter.create_observable_gauge(name, [cb], description=desc)

        def per_book(attr: str) -> Callable[[], Iterable[tuple[float, dict[str, str]]]]:
            def read() -> Iterable[tuple[float, dict[str, str]]]:
                for c in agg.connectors.values():
                    for b in c.books.values():
                        yield getattr(b, attr), {"exchange": c.name, "symbol": b.pair}

            return read

        counter("aggcore.messages", "book messages applied", per_book("messages"))
        counter("aggcore.level_updates", "price-level updates applied", per_book("level_updates"))
        counter("aggcore.gaps", "sequence gaps detected", per_book("gaps"))
        counter("aggcore.resyncs", "book resyncs (one symbol each)", per_book("resyncs"))
        counter("aggcore.checksum_failures", "checksum mismatches", per_book("checksum_failures"))
        counter("aggcore.crossed_books", "crossed books detected", per_book("crossed_books"))
        counter(
            "aggcore.invalid_messages", "messages rejected for an impossible level (resynced)", per_book("invalid_messages")
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

        def errors() -> Iterable[tuple[float, dict[str, str]]]:
            for c in agg.connectors.values():
                for kind, n in c.error_counts.items():
                    yield n, {"exchange": c.name, "kind": kind}
            for r in agg.hub.sinks:
                yield r.errors, {"sink": r.name, "kind": "sink"}

        counter("aggcore.errors", "errors by kind", errors)

        def drops() -> Iterable[tuple[float, dict[str, str]]]:
            for r in agg.hub.sinks:
                yield r.total_dropped, {"consumer": f"sink:{r.name}"}
            for kind, subs in agg.hub.subscriptions.items():
                yield sum(s.dropped for s in subs), {"consumer": f"subscriber:{kind}"}

        counter("aggcore.dropped", "events dropped by bounded buffers", drops)

        def sink_events() -> Iterable[tuple[float, dict[str, str]]]:
            for r in agg.hub.sinks:
                yield r.produced, {"sink": r.name, "outcome": "produced"}
                yield r.delivered, {"sink": r.name, "outcome": "delivered"}

        counter("aggcore.sink_events", "events per sink: produced = delivered + sink_dropped + in flight", sink_events)

        def sink_dropped() -> Iterable[tuple[float, dict[str, str]]]:
            for r in agg.hub.sinks:
                for reason, n in r.drop_counts().items():
                    yield n, {"sink": r.name, "reason": reason}

        counter("aggcore.sink_dropped", "events a sink lost, by reason (buffer_full, write_error, shutdown, sink)", sink_dropped)

        def states() -> Iterable[tuple[float, dict[str, str]]]:
            for c in agg.connectors.values():
                for b in c.books.values():
                    for s in _STATES:
                        yield (1 if b.state.value == s else 0), {"exchange": c.name, "symbol": b.pair, "state": s}

        gauge("aggcore.book_state", "1 for the state each book is in", states)

        def depth() -> Iterable[tuple[float, dict[str, str]]]:
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

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:  # pragma: no cover - shutting down twice is harmless
            pass

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

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
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split()
                path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
                status, ctype, body = self.route(path)
                head = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                await stream.send(head + body)
            except (anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError, OSError):
                return

    def route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4; charset=utf-8", self.scrape()
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"alive"}'
        if path == "/readyz":
            missing = self.agg.pairs_without_live_venue()
            body = orjson.dumps({"ready": not missing, "pairs_without_live_venue": missing})
            return ("200 OK" if not missing else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"
