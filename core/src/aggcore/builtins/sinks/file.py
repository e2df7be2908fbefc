"""The ``file`` sink: JSON Lines, rotation by size and/or time, optional gzip of rotated files.

Line integrity: each batch is encoded to complete lines (``Event.to_json() + b"\\n"``) and
handed to the kernel with a single ``write`` on a file opened with ``O_APPEND``, so a crash of
the process (or a kill) never leaves half a line behind. A torn last line can only happen when
the machine loses power (or the disk fills up) in the middle of a write; readers should
therefore ignore a final line that does not end with ``"\\n"``. Set ``fsync: true`` to have
every batch on disk before the next one is taken (slower, survives power loss up to the
last batch).

Rotation: before a batch would push the file past ``rotate_bytes``, or once the file has
been open ``rotate_seconds`` (checked when events are written), the current file is renamed to
``<stem>-<UTC time>-<seq><suffix>`` next to it (``events-20240101T120000Z-0001.jsonl``) and
a new one is started; with ``gzip_rotated`` the rotated file becomes ``....jsonl.gz`` (written
to a temporary name, then renamed, so a reader never sees half a gzip file).

All file I/O runs in a worker thread; it never blocks the event loop.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import anyio.to_thread
from pydantic import Field

from ...errors import ConfigError
from ...sink import Event, Sink, SinkConfig

__all__ = ["FileSink", "FileSinkConfig"]


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
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"sinks.file.path: cannot open {str(self.path)!r} for appending: {exc.strerror or exc}") from exc
        self._size = os.fstat(self._fd).st_size
        self._opened_at = time.monotonic()

    def _write_sync(self, lines: list[bytes]) -> None:
        with self._io:
            if self._fd is None:
                if self._closed:
                    self.dropped_events += len(lines)
                    return
                raise RuntimeError("file sink is not open")
            self._write_locked(lines)

    def _write_locked(self, lines: list[bytes]) -> None:
        limit = self.cfg.rotate_bytes
        if self._due_by_time():
            self._rotate()
        if limit is None:
            self._append(b"".join(lines))
            return
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:  # split the batch at line boundaries so each file stays under the limit
            if self._size + chunk_size + len(line) > limit and self._size + chunk_size > 0:
                if chunk:
                    self._append(b"".join(chunk))
                    chunk, chunk_size = [], 0
                self._rotate()
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            self._append(b"".join(chunk))

    def _due_by_time(self) -> bool:
        limit = self.cfg.rotate_seconds
        return limit is not None and self._size > 0 and time.monotonic() - self._opened_at >= limit

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:  # one write() for a regular file; the loop only guards against a short write
            n = os.write(self._fd, view)
            view = view[n:]
        if self.cfg.fsync:
            os.fsync(self._fd)
        self._size += len(data)
        self.bytes_written += len(data)

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
        self._fd = None
        target = self._rotated_name()
        os.replace(self.path, target)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        self._opened_at = time.monotonic()
        if self.cfg.gzip_rotated:
            target = self._gzip(target)
        self.rotated.append(target)

    @staticmethod
    def _gzip(source: Path) -> Path:
        final = source.with_name(source.name + ".gz")
        tmp = source.with_name(source.name + ".gz.tmp")
        with source.open("rb") as src, gzip.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, final)
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
