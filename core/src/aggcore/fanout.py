"""Bounded fan-out from the analysis task to subscribers and sinks.

Nothing downstream can slow the books: publishing is a synchronous, non-blocking append to
each consumer's bounded buffer, and every consumer drains its buffer in its own task.

Policies (stated, and counted when they drop):

- ``conflate``: one slot per key (the pair); a newer summary replaces an undelivered older
  one of the same pair. Used for summary subscriptions.
- ``drop_oldest``: a FIFO of ``maxsize``; when full, the oldest item is dropped. Used for
  arbitrage and health subscriptions and in front of every sink.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Generic, Literal, TypeVar

import anyio

from .errors import SinkError
from .models import utcnow
from .sink import Event, EventKind, Sink

__all__ = ["DROP_REASONS", "Hub", "SinkRunner", "Subscription"]

log = logging.getLogger("aggcore.fanout")
T = TypeVar("T")
Policy = Literal["conflate", "drop_oldest"]


class Subscription(AsyncIterator[T], Generic[T]):
    """An async iterator over published items with a bounded buffer (see the module docstring)."""

    def __init__(
        self,
        kind: EventKind,
        *,
        maxsize: int = 1000,
        policy: Policy = "drop_oldest",
        key: Callable[[T], Hashable] | None = None,
        accept: Callable[[T], bool] | None = None,
        on_close: Callable[["Subscription[T]"], None] | None = None,
    ) -> None:
        self.kind = kind
        self.maxsize = maxsize
        self.policy = policy
        self.key = key
        self.accept = accept
        self.dropped = 0
        self.delivered = 0
        self._fifo: deque[T] = deque()
        self._slots: OrderedDict[Hashable, T] = OrderedDict()
        self._wake = anyio.Event()
        self._closed = False
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._fifo) + len(self._slots)

    def put(self, item: T) -> None:
        if self._closed or (self.accept is not None and not self.accept(item)):
            return
        if self.policy == "conflate" and self.key is not None:
            k = self.key(item)
            if k in self._slots:
                self.dropped += 1  # an undelivered older item of this key is replaced
            elif len(self._slots) >= self.maxsize:
                self._slots.popitem(last=False)
                self.dropped += 1
            self._slots[k] = item
        else:
            if len(self._fifo) >= self.maxsize:
                self._fifo.popleft()
                self.dropped += 1
            self._fifo.append(item)
        self._wake.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake.set()
            if self._on_close is not None:
                self._on_close(self)

    def __aiter__(self) -> "Subscription[T]":
        return self

    async def __anext__(self) -> T:
        while True:
            if self._fifo:
                self.delivered += 1
                return self._fifo.popleft()
            if self._slots:
                self.delivered += 1
                return self._slots.popitem(last=False)[1]
            if self._closed:
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "Subscription[T]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


#: why a sink's events were dropped (label ``reason`` of ``aggcore.sink_dropped``)
DROP_REASONS = ("buffer_full", "write_error", "shutdown", "sink")


class SinkRunner:
    """Drives one sink from its own task, behind a bounded drop-oldest buffer.

    Accounting, per sink: ``produced == delivered + total_dropped + in_flight`` at any time
    between two awaits, and ``in_flight == 0`` once :meth:`finish` ran (after shutdown). Drops
    by reason (:data:`DROP_REASONS`): ``buffer_full`` (the oldest event made room),
    ``write_error`` (``write`` raised; the batch is lost), ``shutdown`` (still buffered or being
    written when the shutdown deadline passed), ``sink`` (the sink gave up on them itself:
    retry budget spent, endpoint gone, written after close, ...).
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.name = sink.name
        self.kinds = set(sink.config.events)
        self.buffer: deque[Event] = deque()
        self.maxsize = sink.config.buffer_size
        self.produced = 0
        self.drops: dict[str, int] = {"buffer_full": 0, "write_error": 0, "shutdown": 0}
        self.written = 0  # events handed to write() calls that returned
        self.errors = 0
        self.last_error: str | None = None
        self.last_write: float | None = None
        self.opened = False
        self.finished = False
        self._delivered = 0  # sinks that do not hold events: counted here
        self._inflight = 0  # events in the write() being awaited (sinks that do not hold events)
        self._dropped_before = 0  # sink.dropped_events when that write() started
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._busy = False

    def put(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        self.produced += 1
        if self.finished:
            self.drops["shutdown"] += 1
            return
        if len(self.buffer) >= self.maxsize:
            self.buffer.popleft()
            self.drops["buffer_full"] += 1
        self.buffer.append(event)
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    async def run(self) -> None:
        try:
            await self.sink.open()
            self.opened = True
        except Exception as exc:
            self.errors += 1
            self.last_error = f"cannot open: {exc}"
            log.error("sink %s: %s", self.name, self.last_error)
            self._idle.set()
            return
        holds = self.sink.holds_events
        while True:
            if not self.buffer:
                self._idle.set()
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            batch = list(self.buffer)
            self.buffer.clear()
            before = self._dropped_before = self.sink.dropped_events
            self._inflight = 0 if holds else len(batch)
            try:
                await self.sink.write(batch)
            except Exception as exc:
                partial = getattr(exc, "delivered", 0) if isinstance(exc, SinkError) else 0
                if partial and not holds:  # a write that failed partway: its first events got out
                    self._delivered += partial
                self._settle(len(batch) - partial, before, "write_error")
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("sink %s: write failed, %d events lost: %s", self.name, len(batch), self.last_error)
            except BaseException:  # cancelled (shutdown deadline) in the middle of a write
                self._settle(len(batch), before, "shutdown")
                raise
            else:
                self._inflight = 0
                self.written += len(batch)
                if not holds:
                    self._delivered += max(0, len(batch) - (self.sink.dropped_events - before))
                self.last_write = batch[-1].ts  # the newest event written (its clock: replays stay identical)
                self.last_error = None  # a transient write error is not the sink's health forever

    def _settle(self, n: int, dropped_before: int, reason: str) -> None:
        """A write that did not return: its events that the sink did not count are lost."""
        self._inflight = 0
        if not self.sink.holds_events:
            self.drops[reason] += max(0, n - (self.sink.dropped_events - dropped_before))

    async def flush(self, deadline_s: float) -> bool:
        """Wait until the buffer is written (or the deadline passes); True when drained."""
        with anyio.move_on_after(deadline_s):
            while self.buffer or not self._idle.is_set():
                await self._idle.wait()
                if self.buffer:
                    await anyio.sleep(0.01)
            return True
        return False

    def finish(self) -> int:
        """After shutdown (the runner's task is over): count what never got out as dropped
        (``shutdown``): still buffered, or still held by the sink. Returns that number."""
        if self.finished:
            return 0
        cut = self.in_flight
        self.finished = True
        self.buffer.clear()
        self._inflight = 0
        self.drops["shutdown"] += cut
        self._idle.set()
        return cut

    @property
    def delivered(self) -> int:
        return self.sink.delivered_events if self.sink.holds_events else self._delivered

    @property
    def dropped(self) -> int:
        """Dropped by the runner: buffer full, write errors, shutdown."""
        return sum(self.drops.values())

    @property
    def idle(self) -> bool:
        """Nothing buffered and no write in progress."""
        return self._idle.is_set()

    @property
    def total_dropped(self) -> int:
        """Dropped by the runner plus dropped by the sink itself (e.g. retry budget spent)."""
        return self.dropped + self.sink.dropped_events

    @property
    def in_flight(self) -> int:
        """Produced, not yet delivered nor dropped: buffered, being written, or held by the sink."""
        if self.finished:
            return 0
        if self.sink.holds_events:
            held = self.sink.pending_events
        else:  # what the sink counted as dropped during this write is no longer in flight
            held = max(0, self._inflight - (self.sink.dropped_events - self._dropped_before)) if self._inflight else 0
        return len(self.buffer) + held

    def drop_counts(self) -> dict[str, int]:
        """Drops by reason (:data:`DROP_REASONS`)."""
        return {**self.drops, "sink": self.sink.dropped_events}

    def counts(self) -> dict[str, int]:
        """``produced``, ``delivered``, ``dropped``, ``in_flight`` and ``dropped_<reason>`` (health)."""
        out = {
            "produced": self.produced,
            "delivered": self.delivered,
            "dropped": self.total_dropped,
            "in_flight": self.in_flight,
        }
        out.update({f"dropped_{k}": v for k, v in self.drop_counts().items()})
        return out

    def accounting(self) -> str:
        """``produced 500 = delivered 488 + dropped 12 (buffer_full 12) + in flight 0``."""
        why = ", ".join(f"{k} {v}" for k, v in self.drop_counts().items() if v)
        return (
            f"produced {self.produced} = delivered {self.delivered} + dropped {self.total_dropped}"
            + (f" ({why})" if why else "")
            + f" + in flight {self.in_flight}"
        )

    @property
    def health_error(self) -> str | None:
        return self.sink.health_error or self.last_error

    def health_time(self) -> object:
        return utcnow()


class Hub:
    """Publishes events to subscriptions (by kind) and to sink runners."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, list[Subscription[object]]] = {}
        self.sinks: list[SinkRunner] = []
        self.published: dict[str, int] = {}
        #: events stamped before this time (seconds) are not published (a replay's ``--from``)
        self.since: float | None = None
        self.sealed = False  # set when shutdown starts: later events are not produced for sinks

    def subscribe(self, sub: Subscription[T]) -> Subscription[T]:
        self.subscriptions.setdefault(sub.kind, []).append(sub)  # type: ignore[arg-type]
        sub._on_close = self._remove  # type: ignore[assignment]
        return sub

    def _remove(self, sub: Subscription[object]) -> None:
        subs = self.subscriptions.get(sub.kind, [])
        if sub in subs:
            subs.remove(sub)

    def publish(self, event: Event) -> None:
        if self.since is not None and event.ts < self.since:
            return
        self.published[event.kind] = self.published.get(event.kind, 0) + 1
        for sub in self.subscriptions.get(event.kind, ()):
            sub.put(event.payload)
        if not self.sealed:
            for runner in self.sinks:
                runner.put(event)

    def seal(self) -> None:
        """Shutdown: events published from now on are not produced for sinks (the sinks get
        what was published before, flushed within the deadline, and nothing after)."""
        self.sealed = True

    def close(self) -> None:
        for subs in list(self.subscriptions.values()):
            for sub in list(subs):
                sub.close()
