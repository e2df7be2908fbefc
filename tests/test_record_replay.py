"""``aggcore record`` / ``aggcore replay``: real captures and aggcore's own recordings through
the real connector code, on the recorded clock.

Real captures are read from ``../shared/recordings`` in place (skipped with the reason when
absent). Every book a replay ends with is compared with the project's own exact replay of the
same capture: frames applied to a connector's ``on_frame`` (and REST snapshots to
``snapshot_fetched``) in receipt order, with no network, no clock and no runtime.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from aggcore.aggregator import Aggregator
from aggcore.book import SymbolBook
from aggcore.config import load_config
from aggcore.connector import Connector
from aggcore.models import BookState
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.recording import Recorder, header_meta, read_recording
from aggcore.replay import ExchangeReplay, RecordedClock, ReplayData, load_replay, replay
from aggcore.runtime import Simulation
from aggcore.testing.recordings import recording, recording_path

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return load_plugins(disabled=())


def _captures(*names: str) -> list[Path]:
    paths = []
    for name in names:
        path = recording_path(name)
        if path is None:
            recording(name)  # skips with the reason
        assert path is not None
        paths.append(path)
    return paths


class _Conn:
    """What ``on_frame`` needs of a connection in an offline replay."""

    index = 0
    closed = False
    symbols: list[str] = []

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def send_soon(self, frame: Any) -> None:
        pass


def _sides(book: SymbolBook) -> tuple[dict[float, float], dict[float, float]]:
    return dict(book.book.bids.levels), dict(book.book.asks.levels)


async def _replay_books(
    registry: PluginRegistry, config: dict[str, Any], paths: list[Path], tmp_path: Path
) -> tuple[Aggregator, Path]:
    out = tmp_path / "events.jsonl"
    config = {**config, "sinks": {"file": {"path": str(out), "events": ["summary", "arbitrage", "health", "metrics"]}}}
    app = load_config(config, registry=registry)
    data = load_replay(paths, registry)
    assert not data.errors, data.errors
    seen: list[Aggregator] = []
    result = await replay(app, registry, data, on_started=seen.append)
    assert not result.errors and not result.unanswered, (result.errors, result.unanswered)
    return seen[0], out


# -- real captures -------------------------------------------------------------------------------


async def test_binance_capture_replays_to_the_books_of_the_exact_replay(registry: PluginRegistry, tmp_path: Path) -> None:
    from aggcore_plugin_binance.messages import parse_snapshot

    paths = _captures("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    # RUNEEUR's next delta after its snapshot comes 19 s later; with the default
    # resync_deadline_s (10 s) the engine would ask for a fresh snapshot the capture does not
    # hold (test_a_request_the_recording_cannot_answer_... covers that case)
    pairs = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    config = {"exchanges": {"binance": {"trading_pairs": pairs, "resync_deadline_s": 30}}}
    agg, out = await _replay_books(registry, config, paths, tmp_path)
    live = agg.connectors["binance"]

    # the exact replay: REST snapshots and frames merged by receipt time, straight into on_frame
    ref = registry.connectors["binance"](live.config)
    ref.symbols = live.symbols
    assert ref.symbols is not None
    for sym in pairs:
        ref.books[sym] = ref.make_book(ref.symbols.by_symbol[sym])
        ref.books[sym].begin_sync()
    timeline = [(f.ts, "ws", f.text) for f in recording("BINANCE.ws.1.0").frames()]
    for r in recording("BINANCE.http.0.0").http():
        timeline.append((r.ts, r.url.split("symbol=", 1)[1].split("&", 1)[0], r.body))
    conn = _Conn()
    for _, kind, text in sorted(timeline, key=lambda item: item[0]):
        if kind == "ws":
            ref.on_frame(conn, text, 1)  # type: ignore[arg-type]
        elif kind in ref.books:
            ref.books[kind].snapshot_fetched(parse_snapshot(kind, orjson.loads(text)))

    for sym in pairs:
        book, want = live.books[sym], ref.books[sym]
        assert book.state is BookState.LIVE and want.state is BookState.LIVE, (sym, book.state, book.error)
        assert book.gaps == book.resyncs == book.crossed_books == 0
        assert book.last_seq == want.last_seq and _sides(book) == _sides(want), sym
    assert live.books["NKNUSDT"].last_seq == 499870179
    summaries = [orjson.loads(line) for line in out.read_bytes().splitlines() if b'"kind":"summary"' in line]
    assert any(s["data"]["venues"] == ["binance"] for s in summaries)


async def test_okx_capture_replays_with_every_exchange_checksum_matching(registry: PluginRegistry, tmp_path: Path) -> None:
    paths = _captures("OKX.0", "OKX.ws.1.0")
    pairs = ["BTC/USDT", "UNI/USD:UNI", "BTC-USD-220527"]
    config = {"exchanges": {"okx": {"trading_pairs": pairs, "inst_types": ["SPOT", "SWAP", "FUTURES"]}}}
    agg, _ = await _replay_books(registry, config, paths, tmp_path)
    live = agg.connectors["okx"]

    ref = registry.connectors["okx"](live.config)
    ref.symbols = live.symbols
    for sym in live.books:
        ref.books[sym] = ref.make_book(live.books[sym] and ref.symbols.by_symbol[sym])  # type: ignore[union-attr]
    conn = _Conn()
    for frame in recording("OKX.ws.1.0").frames():
        ref.on_frame(conn, frame.text, 1)  # type: ignore[arg-type]

    assert len(live.books) == 3
    for sym, book in live.books.items():
        want = ref.books[sym]
        # OKX verifies its CRC32 after every message: a single wrong level would have resynced
        assert book.state is BookState.LIVE and book.checksum_failures == 0 and book.resyncs == 0, (sym, book.error)
        assert _sides(book) == _sides(want), sym
    assert sum(b.messages for b in live.books.values()) == 290  # every recorded books message, checksummed


async def test_kraken_v1_capture_replays_with_every_exchange_checksum_matching(registry: PluginRegistry, tmp_path: Path) -> None:
    from aggcore_plugin_kraken.messages import BookUpdate, book_checksum, parse_v1

    paths = _captures("KRAKEN.0", "KRAKEN.ws.48.0", "KRAKEN.ws.49.0", "KRAKEN.ws.50.0")  # book, trade and ticker connections
    pairs = ["XBT/CHF", "ETH/CHF", "WAVES/EUR", "XMR/USD", "OMG/USD"]
    # the capture holds REST AssetPairs but no v2 instrument list: the REST-only symbol source
    kraken = {"trading_pairs": pairs, "depth": 1000, "instruments": "asset_pairs"}
    agg, _ = await _replay_books(registry, {"exchanges": {"kraken": kraken}}, paths, tmp_path)
    live = agg.connectors["kraken"]

    checked = 0
    ref: dict[str, SymbolBook] = {}
    v1 = {str(i.extra.get("wsname")): i.symbol for i in live.symbols.by_symbol.values()}  # type: ignore[union-attr]
    for frame in recording("KRAKEN.ws.50.0").frames():
        for event in parse_v1(frame.text):
            if not isinstance(event, BookUpdate) or v1.get(event.symbol) not in live.books:
                continue
            sym = v1[event.symbol]
            book = ref.get(sym)
            if book is None:
                book = ref[sym] = SymbolBook("kraken", sym, sym, live.rules, depth=1000)
            book.apply(event)
            if event.checksum is not None:
                checked += 1
                assert book_checksum(book.book) == event.checksum
    assert checked > 100 and len(live.books) == len(pairs)
    for sym, book in live.books.items():
        assert book.state is BookState.LIVE and book.checksum_failures == 0 and book.resyncs == 0, (sym, book.error)
        assert _sides(book) == _sides(ref[sym]), sym


async def test_bitstamp_capture_replays_to_the_books_of_the_exact_replay(registry: PluginRegistry, tmp_path: Path) -> None:
    from aggcore_plugin_bitstamp.messages import parse_snapshot

    paths = _captures("BITSTAMP.0", "BITSTAMP.http.0.0", "BITSTAMP.ws.1.0")
    pairs = ["ethusd", "xrpeur", "sgbeur"]
    agg, _ = await _replay_books(registry, {"exchanges": {"bitstamp": {"trading_pairs": pairs}}}, paths, tmp_path)
    live = agg.connectors["bitstamp"]

    ref = registry.connectors["bitstamp"](live.config)
    ref.symbols = live.symbols
    for sym in live.books:
        ref.books[sym] = ref.make_book(ref.symbols.by_symbol[sym])  # type: ignore[union-attr]
        ref.books[sym].begin_sync()
    timeline = [(f.ts, "ws", f.text) for f in recording("BITSTAMP.ws.1.0").frames()]
    timeline += [(r.ts, r.url.rstrip("/").rsplit("/", 1)[-1], r.body) for r in recording("BITSTAMP.http.0.0").http()]
    conn = _Conn()
    for _, kind, text in sorted(timeline, key=lambda item: item[0]):
        if kind == "ws":
            ref.on_frame(conn, text, 1)  # type: ignore[arg-type]
        elif kind in ref.books:
            ref.books[kind].snapshot_fetched(parse_snapshot(kind, text))
    assert len(live.books) == 3
    for sym, book in live.books.items():
        want = ref.books[sym]
        assert book.state is BookState.LIVE and want.state is BookState.LIVE, (sym, book.state, book.error)
        assert book.last_seq == want.last_seq and _sides(book) == _sides(want), sym


async def test_two_replays_of_a_capture_are_byte_identical(registry: PluginRegistry, tmp_path: Path) -> None:
    paths = _captures("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    config = {
        "exchanges": {"binance": {"trading_pairs": ["NKNUSDT", "LRCBTC", "BLZETH"]}},
        "aggregation": {"summary_interval_ms": 50},
    }
    outputs = []
    for run in range(2):
        run_dir = tmp_path / str(run)
        run_dir.mkdir()
        _, out = await _replay_books(registry, config, paths, run_dir)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    kinds = {orjson.loads(line)["kind"] for line in outputs[0].splitlines()}
    assert kinds == {"summary", "health", "metrics"}


# -- record, then replay ----------------------------------------------------------------------------


class _States:
    """A book listener that keeps every LIVE state of every book (top 10 per side) and forwards."""

    def __init__(self) -> None:
        self.states: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        if book.state is BookState.LIVE:
            self.states[f"{book.exchange}:{book.symbol}"].append((tuple(book.book.bids.top(10)), tuple(book.book.asks.top(10))))

    def book_state_changed(self, book: SymbolBook) -> None:
        pass


SIM = {
    "exchanges": {
        "binance": {"trading_pairs": ["BTC/USDT", "ETH/USDT"]},
        "okx": {"trading_pairs": ["BTC/USDT"]},
        "kraken": {"trading_pairs": ["BTC/USD"]},
        "bitstamp": {"trading_pairs": ["BTC/USD"]},
    }
}


async def _record_simulation(
    registry: PluginRegistry, out: Path, seconds: float, faults: bool = False
) -> dict[str, list[tuple[Any, ...]]]:
    """Run each plugin's fake exchange and its real connector with a Recorder on its I/O; return
    every LIVE state the connectors' books went through. ``faults``: halfway, a sequence gap
    (Binance: a REST resync), a bad checksum (OKX, Kraken: a resubscription) and a dropped
    connection (Bitstamp: a reconnect)."""
    app = load_config(SIM, registry=registry)
    recorder = Recorder(out, block_bytes=4 * 1024, flush_s=0.2, rotate_bytes=6 * 1024)  # several files per exchange
    spy = _States()
    sim = Simulation(app, registry)
    async with sim as sim_config:
        connectors: list[Connector] = []
        for name, section in sim_config.exchanges.items():
            http, opener = recorder.connector_io(name)
            c = registry.connectors[name](section, http=http, ws_connect=opener, listener=spy)
            recorder.describe(name, header_meta(sim_config, registry, name))
            recorder.attach(c)
            connectors.append(c)
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            for c in connectors:
                tg.start_soon(c.run)
            if faults:
                await anyio.sleep(seconds / 2)
                sim.fakes["binance"].inject("gap", "BTCUSDT")
                sim.fakes["okx"].inject("bad_checksum", "BTC-USDT")
                sim.fakes["kraken"].inject("bad_checksum", "BTC/USD")
                sim.fakes["bitstamp"].inject("disconnect")
                await anyio.sleep(seconds / 2)
            else:
                await anyio.sleep(seconds)
            tg.cancel_scope.cancel()
        for c in connectors:
            await c.http.aclose()
    await recorder.close()
    assert all(len(s) > 5 for s in spy.states.values()) and len(spy.states) == 5, {k: len(v) for k, v in spy.states.items()}
    return spy.states


async def _replay_connectors(
    registry: PluginRegistry, data: ReplayData, connectors: list[Connector] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Replay ``data`` into bare connectors on the recorded clock (no aggregator): their LIVE states."""
    spy = _States()
    first, last = data.span()
    clock = RecordedClock(first - 1_000_000)
    connectors = connectors if connectors is not None else []
    clients = []
    for name, ex in data.exchanges.items():
        header = ex.header or {}
        section = registry.connectors[name].Config.model_validate(header["config"]["exchanges"][name])
        source = ExchangeReplay(ex, clock, (first, last))
        client = httpx.AsyncClient(transport=source)
        clients.append(client)
        connectors.append(registry.connectors[name](section, http=client, ws_connect=source.opener, listener=spy, clock=clock))
    async with anyio.create_task_group() as tg:
        for c in connectors:
            tg.start_soon(c.run)
        await clock.run(last + 1_000_000_000)
        tg.cancel_scope.cancel()
    for client in clients:
        await client.aclose()
    return spy.states


