"""Replaying recorded exchange traffic through the same connector code, deterministically.

``aggcore replay CONFIG PATH...`` builds the normal :class:`~aggcore.aggregator.Aggregator`
(the config's connectors, analyzers and sinks) and gives each connector, instead of the
network, a WebSocket opener and an HTTP transport that serve the recording:

- the n-th connection a connector opens gets the recorded connection with the same URL path
  (else the next unused one), opened at its recorded time; its frames reach the connector's
  frame handler at their recorded receipt times, and it closes where the recording closed;
- each REST request is answered by the next unused recorded response to the same path (query
  parameters must agree, except depth limits), at its recorded time; a request the recording
  cannot answer gets HTTP 404 naming it, so that book fails with the reason and stays out of
  the view;
- a :class:`RecordedClock` is the clock of everything (connectors, books, views, analyzers,
  health): its time is the recorded time, and it only moves when every task is idle, so two
  replays of one recording produce byte-identical sink output.

PATH is an aggcore recording (``aggcore record``; see :mod:`aggcore.recording`) or cryptofeed
raw capture files (``EXCH.ws.N.0``, ``EXCH.http.N.0``, ``EXCH.0``), told apart by content.

A replay's memory does not grow with the recording: :func:`load_replay` indexes the PATHs in
one streaming pass (connections, frame counts, REST records, the span, the damage) and keeps no
frame; each recorded connection's :class:`RecordedFrames` reads its frames forward from the
files when the replay reaches them (a block of its exchange's series, or a line of each of its
cryptofeed capture files, at a time).
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec
import orjson

from .clock import Clock
from .errors import AggregatorError, ConfigError
from .recording import RecordingError, _bad_record, _iter_chunks, is_recording, read_recording

if TYPE_CHECKING:
    from .aggregator import Aggregator
    from .config import AppConfig
    from .connector import WsOpener
    from .plugins import PluginRegistry

__all__ = [
    "ExchangeData",
    "ExchangeReplay",
    "RecordedClock",
    "RecordedConnection",
    "RecordedFrames",
    "RecordedHttp",
    "ReplayData",
    "ReplayResult",
    "ReplayWs",
    "load_replay",
    "parse_time",
    "replay",
]

log = logging.getLogger("aggcore.replay")

_FOREVER = 1 << 62


# -- the recorded clock --------------------------------------------------------------------------


class RecordedClock(Clock):
    """A clock whose time is the recording's: it moves only when everything is idle.

    ``sleep``/``sleep_until`` register a wake-up time; :meth:`run` (the driver) waits until no
    task can run, then moves time to the earliest wake-up and wakes its sleepers (in the order
    they slept), so the same recording always runs the same way. ``speed`` paces it against
    the machine's clock (1 = recorded pace); ``None`` runs as fast as the code goes.
    """

    def __init__(self, start_ns: int, *, speed: float | None = None) -> None:
        self.now_ns = start_ns
        self.speed = speed
        self.fast_until_ns = 0  # as fast as possible before this (the --from warm-up)
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._ready: Any = None
        self._driver: asyncio.Task[Any] | None = None
        self._blocked: Callable[[], bool] = lambda: False
        self._real0 = 0.0
        self._virt0 = start_ns
        self.first_frame_wall: float | None = None  # machine time of the first and last frames
        self.last_frame_wall: float | None = None

    # Clock --------------------------------------------------------------------------------------
    def time(self) -> float:
        return self.now_ns / 1e9

    def time_ns(self) -> int:
        return self.now_ns

    def monotonic(self) -> float:
        return self.now_ns / 1e9

    def monotonic_ns(self) -> int:
        return self.now_ns

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now_ns + max(0, int(seconds * 1e9)))

    def advance(self, t_ns: int) -> bool:
        """Move time to ``t_ns`` at once when that changes nothing else: no other task can run now
        (the driver polling for idleness aside), nobody wakes before ``t_ns``, no sink is busy,
        and no pace is kept. The fast path of a reader whose next frame is due: no round trip
        through the driver."""
        ready = self._ready
        heap = self._heap
        if (
            ready is not None
            and (not ready or (len(ready) == 1 and getattr(ready[0]._callback, "__self__", None) is self._driver))
            and (self.speed is None or t_ns <= self.fast_until_ns)
            and (not heap or heap[0][0] > t_ns)
            and not self._blocked()
        ):
            self.now_ns = t_ns
            return True
        return False

    async def sleep_until(self, t_ns: int) -> None:
        if t_ns <= self.now_ns:
            await asyncio.sleep(0)
            return
        if self.advance(t_ns):
            return
        heap = self._heap
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(heap, (t_ns, self._seq, fut))
        await fut

    # the driver -----------------------------------------------------------------------------------
    async def _idle(self) -> None:
        """Return once no task is ready to run (and nothing holds time back)."""
        ready = self._ready
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
                if ready is not None and not ready:
                    break
            if ready is not None and ready:
                continue
            if self._blocked():
                await asyncio.sleep(0.002)  # a sink is catching up: wait for it in real time
                continue
            return

    async def run(self, end_ns: int, *, blocked: Callable[[], bool] | None = None) -> None:
        """Advance time, waking sleepers in order, until ``end_ns`` (or nothing is scheduled)."""
        loop = asyncio.get_running_loop()
        self._ready = getattr(loop, "_ready", None)  # CPython's ready queue: how "idle" is told
        if self._ready is None:
            raise AggregatorError(f"replay needs asyncio's own event loop (it tells idleness by its ready queue), not {type(loop).__name__}")
        self._driver = asyncio.current_task()
        if blocked is not None:
            self._blocked = blocked
        self._real0 = time.perf_counter()
        self._virt0 = self.now_ns
        heap = self._heap
        try:
            while True:
                await self._idle()
                while heap and heap[0][2].done():
                    heapq.heappop(heap)  # a sleeper that was cancelled
                if not heap:
                    return
                t = heap[0][0]
                if t > end_ns:
                    self.now_ns = max(self.now_ns, end_ns)
                    return
                if self.speed is not None and t > self.fast_until_ns:
                    if self._virt0 < self.fast_until_ns:
                        self._virt0, self._real0 = self.fast_until_ns, time.perf_counter()
                    target = self._real0 + (t - self._virt0) / 1e9 / self.speed
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        continue  # something may have happened meanwhile (a sink): re-check
                self.now_ns = max(self.now_ns, t)
                while heap and heap[0][0] <= self.now_ns:
                    _, _, fut = heapq.heappop(heap)
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._ready = None  # no fast path once the driver is gone


# -- what a recording holds ------------------------------------------------------------------------


Frame = tuple[int, str | bytes]


class RecordedFrames:
    """The frames of one recorded connection, ``(receipt ns, frame)`` in the order they are
    replayed. This base class holds them in a list (``append``); the loaders' subclasses read
    them from the files each time they are iterated, a block at a time, so a replay's memory
    does not grow with the recording's length. ``len()`` and ``last_ns`` (the latest receipt
    time) come from the loading pass; indexing reads forward to the frame (for tests and tools)."""

    def __init__(self, frames: Iterable[Frame] = ()) -> None:
        self._list: list[Frame] = list(frames)
        self.count = len(self._list)
        self.last_ns = max((t for t, _ in self._list), default=0)

    def append(self, frame: Frame) -> None:
        self._list.append(frame)
        self.count += 1
        self.last_ns = max(self.last_ns, frame[0])

    def note(self, t_ns: int) -> None:
        """(loading) one more frame, received at ``t_ns``, that iterating will give."""
        self.count += 1
        if t_ns > self.last_ns:
            self.last_ns = t_ns

    def __iter__(self) -> Iterator[Frame]:
        return iter(self._list)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __getitem__(self, index: int) -> Frame:
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        for n, frame in enumerate(self):
            if n == index:
                return frame
        raise IndexError(index)


def _report(errors: list[str], message: str) -> None:
    """A replay-time problem with the recording, logged and listed once (the loading pass may
    have named it already)."""
    if message not in errors:
        log.error("replay: %s", message)
        errors.append(message)


class _SeriesFrames(RecordedFrames):
    """The frames of connection ``c`` in an exchange's series of aggcore recording files, from
    the record that started it (file ``files[first]``, block at ``offset``, line ``line``) until
    ``count`` frames were given: a forward reader over the files, one block in memory at a time."""

    def __init__(self, exchange: "ExchangeData", c: Any, first: int, offset: int, line: int, errors: list[str]) -> None:
        super().__init__()
        self.exchange = exchange
        self.c = c
        self.first = first
        self.offset = offset
        self.line = line
        self.errors = errors

    def __iter__(self) -> Iterator[Frame]:
        return self.read_from(self.first, self.offset, self.line, self.count)

    def read_from(self, first: int, offset: int, line_no: int, left: int) -> Iterator[Frame]:
        """``left`` frames of this connection from line ``line_no`` of the block at ``offset`` of
        file ``series[first]`` on (every line of ``c`` from there is this connection's, up to them)."""
        if left <= 0:
            return
        c = self.c
        loads = orjson.loads
        files = self.exchange.series
        for i in range(first, len(files)):
            path = files[i]
            start = offset if i == first else 0
            stop_member, stop_line = self.exchange.stops.get(path, (0, 0))  # the last record the loading pass read
            raw_errors: list[RecordingError] = []
            try:
                for member, n0, lines in _iter_chunks(Path(path), raw_errors, start):
                    if member > stop_member:
                        break
                    lo = line_no - n0 if i == first and member == start else 0
                    hi = stop_line - n0 + 1 if member == stop_member else len(lines)
                    if lo > 0 or hi < len(lines):
                        lines = lines[max(lo, 0) : max(hi, 0)]
                        n0 += max(lo, 0)
                    records = _decode_run(lines)
                    if records is not None:  # the usual run: every line a record of the expected shape
                        for rec in records:
                            if rec.k == "in" and rec.c == c:
                                yield rec.t, rec.d if rec.d is not None else base64.b64decode(rec.b or "")
                                left -= 1
                                if not left:
                                    return
                        continue
                    for k, line in enumerate(lines):  # a run with a line of another shape: line by line
                        if not line:
                            continue
                        fast = _fast_in(line)
                        try:
                            if fast is not None:
                                t_ns, line_c, body = fast
                                if line_c != c:
                                    continue  # another connection's frame
                                text = _plain_frame(line, body)
                                frame = text if text is not None else _frame_of(loads(line))
                            else:
                                if member == 0 and n0 + k == 1:
                                    continue  # the file's header
                                rec = loads(line)
                                if not isinstance(rec, dict) or rec.get("k") != "in" or rec.get("c", -1) != c:
                                    continue
                                frame = _frame_of(rec)
                                t_ns = int(rec.get("t", 0))
                        except (ValueError, TypeError) as exc:
                            # a frame line the loading pass did not parse (it only read where it
                            # starts): named and counted here, and the replay goes on without it
                            self._report(f"{_bad_record(path, member, n0 + k, exc)}; skipped")
                            continue
                        yield t_ns, frame
                        left -= 1
                        if not left:
                            return
            except OSError as exc:  # changed since it was loaded
                self._report(f"{path}: cannot be read while replaying: {exc}")
            for err in raw_errors:
                self._report(str(err))

    def _report(self, message: str) -> None:
        _report(self.errors, message)


class _Record(msgspec.Struct):
    """What a replay reads of a record line (other fields are skipped unparsed)."""

    t: int = 0
    k: str = ""
    c: int | None = None
    d: str | None = None
    b: str | None = None


_RUN = msgspec.json.Decoder(list[_Record])


def _decode_run(lines: list[bytes]) -> list[_Record] | None:
    """A run of record lines decoded in one call (about half the cost of reading them one by
    one), or None when one of them is not a record of the expected shape (the caller then reads
    them line by line, naming the bad one)."""
    try:
        return _RUN.decode(b"[" + b",".join([line for line in lines if line]) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


_IN_TAG = b',"k":"in","c":'


def _fast_in(line: bytes) -> tuple[int, int, int] | None:
    """A frame line as our writer makes it, ``{"t":<digits>,"k":"in","c":<digits>,...}``:
    (its time, its connection, where the rest starts), read from where it starts only; None
    for any other line (which is then parsed whole). The loading pass and the readers tell
    lines apart with this one test, so they count the same frames."""
    pos = line.find(_IN_TAG, 5, 48)
    if pos > 0 and line[:5] == b'{"t":' and line[-1:] == b"}":
        comma = line.find(b",", pos + 14, pos + 40)
        if comma > 0:
            t, c = line[5:pos], line[pos + 14 : comma]
            if t.isdigit() and c.isdigit():
                return int(t), int(c), comma + 1
    return None


def _plain_frame(line: bytes, body: int) -> str | None:
    """The frame of a :func:`_fast_in` line whose rest is just ``"d":"<text>"}`` (how our writer
    puts a text frame), read from that JSON string alone; None for anything else."""
    if line[body : body + 5] == b'"d":"' and line[-2:] == b'"}':
        try:
            text = orjson.loads(line[body + 4 : -1])
        except orjson.JSONDecodeError:
            return None
        if type(text) is str:
            return text
    return None


def _frame_of(rec: dict[str, Any]) -> str | bytes:
    """A frame record's frame: its text (``d``) or its base64 bytes (``b``). Raises
    ``ValueError``/``TypeError`` when it has neither in a usable form."""
    return rec["d"] if "d" in rec else base64.b64decode(rec.get("b", ""))


class _Stream:
    """One connection's share of a :class:`_SeriesReader`: frames read for it, not yet taken."""

    __slots__ = ("frames", "buf", "left", "detached", "resume")

    def __init__(self, frames: _SeriesFrames) -> None:
        self.frames = frames
        #: (time, frame (None: a bad one, skipped), its line's size, file, block, line number)
        self.buf: deque[tuple[int, str | bytes | None, int, int, int, int]] = deque()
        self.left = frames.count  # frames not yet read for it
        self.detached = False  # it fell too far behind: it reads its own way from its first unread frame
        self.resume = (0, 0, 0)  # (detached) that frame: file, block, line


class _SeriesReader:
    """One forward reader over an exchange's series of files for all its recorded connections
    (one replay): each block is read once, its frames go to their connections' buffers, and a
    connection asking for more makes it read the next block. What the buffers hold is bounded
    (``limit`` bytes of lines): past it, the connections furthest behind (not replayed yet, or
    not at all) drop their buffers and, if the replay reaches them, read on their own from their
    first unread frame."""

    def __init__(self, exchange: "ExchangeData", errors: list[str], limit: int = 8 * 1024 * 1024) -> None:
        self.exchange = exchange
        self.errors = errors
        self.limit = limit
        self.buffered = 0
        self.streams: dict[int, _Stream] = {id(f): _Stream(f) for f in exchange.series_frames}
        self.queues: dict[Any, deque[_Stream]] = {}
        for f in exchange.series_frames:  # each c's connections, in the order the loading pass made them
            self.queues.setdefault(f.c, deque()).append(self.streams[id(f)])
        self.active: dict[Any, _Stream] = {}
        self.file = -1
        self.path = ""
        self.stop = (0, 0)
        self.chunks: Any = None
        self.raw_errors: list[RecordingError] = []
        self.done = False

    def stream(self, frames: _SeriesFrames) -> Iterator[Frame]:
        """The frames of one connection (once per replay), read as the replay reaches them."""
        st = self.streams[id(frames)]
        buf = st.buf
        delivered = 0
        count = frames.count
        while delivered < count:
            if buf:
                t, frame, size, _, _, _ = buf.popleft()
                self.buffered -= size
                delivered += 1
                if frame is not None:
                    yield t, frame
            elif st.detached:  # it reads on from where its buffer was dropped
                yield from frames.read_from(*st.resume, count - delivered)
                return
            elif not self.read_block():
                return

    def read_block(self) -> bool:
        """Read the next block (or part of a large one) and hand its frames out; False at the end."""
        item = self._next_chunk()
        if item is None:
            return False
        member, n0, lines = item
        if member == self.stop[0] and self.stop[1] - n0 + 1 < len(lines):
            lines = lines[: max(self.stop[1] - n0 + 1, 0)]  # no further than the loading pass read
        file = self.file
        active = self.active
        loads = orjson.loads
        buffered = 0
        for k, line in enumerate(lines):
            fast = _fast_in(line)
            if fast is not None:
                t, c, body = fast
                st = self._take(c)
                if st is None:
                    continue
                frame: str | bytes | None = _plain_frame(line, body)
                if frame is None:
                    frame = self._whole(line, file, member, n0 + k)
                size = len(line)
                st.buf.append((t, frame, size, file, member, n0 + k))
                buffered += size
                continue
            if not line or (member == 0 and n0 + k == 1):
                continue  # the file's header
            try:
                rec = loads(line)
            except orjson.JSONDecodeError:
                continue  # (the loading pass stopped before any such line: the file changed)
            if not isinstance(rec, dict):
                continue
            kind = rec.get("k")
            if kind == "open":
                self._start(rec.get("c", -1))
            elif kind == "in":
                st = self._take(rec.get("c", -1))
                if st is None:
                    continue
                try:
                    t = int(rec.get("t", 0))
                    frame = _frame_of(rec)
                except (ValueError, TypeError) as exc:
                    self._report(f"{_bad_record(self.path, member, n0 + k, exc)}; skipped")
                    frame = None
                size = len(line)
                st.buf.append((t, frame, size, file, member, n0 + k))
                buffered += size
        self.buffered += buffered
        if self.buffered > self.limit:
            self._shed()
        return True

    def _take(self, c: Any) -> _Stream | None:
        """The stream a frame of connection ``c`` goes to (the frame counted), or None when no
        stream takes it (no such connection here, all its frames given, or it reads on its own)."""
        st = self.active.get(c)
        if st is None:
            st = self._start(c)
        if st is None or st.left <= 0:
            return None
        st.left -= 1
        return None if st.detached else st

    def _whole(self, line: bytes, file: int, member: int, n: int) -> str | bytes | None:
        """The frame of a line in our writer's form whose frame is not a plain string field at
        its end: read whole (None, reported, when it is not valid)."""
        try:
            rec = orjson.loads(line)
            frame = _frame_of(rec)
        except (ValueError, TypeError) as exc:
            self._report(f"{_bad_record(self.exchange.series[file], member, n, exc)}; skipped")
            return None
        return frame

    def _start(self, c: Any) -> _Stream | None:
        """The next connection numbered ``c`` (an ``open``, or a frame of a ``c`` not open)."""
        queue = self.queues.get(c)
        st = queue.popleft() if queue else None
        if st is None:
            self.active.pop(c, None)
        else:
            self.active[c] = st
        return st

    def _shed(self) -> None:
        """Over the limit: the largest buffers are dropped (their connections read on their own)."""
        for st in sorted(self.streams.values(), key=lambda s: -len(s.buf)):
            if self.buffered <= self.limit // 2 or not st.buf:
                break
            _, _, _, file, member, n = st.buf[0]
            st.detached = True
            st.resume = (file, member, n)
            for entry in st.buf:
                self.buffered -= entry[2]
            st.buf.clear()

    def _next_chunk(self) -> tuple[int, int, list[bytes]] | None:
        while not self.done:
            if self.chunks is not None:
                try:
                    item = next(self.chunks, None)
                except OSError as exc:  # changed since it was loaded
                    self._report(f"{self.path}: cannot be read while replaying: {exc}")
                    item = None
                if item is not None and item[0] <= self.stop[0]:
                    return item  # type: ignore[no-any-return]
                self.chunks.close()
                self.chunks = None
                for err in self.raw_errors:
                    self._report(str(err))
            self.file += 1
            if self.file >= len(self.exchange.series):
                self.done = True
                break
            self.path = self.exchange.series[self.file]
            self.stop = self.exchange.stops.get(self.path, (0, 0))
            self.raw_errors = []
            try:
                self.chunks = _iter_chunks(Path(self.path), self.raw_errors, 0)
            except OSError as exc:
                self._report(f"{self.path}: cannot be read while replaying: {exc}")
        return None

    def _report(self, message: str) -> None:
        _report(self.errors, message)


class _CaptureFile:
    """One cryptofeed capture file's frames of one exchange, read forward line by line."""

    def __init__(self, path: Path, exchange: str, served: dict[str, str | None], errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        self.exchange = exchange
        self.served = served  # the exchange of each connection URL in the file (from loading)
        self.count = 0
        self.last_ns = 0
        self.ordered = True  # its frames are in receipt order (else sorted when read)

    def note(self, t_ns: int) -> None:
        self.count += 1
        if t_ns < self.last_ns:
            self.ordered = False
        self.last_ns = max(self.last_ns, t_ns)

    def frames(self) -> Iterator[Frame]:
        if not self.ordered:  # rare: only this file's frames are held, to sort them
            return iter(sorted(self._read(), key=lambda fr: fr[0]))
        return self._read()

    def _read(self) -> Iterator[Frame]:
        try:
            yield from self._lines()
        except OSError as exc:  # changed since it was loaded
            message = f"{self.path}: cannot be read while replaying: {exc}"
            log.error("replay: %s", message)
            self.errors.append(message)

    def _lines(self) -> Iterator[Frame]:
        """The same reading as :func:`_load_cryptofeed`, keeping this exchange's frames."""
        current: str | None = None
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                line = raw.rstrip("\n")
                if not line:
                    continue
                m = _CONNECT.match(line)
                if m:
                    current = self.served.get(m.group(1))
                    if current is None:
                        return
                    continue
                if line.startswith("configuration: "):
                    continue
                if current is not None and _SENT.match(line):
                    continue
                if _HTTP.match(line):
                    continue
                m = _RECV.match(line)
                if m and current is not None and current == self.exchange:
                    yield _ns(m.group(1)), m.group(2)


class _CaptureFrames(RecordedFrames):
    """An exchange's connections captured by cryptofeed, merged into one in receipt order: the
    files are read forward together (a merge of their streams, the earlier file first on a tie)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[_CaptureFile] = []

    def add(self, part: _CaptureFile) -> None:
        self.files.append(part)

    def note(self, t_ns: int) -> None:
        raise AssertionError("counted by its files")

    def settle(self) -> None:
        self.count = sum(f.count for f in self.files)
        self.last_ns = max((f.last_ns for f in self.files), default=0)

    def __iter__(self) -> Iterator[Frame]:
        return heapq.merge(*(f.frames() for f in self.files), key=lambda fr: fr[0])



@dataclass
class RecordedConnection:
    url: str
    open_ns: int
    frames: RecordedFrames = field(default_factory=RecordedFrames)
    close_ns: int | None = None
    sent: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.frames, RecordedFrames):  # a plain list of (ns, frame)
            self.frames = RecordedFrames(self.frames)


@dataclass
class RecordedHttp:
    method: str
    url: str
    t_ns: int
    t0_ns: int | None = None  # when the request was sent (aggcore recordings)
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    used: bool = False


@dataclass
class ExchangeData:
    name: str
    connections: list[RecordedConnection] = field(default_factory=list)
    http: list[RecordedHttp] = field(default_factory=list)
    header: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)  # its aggcore recording files, in order
    series_frames: list[_SeriesFrames] = field(default_factory=list)  # their connections, as met
    open_connections: dict[int, RecordedConnection] = field(default_factory=dict)  # while loading
    #: the last record the loading pass read of each file (block offset, line): the end of what replays
    stops: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class ReplayData:
    """Everything loaded from the PATHs, by exchange, plus the problems found reading them."""

    exchanges: dict[str, ExchangeData] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def exchange(self, name: str) -> ExchangeData:
        data = self.exchanges.get(name)
        if data is None:
            data = self.exchanges[name] = ExchangeData(name)
        return data

    def span(self) -> tuple[int, int]:
        """First and last recorded time (ns)."""
        first, last = _FOREVER, 0
        for ex in self.exchanges.values():
            for c in ex.connections:
                first = min(first, c.open_ns)
                last = max(last, c.open_ns, c.frames.last_ns, c.close_ns or 0)
            for h in ex.http:
                first = min(first, h.t_ns)
                last = max(last, h.t_ns)
        if first == _FOREVER:
            first = last = 0
        return first, last

    def frames(self) -> int:
        return sum(len(c.frames) for ex in self.exchanges.values() for c in ex.connections)


# -- loading ------------------------------------------------------------------------------------------


def _domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else host


def _exchange_for(url: str, filename: str, registry: "PluginRegistry") -> str | None:
    """Which installed exchange a cryptofeed capture belongs to: by the URL's domain, then by the
    file name's prefix (``CRYPTO.COM.0`` -> ``cryptocom``)."""
    domain = _domain(url)
    if domain:
        for name, cls in registry.connectors.items():
            urls = [getattr(cls, "ws_url", ""), getattr(cls, "rest_url", "")]
            if any(u and _domain(u) == domain for u in urls):
                return name
    prefix = re.split(r"\.(?:ws|http)\.|\.\d+$", filename, maxsplit=1)[0]
    key = prefix.replace(".", "").lower()
    return key if key in registry.connectors else None


_SENT = re.compile(r"^(\S+) <- (\d+(?:\.\d+)?): (.*)$", re.S)
_RECV = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.S)
_HTTP = re.compile(r"^(\S+) -> (\d+(?:\.\d+)?): (.*)$", re.S)
_CONNECT = re.compile(r"^(\S+) <-> (\d+(?:\.\d+)?)$")


def _ns(seconds: str) -> int:
    whole, _, frac = seconds.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _load_cryptofeed(path: Path, data: ReplayData, registry: "PluginRegistry", merged: dict[str, RecordedConnection]) -> None:
    """Index one capture file: its connections, HTTP records and how many frames it holds (the
    frames themselves are read again, forward, while replaying)."""
    conn: RecordedConnection | None = None
    exchange: str | None = None
    served: dict[str, str | None] = {}  # connection URL -> exchange, for the replay's reader
    parts: dict[str, _CaptureFile] = {}
    part: _CaptureFile | None = None
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip("\n")
            if not line:
                continue
            m = _CONNECT.match(line)
            if m:
                exchange = served[m.group(1)] = _exchange_for(m.group(1), path.name, registry)
                if exchange is None:
                    data.errors.append(f"{path}: no installed exchange plugin serves {m.group(1)}; file skipped")
                    return
                ex = data.exchange(exchange)
                ex.files.append(str(path))
                # cryptofeed opens a connection per channel, aggcore per group of symbols: one
                # exchange's captured connections are merged into one, in receipt order
                conn = merged.get(exchange)
                if conn is None:
                    conn = merged[exchange] = RecordedConnection(m.group(1), _ns(m.group(2)), frames=_CaptureFrames(), source=str(path))
                    ex.connections.append(conn)
                else:
                    conn.open_ns = min(conn.open_ns, _ns(m.group(2)))
                part = parts.get(exchange)
                if part is None:
                    part = parts[exchange] = _CaptureFile(path, exchange, served, data.errors)
                    assert isinstance(conn.frames, _CaptureFrames)
                    conn.frames.add(part)
                continue
            if line.startswith("configuration: "):
                continue
            m = _SENT.match(line)
            if m and conn is not None:
                continue  # what the capturing client sent; our connector sends its own
            m = _HTTP.match(line)
            if m:
                exchange = _exchange_for(m.group(1), path.name, registry)
                if exchange is None:
                    data.errors.append(f"{path}: line {n}: no installed exchange plugin serves {m.group(1)}; skipped")
                    continue
                ex = data.exchange(exchange)
                if str(path) not in ex.files:
                    ex.files.append(str(path))
                ex.http.append(RecordedHttp("GET", m.group(1), _ns(m.group(2)), body=m.group(3)))
                continue
            m = _RECV.match(line)
            if m and conn is not None and part is not None:
                part.note(_ns(m.group(1)))
                continue
            data.errors.append(f"{path}: line {n}: not a cryptofeed capture line: {line[:80]!r}")


def _load_aggcore(path: Path, data: ReplayData) -> None:
    try:
        rf = read_recording(path)
    except RecordingError as exc:
        data.errors.append(str(exc))
        return
    ex = data.exchange(rf.exchange)
    ex.files.append(str(path))
    ex.series.append(str(path))
    if ex.header is None:
        ex.header = rf.header
    seen = {(h.t_ns, h.url) for h in ex.http}
    for rec in rf.header.get("bootstrap") or []:
        key = (int(rec.get("t", 0)), str(rec.get("url", "")))
        if key not in seen:
            ex.http.append(_http_record(rec))
            seen.add(key)
    conns = ex.open_connections  # a connection may go on over several files of the series
    first = len(ex.series) - 1
    at = (0, 0)
    header = True
    chunks = _iter_chunks(path, rf.errors)
    for member, n0, lines in chunks:
        for k, line in enumerate(lines):
            if not line:
                continue
            if header:
                header = False  # read by read_recording
                continue
            n = n0 + k
            # the fast path: a frame line as our writer makes it, {"t":<digits>,"k":"in","c":<digits>,...}:
            # only where it starts is read here (its frame is parsed when the replay reaches it)
            fast = _fast_in(line)
            if fast is not None:
                at = (member, n)
                t, c, _ = fast
                conn = conns.get(c)
                if conn is None:  # a connection opened in an earlier file
                    frames = _SeriesFrames(ex, c, first, member, n, data.errors)
                    ex.series_frames.append(frames)
                    conn = conns[c] = RecordedConnection("", t, frames=frames, source=str(path))
                    ex.connections.append(conn)
                conn.frames.note(t)
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rf.errors.append(_bad_record(path, member, n, exc))
                break
            if not isinstance(rec, dict):
                rf.errors.append(_bad_record(path, member, n, "not an object"))
                break
            at = (member, n)
            _index_record(data, ex, path, first, member, n, rec, seen)
        else:
            continue
        chunks.close()  # a bad record ends the file, as a damaged block does
        break
    ex.stops[str(path)] = at  # the replay's readers read no further than this pass did
    for err in rf.errors:
        data.errors.append(str(err))


def _index_record(
    data: ReplayData, ex: ExchangeData, path: Path, first: int, member: int, n: int, rec: dict[str, Any], seen: set[tuple[int, str]]
) -> None:
    conns = ex.open_connections
    kind = rec.get("k")
    t = int(rec.get("t", 0))
    if kind == "in":
        conn = conns.get(rec.get("c", -1))
        if conn is None:  # a connection opened in an earlier file
            frames = _SeriesFrames(ex, rec.get("c", -1), first, member, n, data.errors)
            ex.series_frames.append(frames)
            conn = conns[rec.get("c", -1)] = RecordedConnection("", t, frames=frames, source=str(path))
            ex.connections.append(conn)
        if "d" not in rec:
            base64.b64decode(rec.get("b", ""))  # a bad frame is found here, as before
        conn.frames.note(t)
    elif kind == "open":
        frames = _SeriesFrames(ex, rec.get("c", -1), first, member, n, data.errors)
        ex.series_frames.append(frames)
        conn = conns[rec.get("c", -1)] = RecordedConnection(str(rec.get("url", "")), t, frames=frames, source=str(path))
        ex.connections.append(conn)
    elif kind == "close":
        conn = conns.get(rec.get("c", -1))
        if conn is not None and rec.get("by", "server") == "server":
            conn.close_ns = t  # aggcore's own closes are not replayed: the connector decides again
    elif kind == "http":
        key = (t, str(rec.get("url", "")))
        if key not in seen:
            ex.http.append(_http_record(rec))
            seen.add(key)
    elif kind == "lost":
        data.errors.append(f"{path}: the recorder lost {rec.get('n')} records at {t} (its buffer was full)")


def _http_record(rec: dict[str, Any]) -> RecordedHttp:
    return RecordedHttp(
        str(rec.get("m", "GET")),
        str(rec.get("url", "")),
        int(rec.get("t", 0)),
        int(rec["t0"]) if rec.get("t0") is not None else None,
        status=int(rec.get("status", 0) or 0),
        body=str(rec.get("d", "")),
        headers=dict(rec.get("headers") or {}),
        error=rec.get("error"),
    )


def load_replay(paths: Iterable[str | Path], registry: "PluginRegistry") -> ReplayData:
    """Read every PATH (files or directories; aggcore recordings or cryptofeed captures)."""
    data = ReplayData()
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"{p}: no such file or directory")
    merged: dict[str, RecordedConnection] = {}
    ours = sorted((f for f in files if is_recording(f)), key=lambda f: f.name)  # each series in order
    for f in ours:
        _load_aggcore(f, data)
    for f in files:
        if f in ours:
            continue
        try:
            with f.open("rb") as fh:
                head = fh.read(4096)
            head.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            data.errors.append(f"{f}: neither an aggcore recording nor a cryptofeed capture (offset 0); skipped")
            continue
        _load_cryptofeed(f, data, registry, merged)
    for ex in data.exchanges.values():
        ex.connections.sort(key=lambda c: c.open_ns)
        for c in ex.connections:
            if isinstance(c.frames, _CaptureFrames):
                c.frames.settle()  # merged captures: replayed in receipt order
        ex.http.sort(key=lambda h: h.t_ns)
    return data


# -- serving a recording to a connector -----------------------------------------------------------------


class _Cursor:
    """Where a recorded connection's replay is: its frames read forward, with the next one
    (``head``) read ahead. A connection aggcore closed and reopened carries on with it."""

    __slots__ = ("it", "_head", "_started")

    def __init__(self, frames: Iterable[Frame]) -> None:
        self.it: Iterator[Frame] = iter(frames)  # a generator: nothing is read before the first frame
        self._head: Frame | None = None
        self._started = False

    @property
    def head(self) -> Frame | None:
        if not self._started:
            self._started = True
            self._head = next(self.it, None)
        return self._head

    def advance(self) -> None:
        self._head = next(self.it, None)


class ReplayWs:
    """A recorded connection, as the connector's WebSocket: frames at their recorded times,
    read from the recording as the replay reaches them."""

    def __init__(
        self,
        conn: RecordedConnection,
        clock: RecordedClock,
        window: tuple[int, int],
        shift: int = 0,
        cursor: _Cursor | None = None,
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.window = window
        self.shift = shift  # opened this much later than recorded: its whole timeline moves with it
        self.cursor = cursor if cursor is not None else _Cursor(conn.frames)  # the next frame
        self.closed = False
        self.server_closed = False  # ended where the recording says the exchange closed it
        self._closed_fut: asyncio.Future[None] | None = None

    async def __aiter__(self) -> Any:
        clock = self.clock
        end = self.window[1]
        shift = self.shift
        if clock.first_frame_wall is None:
            clock.first_frame_wall = time.perf_counter()
        cursor = self.cursor
        frames = cursor.it
        head = cursor.head
        while head is not None:
            t, frame = head
            if t > end:
                break
            t += shift
            if t > clock.now_ns and not clock.advance(t):
                await clock.sleep_until(t)
            if self.closed:
                return
            head = cursor._head = next(frames, None)  # read ahead (kept for a resumed connection)
            yield frame
        clock.last_frame_wall = time.perf_counter()  # the last frame was handled
        if self.conn.close_ns is not None and self.conn.close_ns <= end:
            await clock.sleep_until(self.conn.close_ns + shift)
            self.server_closed = True
            return
        # the recording ends with this connection open: it stays open until the replay ends
        self._closed_fut = asyncio.get_running_loop().create_future()
        if not self.closed:
            await self._closed_fut

    async def send(self, frame: Any) -> None:
        self.conn.sent += 1  # what the connector sends is not compared with the recording

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(None)

    async def ping(self, data: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(0.0)
        return fut


class _ReplayOpen:
    def __init__(self, source: "ExchangeReplay", url: str) -> None:
        self.source = source
        self.url = url
        self.ws: ReplayWs | None = None

    async def __aenter__(self) -> ReplayWs:
        conn = self.source.take_connection(self.url)
        clock = self.source.clock
        if conn is None:
            resumed = self.source.resumable.pop(0) if self.source.resumable else None
            if resumed is None:  # the recording has no more connections: this one never opens
                await asyncio.get_running_loop().create_future()
                raise AssertionError("unreachable")
            # aggcore closed a connection the exchange kept open (a resync, a stale feed): the
            # new one carries on with the recorded stream from now on; what was sent while it
            # was closed is lost, as it would be live
            old, shift, cursor = resumed
            while (head := cursor.head) is not None and head[0] + shift <= clock.now_ns:
                cursor.advance()
            self.ws = ReplayWs(old, clock, self.source.window, shift, cursor)
            return self.ws
        await clock.sleep_until(conn.open_ns)
        # a connector that opens it later than recorded (its reconnect backoff drew a longer
        # wait) gets the connection's traffic shifted by the delay, so frames and the answers
        # to its REST requests keep their recorded order
        shift = clock.now_ns - conn.open_ns
        self.source.shift = shift
        self.ws = ReplayWs(conn, clock, self.source.window, shift, _Cursor(self.source.frames_of(conn)))
        return self.ws

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ws = self.ws
        if ws is not None and not ws.server_closed:
            self.source.resumable.append((ws.conn, ws.shift, ws.cursor))
        return None


def _path_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query)))


