"""The ``file`` sink (placeholder until the real one lands: accepts events and drops them)."""

from __future__ import annotations

from collections.abc import Sequence

from ...sink import Event, Sink

__all__ = ["FileSink"]


class FileSink(Sink):
    """Placeholder: the real ``file`` sink replaces this module."""

    name = "file"

    async def write(self, events: Sequence[Event]) -> None:
        return None
