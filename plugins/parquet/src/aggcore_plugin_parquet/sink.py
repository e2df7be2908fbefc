"""The ``parquet`` sink: events as Hive-partitioned, zstd-compressed Parquet datasets (pyarrow).

One dataset per event kind (see :mod:`aggcore_plugin_parquet.schema`), partitioned by UTC date
(and venue for health, metrics and books). Each partition has at most one open file. Rows are
collected in memory and written as a row group of ``row_group_rows``; a file is closed when it
has been open ``rotate_seconds``, when a row group takes it past ``rotate_bytes``, and at
shutdown.

Files are written under a hidden temporary name (``.part-....parquet.tmp``, ignored by DuckDB's
``*.parquet`` globs and by pyarrow datasets) and renamed to ``part-<UTC time>-<pid>-<seq>.parquet``
when closed (after an fsync), so a reader never sees a partial file. An open file is not
readable until its footer is written; a ``kill -9`` therefore loses the rows of the open files.
Next to each temporary file a small ``.rows`` file holds how many rows it has taken; the next
start removes the leftovers of a killed run and reports how many events they held (health,
log, ``lost_in_previous_run``).

Every file operation runs in a worker thread (one at a time), so the event loop never waits
for the disk. A write error (disk full, permission) drops the rows of the file it hit, counts
them, says so in health, and the sink goes on with a new file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from aggcore.errors import ConfigError
from aggcore.sink import Event, EventKind, Sink, SinkConfig

from .schema import DATASETS, Dataset

__all__ = ["ParquetSink", "ParquetSinkConfig"]

log = logging.getLogger("aggcore.sink.parquet")

TMP_SUFFIX = ".parquet.tmp"
CONVERT_ROWS = 4096  # rows are turned into Arrow in chunks of this many, written as row groups of row_group_rows
ROWS_SUFFIX = ".rows"


def _default_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health"]


class ParquetSinkConfig(SinkConfig):
    """``sinks.parquet``."""

    events: list[EventKind] = Field(default_factory=_default_events)
    path: Path = Field(Path("aggcore-data"), description="root directory of the datasets (created if its parent exists)")
    rotate_seconds: float = Field(3600, gt=0, description="close a file once it has been open this long")
    rotate_bytes: int = Field(256 * 1024 * 1024, ge=1, description="close a file once a row group takes it past this size")
    row_group_rows: int = Field(100_000, ge=1, description="rows per row group (also the most rows held in memory per file)")
    compression_level: int = Field(3, ge=1, le=22, description="zstd level")
    fsync: bool = Field(True, description="fsync a file before it is renamed into place")


@dataclass
class _OpenFile:
    dataset: Dataset
    directory: Path
    final: Path
    tmp: Path
    rows_fd: int
    opened: float  # monotonic
    writer: pq.ParquetWriter | None = None
    buffer: list[dict[str, Any]] = field(default_factory=list)  # rows not converted yet
    batches: list[pa.RecordBatch] = field(default_factory=list)  # converted, not written yet
    unwritten: int = 0  # rows in buffer + batches
    rows: int = 0  # rows taken (written row groups + unwritten)

    def record_rows(self) -> None:
        os.pwrite(self.rows_fd, f"{self.rows:<20d}".encode(), 0)


class ParquetSink(Sink):
    """Events to Parquet files, one dataset per kind, partitioned by date (and venue)."""

    name = "parquet"
    Config = ParquetSinkConfig
    holds_events = True  # rows are delivered when their file is closed and renamed

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, ParquetSinkConfig) else ParquetSinkConfig.model_validate(config.model_dump())
        self.root = self.cfg.path
        self._files: dict[tuple[str, str, str | None], _OpenFile] = {}
        self._limiter = anyio.CapacityLimiter(1)
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self._seq = 0
        self._token = uuid.uuid4().hex[:6]
        self._dates: dict[int, str] = {}
        self.files_written: list[Path] = []
        self.bytes_written = 0
        self.failed_files = 0
        self.lost_in_previous_run = 0
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------
    @property
    def pending_events(self) -> int:
        return sum(f.rows for f in list(self._files.values()))

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._prepare, limiter=self._limiter)
        period = min(1.0, self.cfg.rotate_seconds / 4)
        self._timer = asyncio.get_running_loop().create_task(self._rotate_loop(period), name="aggcore-parquet-rotate")

    async def write(self, events: Sequence[Event]) -> None:
        if self._closed:
            self.dropped_events += len(events)
            return
        await anyio.to_thread.run_sync(self._write_batch, list(events), limiter=self._limiter)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except (asyncio.CancelledError, Exception):
                pass
            self._timer = None
        await anyio.to_thread.run_sync(self._close_all, limiter=self._limiter)

    async def _rotate_loop(self, period: float) -> None:
        """Close files that are due even when no event arrives (an idle partition, yesterday's date)."""
        while True:
            await anyio.sleep(period)
            try:
                await anyio.to_thread.run_sync(self._rotate_due, limiter=self._limiter)
            except Exception as exc:  # never lose the timer; the next tick tries again
                self._error(f"rotation failed: {type(exc).__name__}: {exc}")

    # -- worker thread ------------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        root = self.root
        try:
            root.mkdir(exist_ok=True)
        except FileNotFoundError as exc:
            raise ConfigError(f"sinks.parquet.path: the parent directory of {root} does not exist") from exc
        except FileExistsError as exc:
            raise ConfigError(f"sinks.parquet.path: {root} exists and is not a directory") from exc
        except OSError as exc:
            raise ConfigError(f"sinks.parquet.path: cannot create {root}: {exc.strerror or exc}") from exc
        if not root.is_dir():
            raise ConfigError(f"sinks.parquet.path: {root} is not a directory")
        probe = root / f".aggcore-probe-{os.getpid()}-{self._token}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"sinks.parquet.path: {root} is not writable: {exc.strerror or exc}") from exc
        self._recover()

    def _recover(self) -> None:
        """Remove the temporary files a killed run left behind; count the events they held."""
        files = 0
        lost = 0
        # every open file has its .rows file from its first row on (the .parquet.tmp itself only
        # appears with the first row group)
        for rows in self.root.rglob(f".part-*{TMP_SUFFIX}{ROWS_SUFFIX}"):
            pid = _pid_of(rows.name)
            if pid is not None and pid != os.getpid() and _alive(pid):
                continue  # another live aggcore writes here
            try:
                lost += int(rows.read_text().strip() or 0)
            except (OSError, ValueError):
                pass
            rows.with_name(rows.name[: -len(ROWS_SUFFIX)]).unlink(missing_ok=True)
            rows.unlink(missing_ok=True)
            files += 1
        for tmp in self.root.rglob(f".part-*{TMP_SUFFIX}"):  # a file without its .rows (count unknown)
            pid = _pid_of(tmp.name)
            if pid is None or pid == os.getpid() or not _alive(pid):
                tmp.unlink(missing_ok=True)
                files += 1
        if files:
            self.lost_in_previous_run = lost
            self.health_error = (
                f"found {files} unfinished files of an earlier run that was killed: {lost} events were lost "
                f"(removed; cleared when the next file is complete)"
            )
            log.warning("sink parquet: %s under %s", self.health_error, self.root)

    def _date(self, seconds: float) -> str:
        day = int(seconds // 86400)
        text = self._dates.get(day)
        if text is None:
            text = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%d")
            self._dates[day] = text
        return text

    def _write_batch(self, events: list[Event]) -> None:
        touched: set[tuple[str, str, str | None]] = set()
        unopenable: set[tuple[str, str, str | None]] = set()
        for event in events:
            ds = DATASETS.get(event.kind)
            if ds is None:
                self.dropped_events += 1
                continue
            try:
                seconds, venue, row = ds.row(event)
            except Exception as exc:  # a payload that is not what the kind promises
                self.dropped_events += 1
                self._error(f"cannot encode a {event.kind} event: {type(exc).__name__}: {exc}")
                continue
            key = (ds.name, self._date(seconds), venue if ds.by_venue else None)
            f = self._files.get(key)
            if f is None:
                if key in unopenable:  # failed earlier in this batch: do not retry (and log) per event
                    self.dropped_events += 1
                    continue
                try:
                    f = self._open_file(key, ds)
                except OSError as exc:
                    unopenable.add(key)
                    self.dropped_events += 1
                    self._error(f"cannot create a file under {self.root / ds.name}: {exc.strerror or exc}; its events are dropped")
                    continue
            f.buffer.append(row)
            f.rows += 1
            f.unwritten += 1
            touched.add(key)
            if f.unwritten >= self.cfg.row_group_rows:
                self._flush(key)
            elif len(f.buffer) >= CONVERT_ROWS:
                self._convert(key)
        for key in touched:
            f2 = self._files.get(key)
            if f2 is not None:
                try:
                    f2.record_rows()
                except OSError:
                    pass
        self._rotate_due()

    def _open_file(self, key: tuple[str, str, str | None], ds: Dataset) -> _OpenFile:
        _, date, venue = key
        directory = self.root / ds.name / f"date={date}"
        if venue is not None:
            directory = directory / f"venue={urllib.parse.quote(venue, safe='')}"
        directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = f"part-{stamp}-{os.getpid()}-{self._token}-{self._seq:05d}.parquet"
        tmp = directory / f".{base[: -len('.parquet')]}{TMP_SUFFIX}"
        rows_fd = os.open(tmp.with_name(tmp.name + ROWS_SUFFIX), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        f = _OpenFile(ds, directory, directory / base, tmp, rows_fd, time.monotonic())
        self._files[key] = f
        return f

    def _convert(self, key: tuple[str, str, str | None]) -> None:
        """Turn the rows collected so far into Arrow (spreads the cost; Arrow is also smaller)."""
        f = self._files[key]
        try:
            f.batches.append(pa.RecordBatch.from_pylist(f.buffer, schema=f.dataset.schema))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            self._abort(key, exc)
            return
        f.buffer = []

    def _flush(self, key: tuple[str, str, str | None]) -> None:
        """Write what is not written yet as one row group; close the file when it is past ``rotate_bytes``."""
        f = self._files[key]
        if not f.unwritten:
            return
        try:
            if f.buffer:
                f.batches.append(pa.RecordBatch.from_pylist(f.buffer, schema=f.dataset.schema))
                f.buffer = []
            table = pa.Table.from_batches(f.batches, schema=f.dataset.schema)
            if f.writer is None:
                f.writer = pq.ParquetWriter(
                    f.tmp,
                    f.dataset.schema,
                    compression="zstd",
                    compression_level=self.cfg.compression_level,
                    use_dictionary=True,
                    write_statistics=True,
                )
            f.writer.write_table(table, row_group_size=max(table.num_rows, 1))
            f.batches = []
            f.unwritten = 0
        except (OSError, pa.ArrowException, TypeError, ValueError) as exc:
            self._abort(key, exc)
            return
        try:
            size = f.tmp.stat().st_size
        except OSError:
            size = 0
        if size >= self.cfg.rotate_bytes:
            self._finish(key)

    def _finish(self, key: tuple[str, str, str | None]) -> None:
        """Close the file: last row group, footer, fsync, rename into place. Its rows are delivered."""
        f = self._files.get(key)
        if f is None:
            return
        if f.unwritten:
            self._flush(key)
            if self._files.get(key) is not f:
                return  # the flush failed (aborted) or rotated it already
        try:
            if f.writer is not None:
                f.writer.close()
                if self.cfg.fsync:
                    fd = os.open(f.tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.rename(f.tmp, f.final)
                if self.cfg.fsync:
                    _fsync_dir(f.directory)
        except OSError as exc:
            self._abort(key, exc)
            return
        del self._files[key]
        _close_rows(f)
        if f.writer is not None:
            self.files_written.append(f.final)
            try:
                self.bytes_written += f.final.stat().st_size
            except OSError:
                pass
        self.delivered_events += f.rows
        self.health_error = None  # a file is complete: an earlier error (or a killed run's report) is over

    def _abort(self, key: tuple[str, str, str | None], exc: BaseException) -> None:
        """A write error: the file's rows are lost (counted); remove what was written."""
        f = self._files.pop(key, None)
        if f is None:
            return
        if f.writer is not None:
            try:
                f.writer.close()
            except Exception:
                pass
        _close_rows(f)
        f.tmp.unlink(missing_ok=True)
        self.dropped_events += f.rows
        self.failed_files += 1
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._error(f"cannot write {f.final}: {type(exc).__name__}: {reason}; its {f.rows} events dropped")

    def _error(self, text: str) -> None:
        self.health_error = text
        self.last_error = text
        log.warning("sink parquet: %s", text)

    def _rotate_due(self) -> None:
        now = time.monotonic()
        for key, f in list(self._files.items()):
            if now - f.opened >= self.cfg.rotate_seconds:
                self._finish(key)

    def _close_all(self) -> None:
        for key in list(self._files):
            self._finish(key)


def _close_rows(f: _OpenFile) -> None:
    try:
        os.close(f.rows_fd)
    except OSError:
        pass
    f.tmp.with_name(f.tmp.name + ROWS_SUFFIX).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_of(name: str) -> int | None:
    # .part-<stamp>-<pid>-<token>-<seq>.parquet.tmp[.rows]
    parts = name.split("-")
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
