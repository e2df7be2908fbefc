"""Entry point ``nats``: the NATS JetStream bus and the ``nats`` sink."""

from __future__ import annotations

from aggcore.bus import Bus
from aggcore.hookspecs import hookimpl
from aggcore.sink import Sink

from .bus import NatsBus
from .sink import NatsSink


@hookimpl
def aggcore_register_buses() -> list[type[Bus]]:
    return [NatsBus]


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [NatsSink]