async def test_replaying_a_recorded_simulation_gives_the_live_book_states_the_run_saw(registry: PluginRegistry, tmp_path: Path) -> None:
    live = await _record_simulation(registry, tmp_path / "rec", 3.0)
    files = sorted((tmp_path / "rec").iterdir())
    assert {read_recording(f).exchange for f in files} == set(SIM["exchanges"])
    assert len(files) > len(SIM["exchanges"])  # rotated by size: connections go on across files
    header = read_recording(files[0]).header
    assert header["format"] == "aggcore-recording" and header["aggcore"] and header["symbols"]
    data = load_replay([tmp_path / "rec"], registry)
    assert not data.errors, data.errors
    replayed = await _replay_connectors(registry, data)
    for key, states in live.items():
        # the run may have been stopped between a frame's receipt and its recording: at most
        # the states of the last frame are missing from the replay
        assert replayed[key] == states[: len(replayed[key])] and len(states) - len(replayed[key]) <= 1, key


async def test_a_recording_with_gaps_and_bad_checksums_replays_every_resync_as_live(registry: PluginRegistry, tmp_path: Path) -> None:
    """The book leaves the view at the gap or bad checksum and comes back only with the new
    snapshot the recording holds (Binance's second REST snapshot, OKX's and Kraken's in-band
    ones after resubscribing): the same LIVE states as the run, never a wrong one."""
    live = await _record_simulation(registry, tmp_path / "rec", 4.0, faults=True)
    data = load_replay([tmp_path / "rec"], registry)
    assert not data.errors, data.errors
    connectors: list[Connector] = []
    replayed = await _replay_connectors(registry, data, connectors)
    for key, states in live.items():
        assert replayed[key] == states[: len(replayed[key])] and len(states) - len(replayed[key]) <= 1, key
    books = {f"{c.name}:{s}": b for c in connectors for s, b in c.books.items()}
    assert books["binance:BTCUSDT"].gaps == 1 and books["binance:BTCUSDT"].resyncs == 1
    assert books["kraken:BTC/USD"].checksum_failures == 1
    # OKX's feed sends checksum 0, so the book keeps no wire strings: the one frame with a checksum
    # resyncs it (it cannot be checked), and the book keeps the strings from the new snapshot on
    okx = books["okx:BTC-USDT"]
    assert okx.resyncs == 1 and okx.checksum_failures == 0 and okx.book.bids.raw is not None
    assert next(c for c in connectors if c.name == "bitstamp").reconnects == 1
    for key, book in books.items():
        assert book.state is BookState.LIVE, (key, book.state, book.error)  # each came back


