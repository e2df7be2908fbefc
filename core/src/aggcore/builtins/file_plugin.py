"""Entry point ``file``: registers the built-in sink :class:`~aggcore.builtins.sinks.file.FileSink`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..sink import Sink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    from .sinks.file import FileSink  # lazy: a broken built-in is this plugin's load error only

    return [FileSink]
