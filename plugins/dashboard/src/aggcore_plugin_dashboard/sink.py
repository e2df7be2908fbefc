"""The ``dashboard`` sink: a live web page of the consolidated books, venue health and arbitrage.

It is a sink like any other: the runtime hands it events through its bounded buffer, it folds
them into a small state (:class:`~aggcore_plugin_dashboard.state.DashboardState`), and every
open page gets what changed over Server-Sent Events. Nothing it does can slow the books.

Read-only and meant for a trusted network: it binds 127.0.0.1 by default, has no
authentication unless ``token`` is set, changes nothing and shows no secret.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Sequence

from pydantic import Field, SecretStr

from aggcore.errors import ConfigError
from aggcore.sink import Event, EventKind, Sink, SinkConfig

from .server import DashboardServer
from .state import DashboardState

__all__ = ["DashboardConfig", "DashboardSink"]

log = logging.getLogger("aggcore.sink.dashboard")


def _dashboard_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health", "metrics"]


class DashboardConfig(SinkConfig):
    """``sinks.dashboard``."""

    events: list[EventKind] = Field(default_factory=_dashboard_events, description="event kinds the page shows")
    host: str = Field("127.0.0.1", description="bind address; the page is not meant to face the internet")
    port: int = Field(8050, ge=0, le=65535, description="TCP port (0: any free port)")
    token: SecretStr | None = Field(
        None, description="when set, the data routes (/events, /state, /metrics, /readyz) need ?token=... or 'Authorization: Bearer ...'"
    )
    metrics: bool = Field(True, description="also serve /metrics, /healthz and /readyz on this port")
    depth: int = Field(10, ge=1, le=100, description="ladder levels per side")
    history_s: float = Field(300.0, gt=0, le=3600, description="seconds of mid/spread history in the chart")
    feed_size: int = Field(200, ge=1, le=10_000, description="arbitrage events and log lines kept")
    push_interval_ms: float = Field(250.0, ge=10, description="a page gets at most one update per interval (conflated)")
    max_clients: int = Field(100, ge=1, description="open pages at most; more get 503")
    send_timeout_s: float = Field(10.0, gt=0, description="a page that reads nothing for this long is dropped")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class DashboardSink(Sink):
    """Serves the dashboard page and streams the state to it."""

    name = "dashboard"
    Config = DashboardConfig

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, DashboardConfig) else DashboardConfig.model_validate(config.model_dump())
        self.state = DashboardState(depth=self.cfg.depth, history_s=self.cfg.history_s, feed_size=self.cfg.feed_size)
        self.server: DashboardServer | None = None
        self.port: int | None = None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    def wants_metrics(self) -> bool:
        return self.cfg.metrics

    @property
    def url(self) -> str:
        host = self.cfg.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    async def bind(self) -> None:
        """Take the port now, so a port in use fails ``aggcore run`` at start, naming host:port."""
        if self._sock is not None:
            return
        host, port = self.cfg.host, self.cfg.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ConfigError(f"sinks.dashboard.host: cannot resolve {host!r}: {exc.strerror}") from exc
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"sinks.dashboard: cannot listen on {host}:{port}: {why}") from exc
        sock.setblocking(False)
        self._sock = sock
        self.port = int(sock.getsockname()[1])

    async def open(self) -> None:
        await self.bind()
        assert self._sock is not None
        token = self.cfg.token.get_secret_value() if self.cfg.token is not None else None
        self.server = DashboardServer(
            self.state,
            token=token,
            telemetry=self.telemetry,
            serve_metrics=self.cfg.metrics,
            max_clients=self.cfg.max_clients,
            push_interval_s=self.cfg.push_interval_ms / 1000,
            send_timeout_s=self.cfg.send_timeout_s,
        )
        self._task = asyncio.get_running_loop().create_task(self.server.serve(self._sock), name="aggcore-dashboard")
        log.info("dashboard on %s%s", self.url, " (token required)" if token else "")
        if token is None and not _loopback(self.cfg.host):
            log.warning(
                "dashboard: %s is not a loopback address and no token is set: anyone who reaches this port sees "
                "the dashboard (it is not meant to face the internet; set sinks.dashboard.token)",
                self.cfg.host,
            )

    async def write(self, events: Sequence[Event]) -> None:
        self.state.apply(events)

    async def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 3.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception as exc:  # noqa: BLE001 - a server error at shutdown is only logged
                log.warning("dashboard: server stopped with %s: %s", type(exc).__name__, exc)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
