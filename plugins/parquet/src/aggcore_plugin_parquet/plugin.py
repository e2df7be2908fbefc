"""pluggy registration of the ``parquet`` sink (entry point ``parquet`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.hookspecs import hookimpl
from aggcore.sink import Sink

from .sink import ParquetSink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [ParquetSink]
