"""Recording raw exchange traffic: the file format, its writer and reader, and the I/O taps.

A recording is a directory of files, one series per exchange:
``<exchange>-<YYYYmmddTHHMMSSZ>-<NNNN>.jsonl.gz``. Each file is a sequence of complete gzip
members (``zcat`` reads the whole file); each member holds whole JSON lines. The first line of
every file is the header; every other line is one record::

    {"format": "aggcore-recording", "version": 1, "exchange": "binance",
     "aggcore": "0.1.0", "plugin": {"distribution": "aggcore-plugin-binance", "version": "0.1.0"},
     "created": "2026-12-01T14:26:00Z", "config": {...the exchange's section, secrets removed...},
     "symbols": [{"symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", ...}, ...],
     "bootstrap": [...the http records of the instrument list, repeated in every file...]}
    {"t": 1764599160123456789, "k": "open", "c": 0, "url": "wss://..."}
    {"t": ..., "k": "out", "c": 0, "d": "{\\"method\\":\\"SUBSCRIBE\\",...}"}     a frame sent
    {"t": ..., "k": "in", "c": 0, "d": "{\\"stream\\":...}"}                        a frame received
    {"t": ..., "k": "in", "c": 0, "b": "<base64>"}                                   a binary frame
    {"t": ..., "k": "close", "c": 0, "by": "server", "code": 1001, "reason": "..."}   (by: server | client)
    {"t": ..., "k": "http", "t0": ..., "m": "GET", "url": "https://...", "status": 200, "d": "...body..."}
    {"t": ..., "k": "http", "t0": ..., "m": "GET", "url": "...", "error": "ConnectTimeout: ..."}
    {"t": ..., "k": "lost", "n": 12}        records the recorder could not keep (its buffer was full)

``t`` is the receipt time in nanoseconds since the epoch (``t0``: when the request was sent);
``c`` numbers the connections of that exchange in the order they were opened. Files rotate by
size and age; a file is only ever appended whole gzip members (one ``write`` each), so after a
``kill -9`` every closed file is complete and the open one loses at most its last block.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import logging
import os
import time
import zlib
from collections.abc import Generator, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import httpx
import orjson

from .errors import ConfigError, RecordingError

if TYPE_CHECKING:
    from .config import AppConfig
    from .connector import Connector, WsOpener
    from .plugins import PluginRegistry

__all__ = [
    "FORMAT",
    "VERSION",
    "RecordingError",
    "Recorder",
    "RecordingFile",
    "header_meta",
    "is_recording",
    "read_header",
    "read_recording",
]

log = logging.getLogger("aggcore.recording")

FORMAT = "aggcore-recording"
VERSION = 1
_SUFFIX = ".jsonl.gz"


# -- reading ------------------------------------------------------------------------------------


@dataclasses.dataclass
class RecordingFile:
    """One file of an aggcore recording: its header, and its records (read lazily)."""

    path: Path
    header: dict[str, Any]
    errors: list[RecordingError] = dataclasses.field(default_factory=list)

    @property
    def exchange(self) -> str:
        return str(self.header.get("exchange", ""))

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record after the header. A damaged block ends the file: its error is appended
        to ``errors`` (file and offset) and the records before it are still yielded."""
        first = True
        for rec in _iter_lines(self.path, self.errors):
            if first:
                first = False
                continue
            yield rec


