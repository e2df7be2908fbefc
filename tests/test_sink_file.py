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
