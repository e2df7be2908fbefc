"""Replay and recording costs, as same-run ratios to the hot path.

``replay``: the hot-path workload ``binance-rec`` (the real Binance capture, 30k frames with
renumbered update ids) written as an aggcore recording, one frame every 0.1 ms of recorded time
(10k frames/s, so the runtime's 10 ms analysis runs every 100 frames, as the hot path's
"analysis/100" design does), then ``aggcore replay --speed max`` of it through the whole runtime:
connector, books, consolidated view, summary and arbitrage analyzers, health, a recorded clock.
Compared, in the same process and interleaved rounds, with the hot path's
``aggcore full, analysis/100`` design on the same frames. Replay streams the recording: its
frames are read (decompressed and parsed) while the replay runs, so the replay's figures
include reading them; ``load_replay`` before it only indexes the files (its own row).

``record``: what ``--record`` adds per frame: on the event loop (one JSON record per frame into
the current block) and in the writer thread (gzip of the blocks), against the same hot path.

    uv run --all-packages python bench/replay.py [--frames 30000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpath import Aggcore  # noqa: E402
from workloads import binance_recorded  # noqa: E402

STEP_NS = 100_000  # one frame every 0.1 ms of recorded time


def write_recording(wl: Any, directory: Path) -> Path:
    """The workload as an aggcore recording (header with the exchange's instruments)."""
    from aggcore.testing.recordings import recording_path

    info_path = recording_path("BINANCE.0")
    assert info_path is not None
    from aggcore.testing.recordings import Recording

    info = next(r.body for r in Recording(info_path).http() if "exchangeInfo" in r.url)
    t0 = 1_700_000_000_000_000_000
    bootstrap = [{"t": t0, "k": "http", "m": "GET", "url": "https://api.binance.com/api/v3/exchangeInfo", "status": 200, "d": info}]
    for sym, body in wl.snapshots[0].items():
        bootstrap.append(
            {"t": t0 + 1, "k": "http", "m": "GET", "url": f"https://api.binance.com/api/v3/depth?symbol={sym}&limit=1000", "status": 200, "d": body}
        )
    header = {"format": "aggcore-recording", "version": 1, "exchange": "binance", "symbols": None, "bootstrap": bootstrap}
    lines = [orjson.dumps(header), orjson.dumps({"t": t0 + 2, "k": "open", "c": 0, "url": "wss://stream.binance.com:9443/stream"})]
    t = t0 + 1_000_000
    for _, frame in wl.frames:
        t += STEP_NS
        lines.append(orjson.dumps({"t": t, "k": "in", "c": 0, "d": frame}))
    path = directory / "binance-bench-0001.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1))
    return path


def replay_once(path: Path, symbols: list[str], times: dict[str, float] | None = None) -> tuple[float, float]:
    from aggcore.config import load_config
    from aggcore.plugins import load_plugins
    from aggcore.replay import load_replay, replay

    registry = load_plugins()
    config = load_config({"exchanges": {"binance": {"trading_pairs": symbols}}}, registry=registry)
    t_load = time.perf_counter()
    data = load_replay([path], registry)  # the indexing pass: the frames are read while replaying
    if times is not None:
        times["load"] = time.perf_counter() - t_load
    seen: list[Any] = []
    t0 = time.perf_counter()
    result = asyncio.run(replay(config, registry, data, on_started=seen.append, tail_s=0.05))
    wall = time.perf_counter() - t0
    books = seen[0].connectors["binance"].books
    assert all(b.live and b.gaps == 0 for b in books.values()), {s: (b.state, b.error) for s, b in books.items()}
    assert sum(b.messages for b in books.values()) >= len(wl_frames(data))
    return wall, result.frames_wall_s


def wl_frames(data: Any) -> list[Any]:
    return [f for ex in data.exchanges.values() for c in ex.connections for f in c.frames]


def record_cost(wl: Any) -> dict[str, float]:
    """µs per frame the recording tap adds: on the event loop, and compressing in the writer."""
    from types import SimpleNamespace

    from aggcore.recording import Recorder, _RecordedWs

    class Source:
        def __init__(self, frames: list[str]) -> None:
            self.frames = frames

        async def __aiter__(self) -> Any:
            for f in self.frames:
                yield f

    frames = [f for _, f in wl.frames]

    async def plain() -> float:
        t0 = time.perf_counter_ns()
        async for _ in Source(frames):  # type: ignore[attr-defined]
            pass
        return (time.perf_counter_ns() - t0) / len(frames) / 1000

    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(tmp, max_pending_bytes=1 << 40)
        recorder.attach(SimpleNamespace(name="binance", symbols=None))  # type: ignore[arg-type]
        tap = recorder.taps["binance"]

        async def tapped() -> float:
            tap.opened("wss://stream.binance.com:9443/stream")
            ws = _RecordedWs(Source(frames), tap, 0)
            t0 = time.perf_counter_ns()
            async for _ in ws:
                pass
            return (time.perf_counter_ns() - t0) / len(frames) / 1000

        base = min(asyncio.run(plain()) for _ in range(3))
        with_tap = min(asyncio.run(tapped()) for _ in range(3))
        tap.seal()
        blocks = tap.flush_pending()
    raw = sum(len(b) for b in blocks)
    t0 = time.perf_counter_ns()
    size = sum(len(gzip.compress(b, compresslevel=3, mtime=0)) for b in blocks)
    n = 3 * len(frames)
    gz = (time.perf_counter_ns() - t0) / n / 1000
    return {"loop_us": with_tap - base, "gzip_us": gz, "bytes_per_frame": size / n, "raw_bytes_per_frame": raw / n}


def read_cost(wl: Any, rounds: int = 3) -> dict[str, float]:
    """µs per frame of the connector's real receive loop over loopback, with and without the
    recorder's connection wrapper (which also turns off the direct-frame path: recv() only)."""
    from types import SimpleNamespace

    from websockets.asyncio.server import serve

    from aggcore.connector import Connection, Connector, ConnectorConfig, ws_connect_default
    from aggcore.recording import Recorder

    frames = [f for _, f in wl.frames]

    class Null(Connector):
        name = "null"
        ws_url = ""

        def on_frame(self, conn: Any, frame: Any, receipt_ns: int) -> None:
            pass

    async def handler(ws: Any) -> None:
        for i in range(0, len(frames), 100):
            for f in frames[i : i + 100]:
                await ws.send(f)
        await ws.close()

    async def once(record: bool) -> float:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}"
            connector = Null(ConnectorConfig())
            opener: Any = ws_connect_default
            with tempfile.TemporaryDirectory() as tmp:
                recorder = Recorder(tmp, max_pending_bytes=1 << 40)
                if record:
                    recorder.attach(SimpleNamespace(name="null", symbols=None))  # type: ignore[arg-type]
                    opener = recorder.connector_io("null")[1]
                async with opener(url, max_size=None, compression=None) as ws:
                    conn = Connection(connector, ws, [], 0)
                    t0 = time.perf_counter_ns()
                    try:
                        await connector._read(conn)
                    except Exception:
                        pass
                    took = time.perf_counter_ns() - t0
                assert connector.messages == len(frames), (connector.messages, len(frames))
        return took / len(frames) / 1000

    plain = min(asyncio.run(once(False)) for _ in range(rounds))
    recorded = min(asyncio.run(once(True)) for _ in range(rounds))
    return {"plain_us": plain, "recorded_us": recorded}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    wl = binance_recorded(args.frames)
    if wl is None:
        print("binance-rec workload skipped: ../shared/recordings is absent (set AGGCORE_RECORDINGS)")
        return
    symbols = wl.symbols()
    hot_rates, replay_rates, ratios, total_rates, loaded_rates = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_recording(wl, Path(tmp))
        for _ in range(args.rounds):
            design = Aggcore("every")
            design.setup(wl)
            hot = len(wl.frames) / (design.run(wl.frames, None) / 1e9)
            times: dict[str, float] = {}
            wall, frames_wall = replay_once(path, symbols, times)
            rep = len(wl.frames) / frames_wall
            total_rates.append(len(wl.frames) / wall)
            loaded_rates.append(len(wl.frames) / (wall + times["load"]))
            hot_rates.append(hot)
            replay_rates.append(rep)
            ratios.append(rep / hot)
    cost = record_cost(wl)
    read = read_cost(wl)
    hot_us = 1e6 / statistics.median(hot_rates)
    print(f"#### Replay and recording (binance-rec, {len(wl.frames):,} frames, {args.rounds} interleaved rounds)\n")
    print("| figure | median [min–max] |")
    print("|---|---:|")
    print(f"| hot path, aggcore full, analysis/100 (frames/s) | {statistics.median(hot_rates):,.0f} [{min(hot_rates):,.0f}–{max(hot_rates):,.0f}] |")
    print(f"| `aggcore replay --speed max`, whole runtime, first to last frame (frames/s) | {statistics.median(replay_rates):,.0f} [{min(replay_rates):,.0f}–{max(replay_rates):,.0f}] |")
    print(f"| replay / hot path, same round | **{statistics.median(ratios):.2f}** [{min(ratios):.2f}–{max(ratios):.2f}] |")
    print(f"| the same replay counting its start (instrument list, snapshots) and stop (frames/s) | {statistics.median(total_rates):,.0f} [{min(total_rates):,.0f}–{max(total_rates):,.0f}] |")
    print(f"| the same, also counting `load_replay` (the indexing pass over the files) (frames/s) | {statistics.median(loaded_rates):,.0f} [{min(loaded_rates):,.0f}–{max(loaded_rates):,.0f}] |")
    print(f"| `--record`: on the event loop, per frame | {cost['loop_us']:.2f} µs ({cost['loop_us'] / hot_us * 100:.0f}% of the hot path's {hot_us:.2f} µs) |")
    print(f"| `--record`: gzip in the writer thread, per frame | {cost['gzip_us']:.2f} µs |")
    print(
        f"| receive loop over loopback, per frame: plain / with `--record` (recv() path) | {read['plain_us']:.2f} µs / "
        f"{read['recorded_us']:.2f} µs (+{read['recorded_us'] - read['plain_us']:.2f} µs) |"
    )
    print(f"| recording size per frame | {cost['bytes_per_frame']:.0f} B compressed ({cost['raw_bytes_per_frame']:.0f} B as JSON) |")


if __name__ == "__main__":
    main()