def is_recording(path: Path) -> bool:
    """Whether ``path`` is an aggcore recording file (by content: gzip with our header)."""
    try:
        with path.open("rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                return False
        return read_header(path) is not None
    except OSError:
        return False


def read_header(path: Path) -> dict[str, Any] | None:
    errors: list[RecordingError] = []
    for rec in _iter_lines(path, errors):
        if rec.get("format") == FORMAT:
            return rec
        return None
    return None


def read_recording(path: str | Path) -> RecordingFile:
    """Open one recording file; raises :class:`RecordingError` when it has no valid header."""
    p = Path(path)
    header = read_header(p)
    if header is None:
        raise RecordingError(f"{p}: not an aggcore recording (no header at offset 0)", path=str(p), offset=0)
    if int(header.get("version", 0)) > VERSION:
        raise RecordingError(f"{p}: recording format version {header.get('version')} is newer than this aggcore reads ({VERSION})", path=str(p), offset=0)
    return RecordingFile(p, header)


_IN_CHUNK = 64 * 1024  # compressed bytes read at a time
_OUT_CHUNK = 256 * 1024  # decompressed bytes made at a time
_HOLD_BYTES = 4 * 1024 * 1024  # a block up to this size (decompressed) is checked whole before its lines are given


def _block_error(path: str | Path, offset: int, what: str) -> RecordingError:
    """``<path>: <what>``, about the block at ``offset`` of a recording file."""
    return RecordingError(f"{path}: {what}", path=str(path), offset=offset)


def _bad_record(path: str | Path, offset: int, line: int, why: object) -> RecordingError:
    """A record line that cannot be read: its file, block and line number, and why."""
    return _block_error(path, offset, f"bad record in the block at offset {offset}, line {line}: {why}")


def _iter_chunks(path: Path, errors: list[RecordingError], start: int = 0) -> Generator[tuple[int, int, list[bytes]], None, None]:
    """The lines of a multi-member gzip file from the member at byte ``start``, streamed, in
    runs: (offset of their block, the line number in the block of the first, the lines; empty
    ones included, so that numbers count).

    A block is decompressed whole before its lines are given (a damaged block gives none), up to
    ``_HOLD_BYTES`` decompressed; the lines of a larger block are given as they are decompressed,
    so memory never holds more than that of a file, whatever its length. A damaged block ends the
    file: its error (file and offset) is appended to ``errors``."""
    with path.open("rb") as fh:
        if start:
            fh.seek(start)
        pending = b""  # compressed bytes not yet consumed
        offset = start  # file offset of pending[0]
        while True:
            if not pending:
                pending = fh.read(_IN_CHUNK)
                if not pending:
                    return
            member_start = offset
            d = zlib.decompressobj(wbits=31)
            held: list[bytes] = []
            held_size = 0
            streaming = False  # a block too large to hold: its lines go out as they come
            tail: list[bytes] = []  # (streaming) the start of a line not complete yet
            line_no = 0
            data = pending
            while True:
                try:
                    out = d.decompress(data, _OUT_CHUNK)
                except zlib.error as exc:
                    errors.append(_block_error(path, member_start, f"corrupt block at offset {member_start}: {exc}; the records before it were read"))
                    return
                made = len(out)
                if d.eof:
                    offset += len(data) - len(d.unused_data)
                    pending = d.unused_data
                else:
                    rest = d.unconsumed_tail
                    offset += len(data) - len(rest)
                    data = rest
                if not streaming:
                    held.append(out)
                    held_size += len(out)
                    if held_size > _HOLD_BYTES and not d.eof:
                        streaming = True
                        out = b"".join(held)
                        held = []
                if streaming and (d.eof or b"\n" in out):
                    buf = b"".join(tail) + out if tail else out
                    if d.eof:
                        lines, tail = buf.split(b"\n"), []
                    else:
                        cut = buf.rfind(b"\n")
                        lines, tail = buf[:cut].split(b"\n"), [buf[cut + 1 :]]
                    yield member_start, line_no + 1, lines
                    line_no += len(lines)
                elif streaming:
                    tail.append(out)
                if d.eof:
                    break
                if not data and made < _OUT_CHUNK:  # all taken in, nothing more to give out
                    data = fh.read(_IN_CHUNK)
                    if not data:
                        errors.append(
                            _block_error(path, member_start, f"truncated block at offset {member_start} (the file ends inside it); the records before it were read")
                        )
                        return
            if held:
                yield member_start, 1, b"".join(held).split(b"\n")


def _iter_raw(path: Path, errors: list[RecordingError], start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """The non-empty lines of a recording file (see :func:`_iter_chunks`), each as (offset of its
    block, its line number in the block, the line)."""
    for member_start, first, lines in _iter_chunks(path, errors, start):
        for n, line in enumerate(lines, first):
            if line:
                yield member_start, n, line


def _iter_records(path: Path, errors: list[RecordingError], start: int = 0) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """JSON records of a recording file, streamed, each with its block's offset and its line
    number in the block. A damaged block or a bad line ends the file (its error is appended)."""
    for member_start, n, line in _iter_raw(path, errors, start):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            errors.append(_bad_record(path, member_start, n, exc))
            return
        if not isinstance(rec, dict):
            errors.append(_bad_record(path, member_start, n, "not an object"))
            return
        yield member_start, n, rec


def _iter_lines(path: Path, errors: list[RecordingError]) -> Iterator[dict[str, Any]]:
    """JSON records of a multi-member gzip file, member by member, with offsets for errors."""
    for _, _, rec in _iter_records(path, errors):
        yield rec


def header_meta(config: "AppConfig", registry: "PluginRegistry", name: str) -> dict[str, Any]:
    """What a file header says about one exchange: versions and its config, secrets removed."""
    from . import __version__

    info = registry.provider_of("connector", name)
    section = config.exchanges[name].model_dump(mode="json", exclude={"api_key", "api_secret"})
    return {
        "aggcore": __version__,
        "plugin": {"distribution": info.distribution if info else None, "version": info.version if info else None},
        "config": {"exchanges": {name: section}, "aggregation": config.aggregation.model_dump(mode="json")},
    }


# -- writing ------------------------------------------------------------------------------------


class _SeriesWriter:
    """The files of one exchange: blocks of JSON lines, each written as one gzip member."""

    def __init__(self, directory: Path, exchange: str, *, rotate_bytes: int, rotate_s: float, level: int = 3) -> None:
        self.directory = directory
        self.exchange = exchange
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.level = level
        self.seq = 0
        self.fd: int | None = None
        self.path: Path | None = None
        self.size = 0
        self.opened_at = 0.0
        self.files: list[Path] = []
        self.bytes_written = 0

    def write_block(self, header: bytes, data: bytes) -> None:
        """Blocking (run in a worker thread): compress ``data`` and append it, rotating first."""
        if self.fd is not None and (self.size >= self.rotate_bytes or time.monotonic() - self.opened_at >= self.rotate_s):
            self.close()
        if self.fd is None:
            self._open(header)
        member = gzip.compress(data, compresslevel=self.level, mtime=0)
        self._write(member)

    def _open(self, header: bytes) -> None:
        self.seq += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = self.directory / f"{self.exchange}-{stamp}-{self.seq:04d}{_SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.size = 0
        self.opened_at = time.monotonic()
        self.files.append(self.path)
        self._write(gzip.compress(header, compresslevel=self.level, mtime=0))

    def _write(self, member: bytes) -> None:
        assert self.fd is not None
        view = memoryview(member)
        while view:  # one write in practice; a short write is completed, never left torn
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(member)
        self.bytes_written += len(member)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _ExchangeTap:
    """Records one connector's traffic into its series of files."""

    def __init__(self, recorder: "Recorder", connector: "Connector", meta: dict[str, Any]) -> None:
        self.recorder = recorder
        self.connector = connector
        self.name = connector.name
        self.meta = meta
        self.writer = _SeriesWriter(recorder.directory, self.name, rotate_bytes=recorder.rotate_bytes, rotate_s=recorder.rotate_s)
        self.block: list[bytes] = []
        self.block_size = 0
        self.pending: list[bytes] = []  # sealed blocks waiting for the writer
        self.pending_size = 0
        self.bootstrap: list[dict[str, Any]] = []
        self.header: bytes | None = None  # made when the first file opens (with the symbol table)
        self.started = False  # a first connection opened: HTTP records are no longer bootstrap
        self.connections = 0
        self.records = 0
        self.frames_in = 0
        self.frames_out = 0
        self.http_calls = 0
        self.lost = 0
        self._lost_unreported = 0

    # the hook points -------------------------------------------------------------------------
    def record(self, rec: dict[str, Any]) -> None:
        if not self.started and rec["k"] == "http":
            self.bootstrap.append(rec)  # before the first connection: the instrument list
            return
        if self.pending_size >= self.recorder.max_pending_bytes:
            self.lost += 1
            self._lost_unreported += 1
            return
        if self._lost_unreported:
            self._append({"t": rec["t"], "k": "lost", "n": self._lost_unreported})
            self._lost_unreported = 0
        self._append(rec)

    def frame_in(self, c: int, frame: str | bytes) -> None:
        """A received frame (the hot path: one formatted line, no intermediate dict)."""
        if self.pending_size >= self.recorder.max_pending_bytes:
            self.lost += 1
            self._lost_unreported += 1
            return
        t = time.time_ns()
        if self._lost_unreported:
            self._append({"t": t, "k": "lost", "n": self._lost_unreported})
            self._lost_unreported = 0
        if isinstance(frame, str):
            line = b'{"t":%d,"k":"in","c":%d,"d":%b}' % (t, c, orjson.dumps(frame))
        else:
            line = orjson.dumps({"t": t, "k": "in", "c": c, "b": base64.b64encode(frame).decode()})
        self.frames_in += 1
        self.block.append(line)
        self.block_size += len(line) + 1
        self.records += 1
        if self.block_size >= self.recorder.block_bytes:
            self.seal()

    def _append(self, rec: dict[str, Any]) -> None:
        line = orjson.dumps(rec)
        self.block.append(line)
        self.block_size += len(line) + 1
        self.records += 1
        if self.block_size >= self.recorder.block_bytes:
            self.seal()

    def seal(self) -> None:
        if not self.block:
            return
        data = b"\n".join(self.block) + b"\n"
        self.block = []
        self.block_size = 0
        self.pending.append(data)
        self.pending_size += len(data)
        self.recorder._wake.set()

    def opened(self, url: str) -> int:
        self.started = True
        c = self.connections
        self.connections += 1
        self.record({"t": time.time_ns(), "k": "open", "c": c, "url": url})
        return c

    def _header(self) -> bytes:
        symbols = self.connector.symbols
        return orjson.dumps(
            {
                **self.meta,
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "symbols": [_instrument(i) for i in symbols.by_symbol.values()] if symbols is not None else None,
                "bootstrap": self.bootstrap,
            },
            default=str,
        ) + b"\n"

    def flush_pending(self) -> list[bytes]:
        blocks, self.pending, self.pending_size = self.pending, [], 0
        return blocks


def _instrument(inst: Any) -> dict[str, Any]:
    out = dataclasses.asdict(inst)
    if not out.get("extra"):
        out.pop("extra", None)
    return out


class _RecordedWs:
    """A WebSocket client connection whose frames in and out are recorded (everything else is
    the wrapped connection's)."""

    def __init__(self, ws: Any, tap: _ExchangeTap, c: int) -> None:
        self._ws = ws
        self._tap = tap
        self._c = c

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def __aiter__(self) -> Any:
        c = self._c
        frame_in = self._tap.frame_in
        async for frame in self._ws:
            frame_in(c, frame)
            yield frame

    async def send(self, frame: Any) -> None:
        tap = self._tap
        if isinstance(frame, str):
            tap.record({"t": time.time_ns(), "k": "out", "c": self._c, "d": frame})
        else:
            tap.record({"t": time.time_ns(), "k": "out", "c": self._c, "b": base64.b64encode(bytes(frame)).decode()})
        tap.frames_out += 1
        await self._ws.send(frame)


class _RecordedOpen:
    def __init__(self, tap: _ExchangeTap, inner: "WsOpener", url: str, kwargs: dict[str, Any]) -> None:
        self.tap = tap
        self.cm = inner(url, **kwargs)
        self.url = url
        self.c = -1
        self.ws: Any = None

    async def __aenter__(self) -> Any:
        self.ws = await self.cm.__aenter__()
        self.c = self.tap.opened(self.url)
        return _RecordedWs(self.ws, self.tap, self.c)

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        # "server": the exchange closed it or it was lost (an input a replay reproduces);
        # "client": aggcore closed it (resync, stale feed, shutdown: a replay's connector decides)
        proto = getattr(self.ws, "protocol", self.ws)  # websockets keeps the close frames on its protocol
        rcvd = getattr(proto, "close_rcvd", None)
        sent = getattr(proto, "close_sent", None)
        still_open = getattr(getattr(proto, "state", None), "name", "") in ("OPEN", "CONNECTING")
        by_server = (rcvd is not None and bool(getattr(proto, "close_rcvd_then_sent", False))) or (
            rcvd is None and sent is None and not still_open
        )
        rec: dict[str, Any] = {"t": time.time_ns(), "k": "close", "c": self.c, "by": "server" if by_server else "client"}
        if rcvd is not None:
            rec["code"] = rcvd.code
            rec["reason"] = str(rcvd.reason)[:300]
        self.tap.record(rec)
        return await self.cm.__aexit__(et, exc, tb)


class _RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, tap: _ExchangeTap, inner: httpx.AsyncBaseTransport) -> None:
        self.tap = tap
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        t0 = time.time_ns()
        rec: dict[str, Any] = {"t": t0, "k": "http", "t0": t0, "m": request.method, "url": str(request.url)}
        try:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
        except Exception as exc:
            rec["t"] = time.time_ns()
            rec["error"] = f"{type(exc).__name__}: {exc}"
            self.tap.http_calls += 1
            self.tap.record(rec)
            raise
        rec["t"] = time.time_ns()
        rec["status"] = response.status_code
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "content-type")}
        if headers:
            rec["headers"] = headers
        rec["d"] = body.decode("utf-8", "replace")
        self.tap.http_calls += 1
        self.tap.record(rec)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recorder:
    """Records every connector's traffic into ``directory`` (see the module docstring).

    The aggregator asks it for each connector's I/O (``connector_io``) and attaches each
    connector; ``run()`` is the writer task (compression and file writes happen in a worker
    thread, never on the event loop); ``close()`` writes what is left.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        rotate_bytes: int = 256 * 1024 * 1024,
        rotate_s: float = 3600.0,
        block_bytes: int = 256 * 1024,
        flush_s: float = 1.0,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--record/--out {directory}: cannot create the directory: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise ConfigError(f"--record/--out {directory}: the directory is not writable")
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.block_bytes = block_bytes
        self.flush_s = flush_s
        self.max_pending_bytes = max_pending_bytes
        self.taps: dict[str, _ExchangeTap] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._wake = anyio.Event()
        self._lock = anyio.Lock()

    def describe(self, name: str, meta: dict[str, Any]) -> None:
        """Header fields of one exchange (versions, config without secrets)."""
        self._meta[name] = meta

    def connector_io(self, name: str, inner_ws: "WsOpener | None" = None) -> "tuple[httpx.AsyncClient, WsOpener]":
        """The HTTP client and WebSocket opener of connector ``name``: both record."""
        from .connector import ws_connect_default

        holder: dict[str, _ExchangeTap] = {}
        ws_inner: WsOpener = inner_ws or ws_connect_default

        def tap() -> _ExchangeTap:
            t = self.taps.get(name)
            if t is None:
                raise RuntimeError(f"recorder: connector {name!r} was not attached")
            holder["t"] = t
            return t

        class _LazyTransport(httpx.AsyncBaseTransport):
            def __init__(self) -> None:
                self.inner = httpx.AsyncHTTPTransport()

            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                return await _RecordingTransport(tap(), self.inner).handle_async_request(request)

            async def aclose(self) -> None:
                await self.inner.aclose()

        def opener(url: str, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
            return _RecordedOpen(tap(), ws_inner, url, kwargs)

        return httpx.AsyncClient(transport=_LazyTransport()), opener

    def attach(self, connector: "Connector") -> None:
        meta = {"format": FORMAT, "version": VERSION, "exchange": connector.name, **self._meta.get(connector.name, {})}
        self.taps[connector.name] = _ExchangeTap(self, connector, meta)

    async def run(self) -> None:
        """The writer task: every ``flush_s`` (or when a block fills) write the sealed blocks."""
        while True:
            with anyio.move_on_after(self.flush_s):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.flush(seal=True)

    async def flush(self, *, seal: bool, final: bool = False) -> None:
        async with self._lock:
            for tap in self.taps.values():
                if seal:
                    tap.seal()
                if not tap.started:
                    continue
                if tap.header is None:
                    # the first file waits (a little) for the symbol table its header carries: an
                    # exchange may load it over a WebSocket after the first connection opened
                    if tap.connector.symbols is None and tap.pending_size < 8 * 1024 * 1024 and not final:
                        continue
                    tap.header = tap._header()
                blocks = tap.flush_pending()
                if blocks:
                    await anyio.to_thread.run_sync(_write_blocks, tap.writer, tap.header, blocks)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.flush(seal=True, final=True)
            for tap in self.taps.values():
                tap.writer.close()

    def summary(self) -> str:
        """Where it wrote and how much."""
        parts = []
        for name, tap in self.taps.items():
            files = len(tap.writer.files)
            parts.append(
                f"{name}: {tap.frames_in} frames in, {tap.frames_out} out, {tap.http_calls} HTTP calls, "
                f"{tap.connections} connections, {files} file{'s' if files != 1 else ''}, "
                f"{tap.writer.bytes_written / 1e6:.2f} MB" + (f", {tap.lost} records LOST" if tap.lost else "")
            )
        total = sum(t.writer.bytes_written for t in self.taps.values())
        return f"recorded into {self.directory} ({total / 1e6:.2f} MB): " + "; ".join(parts)


def _write_blocks(writer: _SeriesWriter, header: bytes, blocks: list[bytes]) -> None:
    for data in blocks:
        writer.write_block(header, data)
