"""The ``file`` sink: JSON Lines, rotation by size and/or time, optional gzip of rotated files.

Line integrity: each batch is encoded to complete lines (``Event.to_json() + b"\\n"``) and
handed to the kernel with a single ``write`` on a file opened with ``O_APPEND``, so a crash of
the process (or a kill) never leaves half a line behind. When a write fails or is short (disk
full, file size limit, I/O error), the file is cut back (``ftruncate``) to the end of its last
complete line before the error is raised; if even that fails, the next write repairs it first
(and fails, counted, while it cannot). Opening a file whose last line is torn (a power loss)
cuts that fragment off too. So the file never holds a broken line in the middle, and lines
written after the disk frees up are whole. The events of a failed batch that were written
before the failure are kept and reported as delivered (:class:`~aggcore.errors.SinkError`
``delivered``); the rest are counted as dropped. The file is assumed to be written by this
sink alone. Set ``fsync: true`` to have every batch on disk before the next one is taken
(slower, survives power loss up to the last batch).

Rotation: before a batch would push the file past ``rotate_bytes``, or once the file has
been open ``rotate_seconds`` (checked when events are written), the current file is renamed to
``<stem>-<UTC time>-<seq><suffix>`` next to it (``events-20240101T120000Z-0001.jsonl``) and
a new one is started; with ``gzip_rotated`` the rotated file becomes ``....jsonl.gz`` (written
to a temporary name, then renamed, so a reader never sees half a gzip file).

All file I/O runs in a worker thread; it never blocks the event loop.
"""

from __future__ import annotations

import errno
import gzip
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import anyio.to_thread
from pydantic import Field

from ...errors import ConfigError, SinkError
from ...sink import Event, Sink, SinkConfig

__all__ = ["FileSink", "FileSinkConfig"]

log = logging.getLogger("aggcore.sink.file")


class FileSinkConfig(SinkConfig):
    """``sinks.file``."""

    path: Path = Field(Path("aggcore-events.jsonl"), description="the JSON Lines file written to (appended to if it exists)")
    rotate_bytes: int | None = Field(
        None, ge=1, description="rotate before the file would grow past this many bytes (None: no size rotation)"
    )
    rotate_seconds: float | None = Field(
        None, gt=0, description="rotate once the file has been open this long (None: no time rotation)"
    )
    gzip_rotated: bool = Field(False, description="gzip rotated files (<name>.gz) and remove the uncompressed copy")
    fsync: bool = Field(False, description="fsync after every batch (durable across power loss, slower)")


