"""A base class for sinks that write to a server (a database, a cache, a bus) over a connection
that can go away: :class:`BufferedSink`.

``write()`` never waits on the server. It appends the batch to the sink's own bounded buffer
(``max_pending_events``; when full the **oldest** events are dropped and counted in
``dropped_events``) and wakes a writer task. The writer takes batches of at most
``batch_max_events`` (waiting up to ``batch_max_delay_ms`` for a batch to fill), and calls the
subclass's ``deliver(batch)``:

- success: ``delivered_events`` grows, ``health_error`` is cleared;
- the server refuses writes for now (``is_refusal(exc)``: memory or disk full, read-only): the
  batch is retried with backoff (on a new connection) while the buffer holds the events;
- a transient error (``is_transient(exc)``: the connection broke, the server restarts, a
  timeout): the sink disconnects, says so in health (state, attempt, the error, how many
  events it holds), backs off (exponential with full jitter, ``backoff_initial_s`` up to
  ``backoff_max_s``), reconnects and retries **the same batch** first, so nothing is lost
  while the buffer has room. A subclass that can tell whether a batch committed before the
  connection broke (``committed(batch_no)``) avoids writing it twice;
- any other error (the server rejected the data): the batch is dropped and counted, health
  says why, and the sink goes on with the next batch.

``open()`` connects once within ``connect_timeout_s``. A permanent failure (bad credentials,
no such database) raises :class:`~aggcore.errors.ConfigError` naming the setting (the runtime
shows it in health as ``cannot open: ...``); an unreachable server is not fatal: health says
so and the writer keeps retrying while the buffer holds the events.

``close()`` delivers what the sink holds within ``close_timeout_s`` (keep it below the
runtime's shutdown deadline, 5 s by default) and counts the rest as dropped; events written
after ``close()`` are counted as dropped too. So for every sink:
events given to ``write`` = ``delivered_events`` + ``dropped_events`` + ``pending_events``
(``holds_events = True``: the runtime's accounting reads these).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import ClassVar

import anyio
from pydantic import Field

from .sink import Event, Sink, SinkConfig

__all__ = ["BufferedSink", "BufferedSinkConfig"]

log = logging.getLogger("aggcore.sink")


class BufferedSinkConfig(SinkConfig):
    """Settings of every :class:`BufferedSink` (besides ``enabled``, ``events``, ``buffer_size``)."""

    max_pending_events: int = Field(
        100_000, ge=1, description="events held while the server is slow or unreachable; beyond it the oldest are dropped (counted)"
    )
    batch_max_events: int = Field(1000, ge=1, description="events per batch written to the server")
    batch_max_delay_ms: float = Field(200, ge=0, description="wait at most this long for a batch to fill")
    connect_timeout_s: float = Field(5.0, gt=0, description="timeout of one connection attempt")
    backoff_initial_s: float = Field(0.2, gt=0, description="first reconnect delay cap (full jitter below it)")
    backoff_max_s: float = Field(5.0, gt=0, description="largest reconnect delay")
    close_timeout_s: float = Field(4.0, gt=0, description="at shutdown, deliver what is held within this long, then count the rest as dropped")


class BufferedSink(Sink):
    """A sink with its own bounded buffer and a writer task that reconnects (see the module docstring).

    Subclasses implement ``connect``, ``deliver``, ``disconnect`` and ``is_transient``, and may
    implement ``committed`` and ``describe`` (the server, without secrets, for messages).
    """

    Config: ClassVar[type[SinkConfig]] = BufferedSinkConfig
    holds_events: ClassVar[bool] = True  # it accounts for every event itself (see Sink)

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        assert isinstance(config, BufferedSinkConfig), f"{type(self).__name__} needs a BufferedSinkConfig"
        self.bcfg: BufferedSinkConfig = config
        self._pending: deque[Event] = deque()
        self._inflight: list[Event] = []
        self._inflight_no = 0
        self._batch_no = 0
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.connected = False
        self.written_batches = 0
        self.failed_batches = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    # -- to implement ----------------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection (and create what must exist). Raise on failure."""
        raise NotImplementedError

    async def deliver(self, batch: Sequence[Event], batch_no: int) -> None:
        """Write one batch (``batch_no`` grows by one per batch). Raise on failure."""
        raise NotImplementedError

    async def disconnect(self) -> None:
        """Close the connection; must not raise."""

    def is_transient(self, exc: BaseException) -> bool:
        """True when ``exc`` means the connection or server is (temporarily) gone: retry the batch."""
        return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError))

    def is_refusal(self, exc: BaseException) -> bool:
        """True when the server is reachable but refuses writes for now (memory or disk full,
        read-only): the batch is retried with backoff (on a new connection), events are held."""
        return False

    def is_permanent(self, exc: BaseException) -> bool:
        """True when a failure to connect cannot heal by retrying (credentials, missing database)."""
        return False

    async def committed(self, batch_no: int) -> bool:
        """After a reconnect: did ``batch_no`` commit before the connection broke? (default: unknown, no)."""
        return False

    def describe(self) -> str:
        """The server this sink writes to, without secrets."""
        return self.name

    def scrub(self, text: str) -> str:
        """``text`` (a third-party error message) without secrets; e.g. ``SecretUrl.scrub``."""
        return text

    # -- Sink ------------------------------------------------------------------------------------------------
    @property
    def pending_events(self) -> int:
        """Events held (waiting or being delivered): handed to ``write``, not yet delivered nor dropped."""
        return len(self._pending) + len(self._inflight)

    async def open(self) -> None:
        try:
            with anyio.fail_after(self.bcfg.connect_timeout_s):
                await self.connect()
            self.connected = True
        except Exception as exc:
            await self.disconnect()
            if self.is_permanent(exc):
                raise
            self._set_error(f"cannot connect to {self.describe()}: {self.scrub(_text(exc))}; retrying in the background")
            log.warning("sink %s: %s", self.name, self.health_error)
        self._task = asyncio.get_running_loop().create_task(self._writer(), name=f"aggcore-sink-{self.name}")

    async def write(self, events: Sequence[Event]) -> None:
        if self._closed:  # published during shutdown, after close()
            self.dropped_events += len(events)
            return
        self._pending.extend(events)
        over = len(self._pending) - self.bcfg.max_pending_events
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.dropped_events += over
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._wake.set()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._wake.set()
            with anyio.move_on_after(self.bcfg.close_timeout_s):
                while self.pending_events and not self._task.done():
                    await self._idle.wait()
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        held = self.pending_events
        if held:
            self.dropped_events += held
            self._pending.clear()
            self._inflight = []
            self._set_error(f"shut down with {held} events not written to {self.describe()} (dropped)")
            log.warning("sink %s: %s", self.name, self.health_error)
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            await self.disconnect()
        self.connected = False

    # -- the writer --------------------------------------------------------------------------------------------
    def _set_error(self, text: str) -> None:
        self.health_error = text
        self.last_error = text
        self.last_error_at = datetime.now(timezone.utc)

    async def _next_batch(self) -> None:
        """Wait for events, then up to ``batch_max_delay_ms`` for a full batch; move it in flight."""
        while not self._pending:
            self._idle.set()
            self._wake = anyio.Event()
            await self._wake.wait()
        deadline = time.monotonic() + self.bcfg.batch_max_delay_ms / 1000
        while len(self._pending) < self.bcfg.batch_max_events and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake = anyio.Event()
            with anyio.move_on_after(left):
                await self._wake.wait()
        n = min(len(self._pending), self.bcfg.batch_max_events)
        self._inflight = [self._pending.popleft() for _ in range(n)]
        self._batch_no += 1
        self._inflight_no = self._batch_no

    async def _writer(self) -> None:
        attempt = 0
        while True:
            if not self._inflight:
                await self._next_batch()
            try:
                if not self.connected:
                    with anyio.fail_after(self.bcfg.connect_timeout_s):
                        await self.connect()
                    self.connected = True
                    if attempt:
                        self.reconnects += 1
                        log.info("sink %s: reconnected to %s", self.name, self.describe())
                    if await self.committed(self._inflight_no):  # it committed before the connection broke
                        self._done()
                        attempt = 0
                        continue
                await self.deliver(self._inflight, self._inflight_no)
            except Exception as exc:
                refused = self.connected and self.is_refusal(exc)
                if refused or self.is_transient(exc) or not self.connected:
                    attempt += 1
                    what = self.scrub(_text(exc))
                    # either way start again on a fresh connection: a failed write can leave a
                    # client's connection in a state it cannot continue from
                    self.connected = False
                    await self.disconnect()
                    if refused:  # the server is there but takes no writes for now
                        text = f"{self.describe()} refuses writes for now: {what}; retry {attempt}"
                    else:
                        text = f"disconnected from {self.describe()}: {what}; reconnect attempt {attempt}"
                    self._set_error(f"{text}, holding {self.pending_events} events")
                    log.warning("sink %s: %s", self.name, self.health_error)
                    if self._closed:
                        return  # shutting down: what is held is counted by close()
                    delay = random.uniform(0, min(self.bcfg.backoff_max_s, self.bcfg.backoff_initial_s * 2 ** min(attempt - 1, 30)))
                    await anyio.sleep(delay)
                    continue
                n = len(self._inflight)
                self._inflight = []
                self.failed_batches += 1
                self.dropped_events += n
                self._set_error(f"{self.describe()} rejected a batch of {n} events (dropped): {self.scrub(_text(exc))}")
                log.warning("sink %s: %s", self.name, self.health_error)
                attempt = 0
                continue
            self._done()
            attempt = 0
            self.health_error = None

    def _done(self) -> None:
        self.delivered_events += len(self._inflight)
        self.written_batches += 1
        self._inflight = []


def _text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