class ExchangeReplay(httpx.AsyncBaseTransport):
    """One exchange's recorded traffic: its WebSocket opener and its HTTP transport."""

    def __init__(self, data: ExchangeData, clock: RecordedClock, window: tuple[int, int]) -> None:
        self.data = data
        self.clock = clock
        self.window = window
        self.unused = list(data.connections)
        self.unanswered: list[str] = []
        self.shift = 0  # how late the latest connection opened against its recording
        #: connections aggcore closed while the recording kept them open (with their shift)
        self.resumable: list[tuple[RecordedConnection, int, _Cursor]] = []
        self.reader: _SeriesReader | None = None

    def frames_of(self, conn: RecordedConnection) -> Iterable[Frame]:
        """A recorded connection's frames for this replay: the connections of a series of aggcore
        recording files share one reader (each block is read once for all of them); a series of
        one connection reads it directly (the same frames, a little faster)."""
        frames = conn.frames
        if isinstance(frames, _SeriesFrames) and frames.exchange is self.data and len(self.data.series_frames) > 1:
            if self.reader is None:
                self.reader = _SeriesReader(self.data, frames.errors)
            if id(frames) in self.reader.streams:
                return self.reader.stream(frames)
        return frames

    def take_connection(self, url: str) -> RecordedConnection | None:
        key = _path_key(url)[0]
        for i, conn in enumerate(self.unused):
            if conn.url and _path_key(conn.url)[0] == key:
                return self.unused.pop(i)
        return self.unused.pop(0) if self.unused else None

    def opener(self, url: str, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        return _ReplayOpen(self, url)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.rstrip("/")
        query = dict(parse_qsl(request.url.query.decode() if isinstance(request.url.query, bytes) else str(request.url.query)))
        best: tuple[int, RecordedHttp] | None = None
        for rec in self.data.http:
            if rec.used or rec.method != request.method:
                continue
            parts = urlsplit(rec.url)
            if parts.path.rstrip("/") != path:
                continue
            rquery = dict(parse_qsl(parts.query))
            score = sum(1 for k, v in query.items() if rquery.get(k) == v) - 10 * sum(
                1 for k, v in rquery.items() if k not in ("limit", "depth", "sz") and query.get(k) != v
            )
            if score >= 0 and (best is None or score > best[0]):
                best = (score, rec)
        if best is None:
            what = f"{request.method} {request.url.path}" + (f"?{request.url.query.decode()}" if request.url.query else "")
            self.unanswered.append(what)
            log.warning("replay %s: the recording cannot answer %s", self.data.name, what)
            return httpx.Response(
                404, json={"error": f"the recording has no (unused) response to {what}"}, request=request
            )
        rec = best[1]
        rec.used = True
        due = rec.t_ns
        if rec.t0_ns is not None:  # asked later than recorded: answered as much later
            due = max(due, self.clock.now_ns + (rec.t_ns - rec.t0_ns))
        await self.clock.sleep_until(due)
        if rec.error is not None:
            raise httpx.ConnectError(f"recorded: {rec.error}", request=request)
        return httpx.Response(rec.status or 200, headers=rec.headers, content=rec.body.encode(), request=request)


# -- running a replay ----------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    frames: int
    seconds: float  # recorded time replayed
    wall_s: float  # machine time it took
    frames_wall_s: float  # machine time from the first frame to the last one handled
    errors: list[str]
    unanswered: dict[str, list[str]]


def parse_time(text: str, start_ns: int) -> int:
    """``--from``/``--to``: ISO 8601 (``2021-10-12T00:28:35Z``), seconds since the epoch, or
    ``+SECONDS`` after the recording's first record."""
    text = text.strip()
    try:
        if text.startswith("+"):
            return start_ns + int(float(text[1:]) * 1e9)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return _ns(text) if "." in text else int(text) * 1_000_000_000
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1e9)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a time: use ISO 8601, seconds since the epoch or +SECONDS") from exc


