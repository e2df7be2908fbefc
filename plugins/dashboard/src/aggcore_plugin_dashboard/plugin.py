"""pluggy registration of the dashboard sink (entry point ``dashboard`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.hookspecs import hookimpl
from aggcore.sink import Sink

from .sink import DashboardSink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [DashboardSink]
