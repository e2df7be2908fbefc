"""pluggy registration of the ``redis`` sink (entry point ``redis`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.hookspecs import hookimpl
from aggcore.sink import Sink

from .sink import RedisSink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [RedisSink]