class FileSink(Sink):
    """Events as JSON Lines in a file."""

    name = "file"
    Config = FileSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, FileSinkConfig) else FileSinkConfig.model_validate(config.model_dump())
        self.path = Path(self.cfg.path)
        self._fd: int | None = None
        self._size = 0
        self._opened_at = 0.0
        self._seq = 0
        self._closed = False
        self._dirty = False  # a failed write left bytes after _size that could not be cut off yet
        self._regular = True  # a regular file (FIFOs and devices are written, never cut back)
        self.rotated: list[Path] = []  # rotated files, oldest first (this process only)
        self.bytes_written = 0
        self._io = threading.Lock()  # close() may run while a write is still in its thread

    # -- lifecycle --------------------------------------------------------------------------------------
    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open_sync)

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if self._closed:
            self.dropped_events += len(events)
            return
        lines = [e.to_json() + b"\n" for e in events]
        await anyio.to_thread.run_sync(self._write_sync, lines)

    async def close(self) -> None:
        self._closed = True
        await anyio.to_thread.run_sync(self._close_sync)

    # -- blocking parts (worker thread) -------------------------------------------------------------------
    def _open_sync(self) -> None:
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if not directory.is_dir():
            raise ConfigError(f"sinks.file.path: directory {str(directory)!r} does not exist (path {str(self.path)!r})")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError(f"sinks.file.path: directory {str(directory)!r} is not writable (path {str(self.path)!r})")
        try:
            self._open_fd()
        except OSError as exc:
            raise ConfigError(f"sinks.file.path: cannot open {str(self.path)!r} for appending: {exc.strerror or exc}") from exc

    def _open_fd(self) -> None:
        """Open (append) and cut a torn last line left by an earlier power loss or failure."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)  # a FIFO or a device cannot be cut back
            size = st.st_size if self._regular else 0
            whole = _end_of_last_line(fd, size)
            if whole < size:
                os.ftruncate(fd, whole)
                log.warning("file sink: %s ended in a torn line; cut %d bytes back to its last complete line", self.path, size - whole)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._size = whole
        self._dirty = False
        self._opened_at = time.monotonic()

    def _write_sync(self, lines: list[bytes]) -> None:
        with self._io:
            if self._closed:
                self.dropped_events += len(lines)
                return
            kept = 0  # events of this batch written whole (and kept) before a failure
            try:
                if self._fd is None:  # a rotation failed halfway: open the file again
                    self._open_fd()
                kept = self._write_locked(lines)
            except OSError as exc:
                kept = exc.written if isinstance(exc, _Partial) else 0
                what = errno.errorcode.get(exc.errno or 0, "error") if exc.errno else type(exc).__name__
                raise SinkError(
                    f"cannot write {str(self.path)!r}: {exc.strerror or exc} ({what}); "
                    f"{len(lines) - kept} of {len(lines)} events lost, the file ends with its last complete line"
                    + (" (cutting it back failed: repaired before the next write)" if self._dirty else ""),
                    delivered=kept,
                    sink=self.name,
                ) from exc

    def _write_locked(self, lines: list[bytes]) -> int:
        """Write every line; return how many. An error is raised as :class:`_Partial`, whose
        ``written`` says how many of the batch's first events were written whole and kept."""
        limit = self.cfg.rotate_bytes
        written = 0
        try:
            if self._due_by_time():
                self._rotate()
            if limit is None:
                self._append(b"".join(lines))
                return len(lines)
            chunk: list[bytes] = []
            chunk_size = 0
            for line in lines:  # split the batch at line boundaries so each file stays under the limit
                if self._size + chunk_size + len(line) > limit and self._size + chunk_size > 0:
                    if chunk:
                        self._append(b"".join(chunk))
                        written += len(chunk)
                        chunk, chunk_size = [], 0
                    self._rotate()
                chunk.append(line)
                chunk_size += len(line)
            if chunk:
                self._append(b"".join(chunk))
                written += len(chunk)
            return written
        except OSError as exc:
            raise _Partial(exc, written) from exc

    def _due_by_time(self) -> bool:
        limit = self.cfg.rotate_seconds
        return limit is not None and self._size > 0 and time.monotonic() - self._opened_at >= limit

    def _append(self, data: bytes) -> None:
        """Append whole lines, or leave the file as it was (cut back to ``_size``) and raise."""
        assert self._fd is not None
        if self._dirty and self._regular:  # an earlier failure could not cut its partial bytes: now or fail
            os.ftruncate(self._fd, self._size)
            self._dirty = False
        view = memoryview(data)
        try:
            while view:  # one write() for a regular file; a short write (disk full) loops, then raises
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
            if self.cfg.fsync:
                os.fsync(self._fd)
        except OSError:
            self._cut_back()
            raise
        self._size += len(data)
        self.bytes_written += len(data)

    def _cut_back(self) -> None:
        """After a failed or short write: the file ends with its last complete line again."""
        assert self._fd is not None
        if not self._regular:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._dirty = True
            log.error("file sink: cannot cut %s back to its last complete line (%s); retried before the next write", self.path, exc)

    def _rotated_name(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        while True:
            self._seq += 1
            name = self.path.with_name(f"{self.path.stem}-{stamp}-{self._seq:04d}{self.path.suffix}")
            if not name.exists() and not name.with_name(name.name + ".gz").exists():
                return name

    def _rotate(self) -> None:
        assert self._fd is not None
        if self.cfg.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None  # if what follows fails, the next write opens the file again
        target = self._rotated_name()
        os.replace(self.path, target)
        self._open_fd()
        if self.cfg.gzip_rotated:
            target = self._gzip(target)
        self.rotated.append(target)

    @staticmethod
    def _gzip(source: Path) -> Path:
        """``source`` gzipped; on failure (disk full) the uncompressed file stays, complete."""
        final = source.with_name(source.name + ".gz")
        tmp = source.with_name(source.name + ".gz.tmp")
        try:
            with source.open("rb") as src, gzip.open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, final)
        except OSError as exc:
            log.warning("file sink: cannot gzip %s (%s); kept uncompressed", source, exc)
            tmp.unlink(missing_ok=True)
            return source
        source.unlink()
        return final

    def _close_sync(self) -> None:
        with self._io:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)  # flush on shutdown: what was written is on disk when close returns
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


class _Partial(OSError):
    """An OSError from the middle of a batch: ``written`` events were written whole before it."""

    def __init__(self, exc: OSError, written: int) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.written = written


def _end_of_last_line(fd: int, size: int) -> int:
    """Offset just after the last ``\\n`` in the file (0 when there is none)."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        chunk = os.pread(fd, step, pos - step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0