async def replay(
    config: "AppConfig",
    registry: "PluginRegistry",
    data: ReplayData,
    *,
    speed: float | None = None,
    start: int | None = None,
    end: int | None = None,
    tail_s: float = 1.0,
    sinks: list[Any] | None = None,
    on_started: Callable[["Aggregator"], None] | None = None,
) -> ReplayResult:
    """Replay ``data`` through the connectors, analyzers and sinks of ``config``.

    Sink output before ``start`` (ns) is not produced (the books still warm up on it, as fast as
    possible); the replay stops at ``end`` (or ``tail_s`` after the last record)."""
    from .aggregator import Aggregator

    first, last = data.span()
    window = (first, end if end is not None else last)
    clock = RecordedClock(first - 1_000_000, speed=speed)  # 1 ms before the first record
    if start is not None:
        clock.fast_until_ns = start
    enabled = [n for n, s in config.exchanges.items() if s.enabled]
    missing = [n for n in enabled if n not in data.exchanges]
    errors_before = len(data.errors)  # the readers add what they find while replaying
    not_recorded = [f"exchanges.{name}: the recording has no traffic of {name}; its books stay out of the view" for name in missing]
    for name in data.exchanges:
        if name not in enabled:
            log.info("replay: %s is in the recording but not enabled in the config; ignored", name)
    sources = {n: ExchangeReplay(data.exchanges.get(n) or ExchangeData(n), clock, window) for n in enabled}
    clients: list[httpx.AsyncClient] = []

    def io(name: str) -> "tuple[httpx.AsyncClient | None, WsOpener | None]":
        src = sources[name]
        client = httpx.AsyncClient(transport=src)
        clients.append(client)
        return client, src.opener

    state = random.getstate()
    random.seed(0)  # backoff jitter: the same recording takes the same path
    # every connector gets the recording's transport; the shared client is never used (and,
    # unlike a default one, builds no TLS context)
    unused = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(599)))
    clients.append(unused)
    agg = Aggregator(config, registry=registry, http=unused, sinks=sinks, clock=clock, connector_io=io)
    if start is not None:
        agg.hub.since = start / 1e9
    t0 = time.perf_counter()
    try:
        await agg.start()
        if on_started is not None:
            on_started(agg)
        runners = agg.hub.sinks

        def blocked() -> bool:
            # a sink still writing holds time back: what it reports (its last write, its
            # drops) then never depends on how fast this machine writes
            for r in runners:
                if r.opened and not r.idle:
                    return True
            return False

        stop_at = window[1] + int(tail_s * 1e9)
        await clock.run(stop_at, blocked=blocked)
        await agg.stop()
    finally:
        if agg.started:
            await agg.stop()
        for client in clients:
            await client.aclose()
        random.setstate(state)
    return ReplayResult(
        frames=data.frames(),
        seconds=(window[1] - window[0]) / 1e9,
        wall_s=time.perf_counter() - t0,
        frames_wall_s=(clock.last_frame_wall or 0.0) - (clock.first_frame_wall or 0.0),
        errors=[*data.errors[:errors_before], *not_recorded, *data.errors[errors_before:]],
        unanswered={n: s.unanswered for n, s in sources.items() if s.unanswered},
    )
