"""One NATS connection that reconnects forever and says how it is doing."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import nats
from nats.aio.client import Client

from aggcore.errors import NetworkError

from .config import NatsConnection

__all__ = ["Link"]

log = logging.getLogger("aggcore.nats")


class Link:
    """A NATS client connection: connects (retrying until it works), reconnects by itself
    (nats-py, forever), and counts every loss. ``reconnected`` is set after each reconnect."""

    def __init__(self, config: NatsConnection, what: str) -> None:
        self.config = config
        self.what = what
        self.nc: Client | None = None
        self.connected = False
        self.connection_losses = 0
        self.last_error: str | None = None
        self.reconnects = 0
        self.reconnected = anyio.Event()
        self.slow_consumer_drops = 0

    def _kwargs(self) -> dict[str, Any]:
        c = self.config
        kw: dict[str, Any] = {
            "servers": [s.get_secret_value() for s in c.servers],
            "name": c.name,
            "connect_timeout": c.connect_timeout_s,
            "reconnect_time_wait": c.reconnect_wait_s,
            "max_reconnect_attempts": -1,
            "allow_reconnect": True,
            "ping_interval": 5,
            "max_outstanding_pings": 2,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }
        if c.user is not None:
            kw["user"] = c.user
        if c.password is not None:
            kw["password"] = c.password.get_secret_value()
        if c.token is not None:
            kw["token"] = c.token.get_secret_value()
        if c.creds_file is not None:
            kw["user_credentials"] = str(c.creds_file)
        return kw

    async def connect(self) -> Client:
        """Connect, retrying every ``reconnect_wait_s`` until a server answers."""
        delay = self.config.reconnect_wait_s
        while True:
            try:
                nc = await nats.connect(**self._kwargs())
            except Exception as exc:  # NoServersError, OSError, TimeoutError, auth errors, ...
                detail = str(exc)
                for url in self.config.servers:
                    detail = url.scrub(detail)
                err = NetworkError(f"{self.what}: cannot connect to NATS ({self.config.shown_servers()}): {type(exc).__name__}: {detail}")
                if self.last_error != str(err):
                    log.warning("%s; retrying every %.1fs", err, delay)
                self.last_error = str(err)
                await anyio.sleep(delay)
                continue
            self.nc = nc
            self.connected = True
            self.last_error = None
            log.info("%s: connected to NATS %s", self.what, redact_url(nc))
            return nc

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        self.connected = False
        if nc is not None and not nc.is_closed:
            with anyio.move_on_after(2, shield=True):
                try:
                    await nc.close()
                except Exception as exc:  # closing a broken connection
                    log.debug("%s: close: %s", self.what, exc)

    async def _on_error(self, exc: Exception) -> None:
        name = type(exc).__name__
        if name == "SlowConsumerError":
            self.slow_consumer_drops += 1
        self.last_error = f"{name}: {exc}"

    async def _on_disconnected(self) -> None:
        if self.connected:
            self.connection_losses += 1
            log.warning("%s: NATS connection lost (%d so far); reconnecting", self.what, self.connection_losses)
        self.connected = False
        if self.last_error is None:
            self.last_error = "connection lost; reconnecting"

    async def _on_reconnected(self) -> None:
        self.connected = True
        self.reconnects += 1
        self.last_error = None
        log.info("%s: NATS reconnected", self.what)
        self.reconnected.set()

    async def _on_closed(self) -> None:
        self.connected = False


def redact_url(nc: Client) -> str:
    url = getattr(nc, "connected_url", None)
    if url is None:
        return "?"
    host = getattr(url, "hostname", None) or "?"
    port = getattr(url, "port", None)
    return f"{getattr(url, 'scheme', 'nats')}://{host}" + (f":{port}" if port else "")
