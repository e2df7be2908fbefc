"""The sink interface: where events leave aggcore (stdout, files, webhooks, ...).

A sink is a class with a ``name``, a pydantic ``Config`` (a :class:`SinkConfig` subclass)
and three async methods the runtime drives from the sink's own task. The runtime puts a
bounded buffer in front of every sink (``buffer_size``; policy: drop the oldest event and
count it), so a slow or failing sink never delays books, other sinks or subscribers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .telemetry import Telemetry

__all__ = ["EVENT_KINDS", "Event", "EventKind", "Sink", "SinkConfig"]

EventKind = Literal["summary", "arbitrage", "health", "metrics"]
EVENT_KINDS: tuple[EventKind, ...] = ("summary", "arbitrage", "health", "metrics")


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: ``kind`` and its pydantic ``payload`` (Summary, ArbitrageOpportunity, ...)."""

    kind: EventKind
    payload: BaseModel
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ts": self.ts, "data": self.payload.model_dump(mode="json")}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class SinkConfig(BaseModel):
    """Settings every sink accepts (``sinks.<name>``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS[:2]))  # summary, arbitrage
    buffer_size: int = Field(10_000, ge=1, description="bounded buffer; when full the oldest event is dropped")


class Sink:
    """Base class of sinks. The runtime calls ``open``, then ``write`` with batches, then ``close``."""

    name: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.health_error: str | None = None  # set to say what is wrong; shown in health
        self.dropped_events = 0  # events the sink itself gave up on (counted in metrics and health)
        #: the aggregator's telemetry, set before :meth:`bind` (a sink that serves ``/metrics``,
        #: ``/healthz`` or ``/readyz`` answers them with ``telemetry.route(path)``)
        self.telemetry: Telemetry | None = None

    def wants_metrics(self) -> bool:
        """True when this sink serves the Prometheus metrics (``telemetry.route("/metrics")``)."""
        return False

    async def bind(self) -> None:
        """Take what must fail ``Aggregator.start()`` at once, such as a listening port.

        Called before any task runs; raise :class:`~aggcore.errors.ConfigError` naming the
        setting. Everything else belongs in :meth:`open`.
        """
        return None

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None
