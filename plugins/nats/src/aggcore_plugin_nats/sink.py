"""The ``nats`` sink: consolidated events as JSON on NATS subjects any client can read."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from collections.abc import Sequence

from aggcore.bus import BookMessage
from aggcore.sink import Event, Sink, SinkConfig

from .bus import subject_token
from .config import NatsSinkConfig
from .connection import Link

__all__ = ["NatsSink"]

log = logging.getLogger("aggcore.nats")


class NatsSink(Sink):
    """``sinks.nats``: each event's ``Event.to_json()`` (``{"kind", "ts", "data"}``) on

    - ``<prefix>.summary.<pair>`` and ``<prefix>.arbitrage.<pair>`` (``BTC-USDT``),
    - ``<prefix>.health`` and ``<prefix>.metrics``,
    - ``<prefix>.books.<venue>.<pair>`` (``book`` events).

    Plain NATS publishes (no stream): a reader gets what is published while it listens. While
    the server is away, events are dropped and counted.
    """

    name = "nats"
    Config = NatsSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        assert isinstance(config, NatsSinkConfig)
        self.cfg = config
        self.link = Link(config, "sink nats")
        self.prefix = config.subject_prefix
        self._connecting: asyncio.Task[Any] | None = None

    async def open(self) -> None:
        # connect in the background (nats-py is asyncio): a sink never waits on its server
        self._connecting = asyncio.create_task(self.link.connect())

    def subject(self, event: Event) -> str:
        p = self.prefix
        payload = event.payload
        if event.kind in ("summary", "arbitrage"):
            return f"{p}.{event.kind}.{subject_token(str(getattr(payload, 'symbol', 'unknown')))}"
        if event.kind == "book" and isinstance(payload, BookMessage):
            return f"{p}.books.{subject_token(payload.venue)}.{subject_token(payload.pair)}"
        return f"{p}.{event.kind}"

    async def write(self, events: Sequence[Event]) -> None:
        nc = self.link.nc
        if nc is None or not self.link.connected:
            self.dropped_events += len(events)
            self.health_error = f"not connected to NATS: {self.link.last_error or 'connecting'}"
            return
        self.health_error = None
        for event in events:
            await nc.publish(self.subject(event), event.to_json())

    async def close(self) -> None:
        task = self._connecting
        if task is not None and not task.done():
            task.cancel()
        nc = self.link.nc
        if nc is not None and self.link.connected:
            try:
                await nc.flush(timeout=1)
            except Exception as exc:
                log.debug("sink nats: flush at close: %s", exc)
        await self.link.close()
