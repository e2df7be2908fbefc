"""The ``stdout`` sink (placeholder until the real one lands: accepts events and drops them)."""

from __future__ import annotations

from collections.abc import Sequence

from ...sink import Event, Sink

__all__ = ["StdoutSink"]


class StdoutSink(Sink):
    """Placeholder: the real ``stdout`` sink replaces this module."""

    name = "stdout"

    async def write(self, events: Sequence[Event]) -> None:
        return None
