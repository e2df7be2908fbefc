"""Entry point ``console``: registers the built-in sink :class:`~aggcore.builtins.sinks.console.ConsoleSink`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..sink import Sink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    from .sinks.console import ConsoleSink  # lazy: a broken built-in is this plugin's load error only

    return [ConsoleSink]