async def test_a_request_the_recording_cannot_answer_leaves_that_book_out_with_the_reason(registry: PluginRegistry, tmp_path: Path) -> None:
    paths = _captures("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    # BTCUSDT is listed by the capture's exchangeInfo, but the capture has no snapshot of it;
    # RUNEEUR waits 19 s for its first delta after its snapshot, so the engine asks for a second
    # snapshot after resync_deadline_s, which the capture does not hold
    config = {"exchanges": {"binance": {"trading_pairs": ["NKNUSDT", "BTCUSDT", "RUNEEUR"]}}}
    out = tmp_path / "events.jsonl"
    app = load_config({**config, "sinks": {"file": {"path": str(out), "events": ["summary"]}}}, registry=registry)
    seen: list[Aggregator] = []
    result = await replay(app, registry, load_replay(paths, registry), on_started=seen.append)
    assert set(result.unanswered["binance"]) == {
        "GET /api/v3/depth?symbol=BTCUSDT&limit=1000",
        "GET /api/v3/depth?symbol=RUNEEUR&limit=1000",
    }
    books = seen[0].connectors["binance"].books
    assert books["NKNUSDT"].live
    for sym, pair in (("BTCUSDT", "BTC/USDT"), ("RUNEEUR", "RUNE/EUR")):
        book = books[sym]
        assert not book.live and "HTTP 404" in (book.error or ""), (sym, book.state, book.error)
        summary = seen[0].get_summary(pair)
        assert summary is not None and summary.venues == [] and "HTTP 404" in summary.excluded["binance"], summary
    assert not any(b'"venues":["binance"]' in line for line in out.read_bytes().splitlines() if b"BTC/USDT" in line)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.run([sys.executable, "-m", "aggcore.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_record_cli_then_damaged_files_replay_the_rest_with_errors_naming_file_and_offset(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        "exchanges:\n  binance: {trading_pairs: [BTC/USDT]}\n  okx: {trading_pairs: [BTC/USDT]}\n  kraken: {trading_pairs: [BTC/USD]}\n"
        "sinks:\n  stdout: {format: json, events: [summary, health]}\n"
    )
    rec = tmp_path / "rec"
    proc = _cli("record", str(config), "--out", str(rec), "--simulate", "--duration", "2.5")
    assert proc.returncode == 0, proc.stderr
    assert f"recorded into {rec}" in proc.stderr and "binance:" in proc.stderr and "frames in" in proc.stderr

    files = {read_recording(f).exchange: f for f in sorted(rec.iterdir())}
    # a block in the middle of the okx file damaged; the kraken file cut inside its last block
    okx = files["okx"].read_bytes()
    members = _member_offsets(okx)
    assert len(members) >= 3, "the recording should hold several blocks"
    bad = bytearray(okx)
    bad[members[2] + 30] ^= 0xFF
    files["okx"].write_bytes(bytes(bad))
    kraken = files["kraken"].read_bytes()
    files["kraken"].write_bytes(kraken[: len(kraken) - 7])

    outs = []
    for _ in range(2):
        proc = _cli("replay", str(config), str(rec))
        assert proc.returncode == 1, proc.stderr  # the damage is an error; the rest still replayed
        assert f"{files['okx']}: corrupt block at offset {members[2]}" in proc.stderr, proc.stderr
        kmembers = _member_offsets(kraken)
        assert f"{files['kraken']}: truncated block at offset {kmembers[-1]}" in proc.stderr, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    events = [orjson.loads(line) for line in outs[0].splitlines()]
    venues = {v for e in events if e["kind"] == "summary" for v in e["data"]["venues"]}
    assert venues == {"binance", "okx", "kraken"}  # what was read of the damaged files still replayed


def _member_offsets(data: bytes) -> list[int]:
    """Byte offsets of the gzip members of a recording file."""
    import zlib

    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        d = zlib.decompressobj(wbits=31)
        try:
            d.decompress(data[pos:])
        except zlib.error:
            break
        if not d.eof:
            break
        pos = len(data) - len(d.unused_data)
    return offsets


def test_a_recording_file_is_plain_gzip_json_lines(tmp_path: Path) -> None:
    """Another program reads it with gzip and a JSON parser, nothing else."""
    recorder_dir = tmp_path / "rec"

    async def main() -> None:
        await _record_simulation(load_plugins(disabled=()), recorder_dir, 1.5)

    anyio.run(main)
    kinds: dict[str, set[str]] = defaultdict(set)
    for path in recorder_dir.iterdir():
        lines = gzip.decompress(path.read_bytes()).splitlines()
        header = orjson.loads(lines[0])
        assert header["format"] == "aggcore-recording" and header["version"] == 1
        kinds[header["exchange"]] |= {orjson.loads(line)["k"] for line in lines[1:]}
    assert len(kinds) == len(SIM["exchanges"]) and all({"open", "in", "out"} <= k for k in kinds.values()), kinds


def test_after_kill_9_every_closed_file_is_complete_and_the_open_one_loses_at_most_its_last_block(tmp_path: Path) -> None:
    import signal
    import time

    config = tmp_path / "sim.yaml"
    config.write_text("exchanges:\n  binance: {trading_pairs: [BTC/USDT, ETH/USDT]}\n")
    rec = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore.cli", "record", str(config), "--out", str(rec), "--simulate", "--rotate-s", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(rec.glob("*.jsonl.gz"))) < 3:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    files = sorted(rec.glob("*.jsonl.gz"))
    assert len(files) >= 3, "rotated by time into several files"
    for n, path in enumerate(files):
        rf = read_recording(path)
        records = list(rf.records())
        if n < len(files) - 1:
            assert not rf.errors and records, (path, rf.errors)  # closed: complete
        else:  # the open one: whole blocks only, or a cut last block
            assert all("truncated block" in str(e) and e.offset == _member_offsets(path.read_bytes())[-1] for e in rf.errors)
        assert rf.header["symbols"] and rf.header["exchange"] == "binance"
    frames = [r for path in files for r in read_recording(path).records() if r["k"] == "in"]
    assert len(frames) > 20 and all(a["t"] <= b["t"] for a, b in zip(frames, frames[1:]))


async def test_from_and_to_pick_a_window_of_the_output(registry: PluginRegistry, tmp_path: Path) -> None:
    paths = _captures("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    app = load_config(
        {
            "exchanges": {"binance": {"trading_pairs": ["NKNUSDT"]}},
            "sinks": {"file": {"path": str(tmp_path / "out.jsonl"), "events": ["summary"]}},
        },
        registry=registry,
    )
    data = load_replay(paths, registry)
    first, last = data.span()
    start, end = first + 10_000_000_000, first + 20_000_000_000
    seen: list[Aggregator] = []
    result = await replay(app, registry, data, start=start, end=end, tail_s=0.0, on_started=seen.append)
    assert not result.errors
    stamps = [orjson.loads(line)["ts"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert stamps and start / 1e9 <= min(stamps) and max(stamps) <= end / 1e9
    book = seen[0].connectors["binance"].books["NKNUSDT"]
    assert book.live and book.last_exchange_ts is not None and book.last_exchange_ts <= end / 1e9 + 1


def test_replay_speed_n_paces_the_recorded_time(tmp_path: Path) -> None:
    paths = _captures("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    config = tmp_path / "c.yaml"
    config.write_text("exchanges:\n  binance: {trading_pairs: [NKNUSDT]}\nsinks:\n  stdout: {format: json}\n")
    import time

    t0 = time.monotonic()
    proc = _cli("replay", str(config), *map(str, paths), "--speed", "10", "--from", "+1", "--to", "+11")
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert took >= 1.0  # 10 s of recorded time at 10x: at least 1 s (behaviour, not a speed check)
    assert "frames" in proc.stderr and proc.stdout


async def test_a_connection_aggcore_closes_carries_on_and_its_books_wait_for_a_new_snapshot(registry: PluginRegistry) -> None:
    """The connector closes a connection the exchange kept open (as a stale-feed check or a heal
    would): the new connection carries on with the recorded stream from then on, and its books,
    which need a new in-band snapshot after resubscribing, stay out of the view: the capture holds
    none. Never a wrong book."""
    paths = _captures("OKX.0", "OKX.ws.1.0")
    data = load_replay(paths, registry)
    first, last = data.span()
    clock = RecordedClock(first - 1_000_000)
    source = ExchangeReplay(data.exchanges["okx"], clock, (first, last))
    client = httpx.AsyncClient(transport=source)
    spy = _States()
    config = registry.connectors["okx"].Config.model_validate({"trading_pairs": ["BTC/USDT"], "inst_types": ["SPOT"]})
    okx = registry.connectors["okx"](config, http=client, ws_connect=source.opener, listener=spy, clock=clock)
    seen: dict[str, Any] = {}

    async def close_midway() -> None:
        frames = data.exchanges["okx"].connections[0].frames
        await clock.sleep_until(frames[len(frames) // 2][0])
        seen["before"] = (okx.messages, okx.books["BTC-USDT"].state)
        await okx.connections[0].close("test: aggcore closes it")

    async with anyio.create_task_group() as tg:
        tg.start_soon(okx.run)
        tg.start_soon(close_midway)
        await clock.run(last + 1_000_000_000)
        tg.cancel_scope.cancel()
    await client.aclose()
    book = okx.books["BTC-USDT"]
    assert seen["before"][1] is BookState.LIVE
    assert okx.reconnects == 1 and okx.messages > seen["before"][0]  # the stream carried on
    assert book.state is not BookState.LIVE and book.checksum_failures == 0  # waiting for a snapshot
    states = spy.states["okx:BTC-USDT"]
    assert states and len(states) < 150  # no LIVE state after the close


def test_run_with_record_prints_events_and_records_beside_them(tmp_path: Path) -> None:
    import signal
    import time

    config = tmp_path / "sim.yaml"
    config.write_text("exchanges:\n  binance: {trading_pairs: [BTC/USDT]}\nsinks:\n  stdout: {format: json, events: [summary]}\n")
    rec = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore.cli", "run", str(config), "--simulate", "--record", str(rec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(rec.glob("*.jsonl.gz")):
            time.sleep(0.2)
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"recorded into {rec}" in err and "binance:" in err
    assert any(orjson.loads(line)["kind"] == "summary" for line in out.splitlines())
    [path] = rec.glob("binance-*.jsonl.gz")
    kinds = [r["k"] for r in read_recording(path).records()]
    assert kinds.count("in") > 5 and kinds[0] == "open" and "http" in kinds
