"""Hook specifications (pluggy project ``aggcore``).

Hooks are registries, not actions: synchronous, no I/O, called once per application at
start-up, each returning a list of classes. They are documented with their exact
signatures in ``docs/plugins.md``; a test checks that every hook here is documented there
and tested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .analyzer import Analyzer
    from .bus import Bus
    from .connector import Connector
    from .sink import Sink

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "aggcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aggcore_register_connectors() -> list[type[Connector]]:  # type: ignore[empty-body]
    """Return the exchange connector classes this plugin provides."""


@hookspec
def aggcore_register_sinks() -> list[type[Sink]]:  # type: ignore[empty-body]
    """Return the sink classes this plugin provides."""


@hookspec
def aggcore_register_analyzers() -> list[type[Analyzer]]:  # type: ignore[empty-body]
    """Return the analyzer classes this plugin provides."""


@hookspec
def aggcore_register_buses() -> list[type[Bus]]:  # type: ignore[empty-body]
    """Return the bus classes this plugin provides (the transport of ``aggcore run --role``)."""
