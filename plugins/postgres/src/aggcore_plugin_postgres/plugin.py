"""pluggy registration of the ``postgres`` sink (entry point ``postgres`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.hookspecs import hookimpl
from aggcore.sink import Sink

from .sink import PostgresSink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [PostgresSink]
