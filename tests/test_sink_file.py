"""The file sink: JSON Lines, rotation by size and time, gzip of rotated files, errors at open."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from aggcore.builtins.sinks.file import FileSink, FileSinkConfig
from aggcore.errors import ConfigError
from aggcore.fanout import SinkRunner
from aggcore.models import Summary
from aggcore.sink import Event

pytestmark = pytest.mark.anyio


def event(i: int) -> Event:
    s = Summary(symbol="BTC/USDT", spread=float(i), bids=[], asks=[], timestamp=datetime.now(timezone.utc), venues=["x"])
    return Event("summary", s)


def make(path: Path, **kw: Any) -> FileSink:
    return FileSink(FileSinkConfig.model_validate({"path": str(path), **kw}))


def read_lines(path: Path) -> list[dict[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data: bytes = f.read()
    assert data == b"" or data.endswith(b"\n"), f"{path.name}: last line incomplete"
    return [json.loads(line) for line in data.splitlines()]


async def test_json_lines_appended_and_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"kind":"old"}\n')
    sink = make(path)
    await sink.open()
    await sink.write([event(i) for i in range(5)])
    await sink.write([event(5)])
    await sink.close()
    lines = read_lines(path)
    assert lines[0] == {"kind": "old"}  # appended, not truncated
    assert [line["data"]["spread"] for line in lines[1:]] == [0, 1, 2, 3, 4, 5]
    assert all(line["kind"] == "summary" for line in lines[1:])


async def test_rotation_by_size_with_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    one = len(event(0).to_json()) + 1
    sink = make(path, rotate_bytes=one * 4 + 10, gzip_rotated=True)
    await sink.open()
    for i in range(0, 30, 3):
        await sink.write([event(i + k) for k in range(3)])
    await sink.write([event(100 + k) for k in range(9)])  # one batch larger than a file
    await sink.close()
    rotated = sorted(tmp_path.glob("events-*.jsonl.gz"))
    assert rotated and rotated == sorted(sink.rotated)
    assert not list(tmp_path.glob("events-*.jsonl")) and not list(tmp_path.glob("*.tmp"))  # compressed, originals gone
    seen: list[float] = []
    for f in [*rotated, path]:
        assert f.stat().st_size > 0
        lines = read_lines(f)
        if f.suffix == ".gz":
            raw = gzip.open(f).read()
            assert len(raw) <= one * 4 + 10  # never past the limit
        seen.extend(line["data"]["spread"] for line in lines)
    assert seen == [*range(30), *range(100, 109)]  # nothing lost, order kept


async def test_rotation_by_time(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    sink = make(path, rotate_seconds=0.1)
    await sink.open()
    await sink.write([event(0), event(1)])
    await anyio.sleep(0.15)
    await sink.write([event(2)])
    await anyio.sleep(0.15)
    await sink.write([event(3)])
    await sink.close()
    rotated = sorted(tmp_path.glob("t-*.jsonl"))
    assert len(rotated) == 2
    assert [[x["data"]["spread"] for x in read_lines(f)] for f in rotated] == [[0, 1], [2]]
    assert [x["data"]["spread"] for x in read_lines(path)] == [3]
    assert all(f.name.startswith("t-") and f.name[2:10].isdigit() for f in rotated)  # t-YYYYmmdd...


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "events.jsonl"
    sink = make(path)
    with pytest.raises(ConfigError, match="does not exist") as info:
        await sink.open()
    assert str(path) in str(info.value)
    # through the runner, the error shows in health instead of crashing anything
    runner = SinkRunner(sink)
    await runner.run()
    assert not runner.opened and "does not exist" in (runner.health_error or "")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes everywhere")
async def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            await make(locked / "events.jsonl").open()
    finally:
        locked.chmod(0o700)


async def test_path_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(ConfigError, match="cannot open") as info:
        await make(tmp_path / "adir").open()  # a directory, not a file (fails for root too)
    assert "adir" in str(info.value)


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        FileSinkConfig.model_validate({"path": "x.jsonl", "rotate_size": 10})


async def test_events_after_close_are_dropped_and_counted(tmp_path: Path) -> None:
    sink = make(tmp_path / "e.jsonl")
    await sink.open()
    await sink.write([event(0)])
    await sink.close()
    await sink.write([event(1), event(2)])  # published during shutdown: no error
    assert sink.dropped_events == 2 and len(read_lines(tmp_path / "e.jsonl")) == 1


# -- a full disk: short and failed writes never leave a broken line -------------------------------------

_FULL_DISK = r"""
import json, resource, signal, sys
from datetime import datetime, timezone

import anyio

from aggcore.builtins.sinks.file import FileSink, FileSinkConfig
from aggcore.fanout import SinkRunner
from aggcore.models import Summary
from aggcore.sink import Event

path, limit = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past RLIMIT_FSIZE: a short write, then EFBIG


def event(i):
    s = Summary(symbol="BTC/USDT", spread=float(i), bids=[], asks=[], timestamp=datetime.now(timezone.utc), venues=["x"])
    return Event("summary", s)


async def main():
    runner = SinkRunner(FileSink(FileSinkConfig(path=path, events=["summary"])))
    errors = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        while not runner.opened:
            await anyio.sleep(0.01)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        n = 0

        async def batches(count):
            nonlocal n
            for _ in range(count):
                for _ in range(7):
                    runner.put(event(n))
                    n += 1
                assert await runner.flush(10)
                if runner.last_error and runner.last_error not in errors:
                    errors.append(runner.last_error)

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # the disk is full at `limit` bytes
        await batches(8)
        full_at = n
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk frees up
        await batches(3)
        await runner.sink.close()
        tg.cancel_scope.cancel()
    print(json.dumps({"produced": runner.produced, "delivered": runner.delivered, "drops": runner.drop_counts(),
                      "errors": errors, "full_at": full_at, "n": n}))


anyio.run(main)
"""


def test_full_disk_short_write_cut_back_to_whole_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "events.jsonl"
    line = len(event(0).to_json()) + 1
    limit = 3 * 7 * line + 5 * line // 2  # the 4th batch of 7 lines crosses it mid-line: a short write
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(path), str(limit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = [json.loads(raw) for raw in data.splitlines()]  # every line whole JSON: none broken or glued
    spreads = [rec["data"]["spread"] for rec in lines]
    # while full: whole batches kept up to the limit, nothing after; once freed: every line whole
    assert spreads == list(range(21)) + list(range(report["full_at"], report["n"]))
    assert report["errors"] and all("File too large" in e and "file ends with its last complete line" in e for e in report["errors"])
    # accounting: produced = delivered + dropped, and delivered = the lines in the file
    assert report["delivered"] == len(lines)
    assert report["produced"] == report["delivered"] + sum(report["drops"].values())
    assert report["drops"]["write_error"] == report["full_at"] - 21 > 0


async def test_a_torn_last_line_is_cut_when_the_file_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"kind":"old"}\n{"kind":"torn by a power lo')
    sink = make(path)
    await sink.open()
    await sink.write([event(1)])
    await sink.close()
    lines = read_lines(path)
    assert [line["kind"] for line in lines] == ["old", "summary"]


async def test_a_fifo_path_is_written_not_cut(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    sink = make(fifo)
    await sink.open()
    await sink.write([event(1), event(2)])
    await sink.close()
    reader.join(5)
    assert [json.loads(line)["data"]["spread"] for line in got[0].splitlines()] == [1, 2]
