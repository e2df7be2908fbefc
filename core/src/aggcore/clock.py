"""The one place aggcore reads time: a :class:`Clock` owned by the runtime.

Everything that reads time or sleeps on behalf of the books, the consolidated view, the
analyzers and the connectors (staleness, conflation, analysis cadence, event timestamps,
backoffs, rate limits) asks the :class:`Clock` it was given, never :mod:`time` or
``anyio.sleep`` directly. Live, that is :data:`SYSTEM_CLOCK` (the machine's clocks).
``aggcore replay`` passes a recorded clock instead, whose time is the recorded receipt time
of the traffic being replayed, so two replays of one recording produce byte-identical output.

Plugins reach it as ``self.clock`` (connectors); the aggregator as ``aggregator.clock``.
"""

from __future__ import annotations

import time

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock"]


class Clock:
    """Wall time, monotonic time and sleeping. The base class is the system clock.

    ``time()`` is seconds since the epoch (for timestamps people read); ``monotonic()`` /
    ``monotonic_ns()`` measure intervals and ages (never compare them with ``time()``);
    ``sleep(seconds)`` waits on this clock.
    """

    def time(self) -> float:
        return time.time()

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


#: the machine's clocks; the default everywhere a clock is not given
SYSTEM_CLOCK = Clock()
