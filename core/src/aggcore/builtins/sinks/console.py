"""The ``console`` sink (placeholder until the real one lands: accepts events and drops them)."""

from __future__ import annotations

from collections.abc import Sequence

from ...sink import Event, Sink

__all__ = ["ConsoleSink"]


class ConsoleSink(Sink):
    """Placeholder: the real ``console`` sink replaces this module."""

    name = "console"

    async def write(self, events: Sequence[Event]) -> None:
        return None
