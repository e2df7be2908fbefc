"""``aggcore replay`` reads a recording as it goes: its memory does not grow with the recording.

A synthetic aggcore recording of the Binance protocol (the messages the plugin's fake exchange
speaks: ``exchangeInfo``, a REST depth snapshot, then combined-stream ``depthUpdate`` frames
with consecutive update ids) is replayed through the whole runtime under ``tracemalloc``: the
full recording and its first quarter need about the same peak memory, and every frame of both
reaches the book, in order (one missing frame would be a gap).
"""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from aggcore.aggregator import Aggregator
from aggcore.config import load_config
from aggcore.models import BookState
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.replay import load_replay, replay
from aggcore.testing.server import InstrumentSpec
from aggcore_plugin_binance.fake import exchange_symbol

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000_000_000
STEP_NS = 1_000_000  # one frame per recorded millisecond
SNAPSHOT_ID = 1000


def _exchange_info() -> str:
    symbol = exchange_symbol("BTCUSDT", InstrumentSpec("BTC", "USDT"))  # as the fake lists it
    return orjson.dumps({"timezone": "UTC", "serverTime": T0 // 1_000_000, "rateLimits": [], "exchangeFilters": [], "symbols": [symbol]}).decode()


def write_recording(path: Path, frames: int, block_bytes: int = 256 * 1024) -> None:
    """An aggcore recording file as ``aggcore record`` writes it: a header, then blocks of JSON
    lines, each block one gzip member. ``frames`` depth updates follow the snapshot, each
    changing one of 50 levels far from the touch on each side (the book never crosses)."""
    url = "https://api.binance.com/api/v3/exchangeInfo"
    header = {
        "format": "aggcore-recording",
        "version": 1,
        "exchange": "binance",
        "symbols": None,
        "bootstrap": [{"t": T0, "k": "http", "t0": T0, "m": "GET", "url": url, "status": 200, "d": _exchange_info()}],
    }
    snapshot = {
        "lastUpdateId": SNAPSHOT_ID,
        "bids": [[f"{60000 - i}.00", "1.000000"] for i in range(20)],
        "asks": [[f"{60001 + i}.00", "1.000000"] for i in range(20)],
    }
    t = T0 + 1_000_000
    records: list[bytes] = [
        orjson.dumps({"t": t, "k": "open", "c": 0, "url": "wss://stream.binance.com:9443/stream"}),
        orjson.dumps({"t": t + 1000, "k": "out", "c": 0, "d": '{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}'}),
        b'{"t":%d,"k":"in","c":0,"d":%b}' % (t + 2000, orjson.dumps('{"result":null,"id":1}')),
        orjson.dumps(
            {
                "t": t + 3_000_000,
                "k": "http",
                "t0": t + 2_000_000,
                "m": "GET",
                "url": "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000",
                "status": 200,
                "d": orjson.dumps(snapshot).decode(),
            }
        ),
    ]
    t += 5_000_000
    with path.open("wb") as fh:
        fh.write(gzip.compress(orjson.dumps(header) + b"\n", compresslevel=1, mtime=0))
        block: list[bytes] = records
        size = 0
        for n in range(frames):
            t += STEP_NS
            level = n % 50
            qty = f"{(n % 7) * 0.25:.6f}"
            side = "b" if n % 2 else "a"
            price = f"{59000 - level}.00" if side == "b" else f"{61000 + level}.00"
            data = {"e": "depthUpdate", "E": t // 1_000_000, "s": "BTCUSDT", "U": SNAPSHOT_ID + 1 + n, "u": SNAPSHOT_ID + 1 + n}
            data["b"], data["a"] = ([[price, qty]], []) if side == "b" else ([], [[price, qty]])
            frame = orjson.dumps({"stream": "btcusdt@depth@100ms", "data": data})
            line = b'{"t":%d,"k":"in","c":0,"d":%b}' % (t, orjson.dumps(frame.decode()))
            block.append(line)
            size += len(line) + 1
            if size >= block_bytes:
                fh.write(gzip.compress(b"\n".join(block) + b"\n", compresslevel=1, mtime=0))
                block, size = [], 0
        if block:
            fh.write(gzip.compress(b"\n".join(block) + b"\n", compresslevel=1, mtime=0))


async def _replay_traced(registry: PluginRegistry, path: Path, frames: int) -> int:
    """Load and replay ``path`` through the whole runtime; the peak traced memory (bytes)."""
    app = load_config({"exchanges": {"binance": {"trading_pairs": ["BTC/USDT"]}}}, registry=registry)
    seen: list[Aggregator] = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        data = load_replay([path], registry)
        result = await replay(app, registry, data, on_started=seen.append, tail_s=0.0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert not result.errors and not result.unanswered, (result.errors, result.unanswered)
    assert result.frames == frames + 1  # the subscription's answer, then the depth updates
    connector = seen[0].connectors["binance"]
    book = connector.books["BTCUSDT"]
    # every frame was handed to the connector, and every update reached the book in order: a
    # single missing or repeated one would have been a gap (then a resync the recording cannot answer)
    assert connector.messages == frames + 1
    assert book.state is BookState.LIVE and book.gaps == 0 and book.resyncs == 0, (book.state, book.error)
    assert book.last_seq == SNAPSHOT_ID + frames
    return peak


async def test_replay_memory_does_not_grow_with_the_recording(tmp_path: Path) -> None:
    registry = load_plugins(disabled=())
    # 120k frames: tracemalloc makes the replay about six times slower (18 s for 200k frames on a
    # busy 2-core machine, 3 s untraced), and a quarter of them already shows the difference
    full, quarter = 120_000, 30_000
    for name, frames in (("full", full), ("quarter", quarter)):
        (tmp_path / name).mkdir()
        write_recording(tmp_path / name / "binance-20270115T080000Z-0001.jsonl.gz", frames)
    frame_bytes = full * 180  # what the full recording's frames take as text, at the least

    peaks: dict[str, int] = {}
    for name, frames in (("quarter", quarter), ("full", full)):
        peaks[name] = await _replay_traced(registry, tmp_path / name, frames)
    # the bound: four times the frames need at most a quarter more memory plus 1 MB (a recording
    # held in memory would need four times as much: 90k more frames, over 16 MB of text alone)
    assert peaks["full"] <= 1.25 * peaks["quarter"] + 1_000_000, peaks
    assert peaks["full"] < frame_bytes / 4, (peaks, frame_bytes)


def test_a_large_block_is_streamed_line_by_line(tmp_path: Path) -> None:
    """A file written as one gzip member (another program's writer, or a single huge block)
    is still read in bounded memory: past 4 MB its lines are given as they are decompressed."""
    from aggcore import recording

    path = tmp_path / "one-block.jsonl.gz"
    lines = [orjson.dumps({"format": "aggcore-recording", "version": 1, "exchange": "binance"})]
    lines += [orjson.dumps({"t": T0 + n, "k": "in", "c": 0, "d": "x" * 100 + str(n)}) for n in range(60_000)]
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    old, recording._HOLD_BYTES = recording._HOLD_BYTES, 256 * 1024  # a 7 MB block counts as large here
    try:
        errors: list[Any] = []
        count = 0
        tracemalloc.start()
        try:
            records = recording._iter_records(path, errors)
            next(records)  # the header
            for _, _, rec in records:
                assert rec["d"] == "x" * 100 + str(count)
                count += 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        recording._HOLD_BYTES = old
    assert not errors and count == 60_000
    assert len(gzip.decompress(path.read_bytes())) > 6_000_000
    assert peak < 3_000_000, peak  # a few chunks, not the 7 MB block


def _members(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, decompressed data) of each gzip member of a recording file."""
    import zlib

    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        body = d.decompress(data[pos:])
        out.append((pos, body))
        pos = len(data) - len(d.unused_data)
    return out


async def _replay(registry: PluginRegistry, directory: Path, damage: Any) -> tuple[Any, Aggregator]:
    """Load ``directory``, then ``damage()`` its file (as if it changed after the loading pass
    read it, or held what that pass does not parse), then replay it."""
    app = load_config({"exchanges": {"binance": {"trading_pairs": ["BTC/USDT"]}}}, registry=registry)
    data = load_replay([directory], registry)
    assert not data.errors, data.errors
    damage()
    seen: list[Aggregator] = []
    result = await replay(app, registry, data, on_started=seen.append, tail_s=0.0)
    return result, seen[0]


async def test_a_block_damaged_after_loading_is_reported_where_the_replay_finds_it(tmp_path: Path) -> None:
    registry = load_plugins(disabled=())
    path = tmp_path / "binance-20270115T080000Z-0001.jsonl.gz"
    write_recording(path, 5000, block_bytes=64 * 1024)
    raw = path.read_bytes()
    members = _members(raw)
    assert len(members) >= 6
    bad_offset = members[4][0]
    before = sum(body.count(b'"k":"in"') for _, body in members[:4])

    def damage() -> None:
        bad = bytearray(raw)
        bad[bad_offset + 40] ^= 0xFF
        path.write_bytes(bytes(bad))

    result, agg = await _replay(registry, tmp_path, damage)
    assert [e for e in result.errors if f"{path}: corrupt block at offset {bad_offset}" in e], result.errors
    assert len(result.errors) == 1, result.errors
    connector = agg.connectors["binance"]
    book = connector.books["BTCUSDT"]
    assert connector.messages == before  # everything before the damaged block, then nothing of that file
    assert book.live and book.gaps == 0 and book.last_seq == SNAPSHOT_ID + before - 1


async def test_a_bad_frame_line_is_named_with_its_place_and_the_replay_goes_on(tmp_path: Path) -> None:
    """The loading pass reads only where our writer's frame lines start; a frame line that is
    not JSON is found when the replay reaches it: named (file, block, line), skipped, and the
    book treats the missing update as live: a gap, out of the view, never a wrong book."""
    registry = load_plugins(disabled=())
    path = tmp_path / "binance-20270115T080000Z-0001.jsonl.gz"
    write_recording(path, 3000, block_bytes=64 * 1024)
    members = _members(path.read_bytes())
    lines = members[2][1].split(b"\n")
    lines[10] = lines[10].replace(b'"d":"{', b'"d":"\\q{', 1)  # an escape JSON does not have
    members[2] = (members[2][0], b"\n".join(lines))
    path.write_bytes(b"".join(gzip.compress(body, compresslevel=1, mtime=0) for _, body in members))
    offset = _members(path.read_bytes())[2][0]

    result, agg = await _replay(registry, tmp_path, lambda: None)
    assert any(e.startswith(f"{path}: bad record in the block at offset {offset}, line 11:") for e in result.errors), result.errors
    connector = agg.connectors["binance"]
    book = connector.books["BTCUSDT"]
    assert connector.messages == 3000  # every other frame (3000 + the subscription's answer - the bad one)
    assert book.gaps == 1 and not book.live, (book.state, book.gaps)  # the next update did not follow


def _series(directory: Path) -> dict[tuple[int, int], list[tuple[int, str | bytes]]]:
    """Two files of one exchange with interleaved connections: a connection number reused after
    a close, one going on across files, one whose ``open`` is not in the series, frames in our
    writer's form, in another key order and binary. Returns each connection's frames as the
    format defines them (keyed by the order connections appear)."""
    import base64
    import random

    rnd = random.Random(7)
    truth: dict[tuple[int, int], list[tuple[int, str | bytes]]] = {}
    current: dict[int, tuple[int, int]] = {}
    made = 0
    t = T0

    def conn(c: int, new: bool) -> tuple[int, int]:
        nonlocal made
        if new or c not in current:
            current[c] = (c, made)
            truth[current[c]] = []
            made += 1
        return current[c]

    files: list[list[bytes]] = [[], []]
    plan = [(0, [("open", 0), ("open", 1)]), (0, None), (0, [("close", 1), ("open", 1), ("open", 2)]), (0, None), (1, [("in5", 5)]), (1, None)]
    for index, step in plan:
        lines = files[index]
        if step is not None:
            for kind, c in step:
                t += 1000
                if kind == "open":
                    conn(c, True)
                    lines.append(orjson.dumps({"t": t, "k": "open", "c": c, "url": f"wss://x/{c}"}))
                elif kind == "close":
                    lines.append(orjson.dumps({"t": t, "k": "close", "c": c, "by": "server"}))
                else:
                    conn(c, False)
            continue
        for _ in range(700):
            t += 1000
            c = rnd.choice([c for c in current])
            key = conn(c, False)
            shape = rnd.random()
            if shape < 0.05:
                data = bytes(rnd.randrange(256) for _ in range(12))
                lines.append(orjson.dumps({"t": t, "k": "in", "c": c, "b": base64.b64encode(data).decode()}))
                truth[key].append((t, data))
            elif shape < 0.1:
                text = f'{{"slow":{t}}}'
                lines.append(orjson.dumps({"k": "in", "c": c, "t": t, "d": text}))
                truth[key].append((t, text))
            else:
                text = orjson.dumps({"stream": "x", "n": t, "pad": "é\\\"" * rnd.randrange(1, 30)}).decode()
                lines.append(b'{"t":%d,"k":"in","c":%d,"d":%b}' % (t, c, orjson.dumps(text)))
                truth[key].append((t, text))
    for n, lines in enumerate(files):
        header = orjson.dumps({"format": "aggcore-recording", "version": 1, "exchange": "binance", "symbols": None})
        with (directory / f"binance-20270115T08000{n}Z-000{n + 1}.jsonl.gz").open("wb") as fh:
            fh.write(gzip.compress(header + b"\n", mtime=0))
            for i in range(0, len(lines), 50):  # many blocks
                fh.write(gzip.compress(b"\n".join(lines[i : i + 50]) + b"\n", mtime=0))
    return truth


@pytest.mark.parametrize("limit", [8 * 1024 * 1024, 4000])
@pytest.mark.parametrize("order", ["round-robin", "one-after-another", "last-first"])
def test_connections_of_a_series_share_one_reader_and_get_exactly_their_frames(tmp_path: Path, order: str, limit: int) -> None:
    from aggcore.replay import ExchangeReplay, RecordedClock, _SeriesReader

    truth = _series(tmp_path)
    data = load_replay([tmp_path], load_plugins(disabled=()))
    assert not data.errors, data.errors
    ex = data.exchanges["binance"]
    # the loading pass made the connections in the order they appear (sorted by open time after)
    made = sorted(truth)
    conns = sorted(ex.connections, key=lambda c: ex.series_frames.index(c.frames))  # type: ignore[arg-type]
    assert [len(c.frames) for c in conns] == [len(truth[k]) for k in made]
    for c, key in zip(conns, made):
        assert list(c.frames) == truth[key]  # read on its own

    source = ExchangeReplay(ex, RecordedClock(T0), data.span())
    source.reader = _SeriesReader(ex, data.errors, limit=limit)
    reader = source.reader
    streams = [iter(source.frames_of(c)) for c in conns]
    got: list[list[Any]] = [[] for _ in conns]
    most = 0  # the most the reader held for connections at any time
    if order == "round-robin":
        live = list(range(len(streams)))
        while live:
            for i in list(live):
                frame = next(streams[i], None)
                most = max(most, reader.buffered)
                if frame is None:
                    live.remove(i)
                else:
                    got[i].append(frame)
    else:
        for i in range(len(streams)) if order == "one-after-another" else reversed(range(len(streams))):
            for frame in streams[i]:
                most = max(most, reader.buffered)
                got[i].append(frame)
    assert got == [truth[k] for k in made]
    assert most <= limit + 50 * 400  # the bound, plus at most one block (50 lines here) read past it
    assert source.reader.buffered == 0 and not data.errors
    detached = [st for st in source.reader.streams.values() if st.detached]
    # read one after another under a small bound, the connections not read yet drop what was
    # read for them and then read on their own; else one reader served them all
    if limit > 10_000:
        assert not detached
    elif order != "round-robin":
        assert detached
