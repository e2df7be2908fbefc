"""The sink interface: where events leave aggcore (stdout, files, webhooks, ...).

A sink is a class with a ``name``, a pydantic ``Config`` (a :class:`SinkConfig` subclass)
and three async methods the runtime drives from the sink's own task. The runtime puts a
bounded buffer in front of every sink (``buffer_size``; policy: drop the oldest event and
count it), so a slow or failing sink never delays books, other sinks or subscribers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .telemetry import Telemetry

__all__ = ["EVENT_KINDS", "Event", "EventKind", "Sink", "SinkConfig"]

EventKind = Literal["summary", "arbitrage", "health", "metrics", "book"]
EVENT_KINDS: tuple[EventKind, ...] = ("summary", "arbitrage", "health", "metrics", "book")


_ENCODER = msgspec.json.Encoder()


class Event(msgspec.Struct, frozen=True):
    """One published event: ``kind``, its ``payload`` and ``ts`` (seconds since the epoch).
    Immutable; ``Event(kind, payload, ts)`` (``ts`` defaults to now). A ``msgspec.Struct``: an
    event is built for every summary, and a Struct costs a fifth of a frozen dataclass.

    The payload is a public type (:class:`~aggcore.models.Summary`,
    :class:`~aggcore.models.ArbitrageOpportunity`, ...: ``msgspec.Struct`` classes), or any
    ``msgspec.Struct`` or pydantic model a third-party analyzer emits. Sinks encode events with
    :meth:`to_dict` / :meth:`to_json` (``{"kind", "ts", "data"}``) and read payloads by attribute.
    """

    kind: EventKind
    payload: msgspec.Struct | BaseModel
    ts: float = msgspec.field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "ts", "data"}`` with JSON-compatible builtins (datetimes as RFC 3339 strings)."""
        payload = self.payload
        if isinstance(payload, BaseModel):
            data: Any = payload.model_dump(mode="json")
        else:
            data = msgspec.to_builtins(payload)
        return {"kind": self.kind, "ts": self.ts, "data": data}

    def to_json(self) -> bytes:
        """The same as :meth:`to_dict`, encoded as compact JSON bytes (no trailing newline)."""
        payload = self.payload
        if isinstance(payload, BaseModel):
            return orjson.dumps(self.to_dict())
        return _ENCODER.encode({"kind": self.kind, "ts": self.ts, "data": payload})


class SinkConfig(BaseModel):
    """Settings every sink accepts (``sinks.<name>``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS[:2]))  # summary, arbitrage
    buffer_size: int = Field(10_000, ge=1, description="bounded buffer; when full the oldest event is dropped")


class Sink:
    """Base class of sinks. The runtime calls ``open``, then ``write`` with batches, then ``close``.

    Accounting (every event is delivered or counted): by default an event counts as delivered
    when the ``write`` that received it returns, less the events the sink added to
    ``dropped_events`` during that call; when ``write`` raises, the events it did not count
    itself are counted as dropped (``write_error``). A sink that keeps events after ``write``
    returns (its own batching or retries, like ``webhook``) sets ``holds_events = True`` and
    then accounts for every event it was handed itself: each one ends in ``delivered_events``
    or ``dropped_events`` and is in ``pending_events`` until then (also when ``write`` or
    ``close`` raise or are cancelled).
    """

    name: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig
    holds_events: ClassVar[bool] = False

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.health_error: str | None = None  # set to say what is wrong; shown in health
        self.dropped_events = 0  # events the sink itself gave up on (counted in metrics and health)
        self.delivered_events = 0  # holds_events sinks only: events confirmed delivered
        #: the aggregator's telemetry, set before :meth:`bind` (a sink that serves ``/metrics``,
        #: ``/healthz`` or ``/readyz`` answers them with ``await telemetry.route_async(path, accept)``)
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

    @property
    def pending_events(self) -> int:
        """holds_events sinks: events handed to ``write`` not yet delivered or dropped."""
        return 0

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None
