"""The receive path: complete data frames are handled where the socket read delivers them, in
order with everything that still goes through ``recv()`` (fragmented messages, binary frames);
errors are raised from the read loop as before; close and limits are websockets' own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from aggcore.book import SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig
from aggcore.symbols import SymbolTable

pytestmark = pytest.mark.anyio


class Recorder(Connector):
    name = "recorder"
    Config = ConnectorConfig
    ws_url = "ws://127.0.0.1:1/ws"
    rest_url = "http://127.0.0.1:1"
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)

    def __init__(self, config: ConnectorConfig, fail_on: str | None = None) -> None:
        super().__init__(config)
        self.got: list[str | bytes] = []
        self.fail_on = fail_on
        self.read: Any = None

    async def load_symbols(self) -> SymbolTable:
        return SymbolTable([])

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return []

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        if frame == self.fail_on:
            raise RuntimeError(f"plugin bug on {frame!r}")
        if frame == "bad-value":
            raise ValueError("a frame the parser rejects")
        self.got.append(frame)


async def _session(send: Callable[[ServerConnection], Awaitable[None]], **kw: Any) -> tuple[Recorder, BaseException | None]:
    async def handler(ws: ServerConnection) -> None:
        await send(ws)
        await ws.close()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = Recorder(ConnectorConfig(ws_url=f"ws://127.0.0.1:{port}/ws"), **kw)
        error: BaseException | None = None
        with anyio.fail_after(10):
            try:
                await conn._session(0, [])
            except Exception as exc:
                error = exc
    return conn, error


async def test_frames_arrive_in_order_whichever_path_they_take() -> None:
    expected: list[str | bytes] = []

    async def send(ws: ServerConnection) -> None:
        for i in range(300):
            if i % 20 == 0:
                await anyio.sleep(0.01)  # bursts: some reads find the queue empty, some do not
            if i % 50 == 7:
                await ws.send(iter([f"frag{i}-a ", f"frag{i}-b"]))  # a fragmented message: recv() assembles it
                expected.append(f"frag{i}-a frag{i}-b")
            elif i % 50 == 11:
                await ws.send(f"bin{i}".encode())
                expected.append(f"bin{i}".encode())
            else:
                await ws.send(f"text{i}")
                expected.append(f"text{i}")

    conn, error = await _session(send)
    assert error is None
    assert conn.got == expected and conn.messages == 300


async def test_parser_errors_and_plugin_bugs_are_reported_and_the_session_goes_on() -> None:
    # issue 16: no exception from one frame's data may end a connector
    async def send(ws: ServerConnection) -> None:
        for frame in ["one", "bad-value", "two", "boom", "three"]:
            await ws.send(frame)

    conn, error = await _session(send, fail_on="boom")
    assert error is None
    assert conn.got == ["one", "two", "three"]
    assert conn.error_counts.get("parsing") == 2 and "plugin bug" in (conn.last_error or "")


async def _spied_session(send: Callable[[ServerConnection], Awaitable[None]], **kw: Any) -> tuple[Recorder, BaseException | None, Any]:
    """:func:`_session`, also returning the connection's direct receive path (None: not used)."""
    from aggcore import connector as mod

    seen: list[Any] = []
    original = mod._direct_frames

    def spy(c: Any, conn: Any) -> Any:
        d = original(c, conn)
        seen.append(d)
        return d

    mod._direct_frames = spy
    try:
        conn, error = await _session(send, **kw)
    finally:
        mod._direct_frames = original
    return conn, error, seen[0] if seen else None


async def test_the_direct_path_is_used_with_the_websockets_client() -> None:
    async def send(ws: ServerConnection) -> None:
        await anyio.sleep(0.1)  # the client is reading by now
        for i in range(200):
            await ws.send(f"t{i}")

    conn, error, direct = await _spied_session(send)
    assert error is None and len(conn.got) == 200
    assert direct is not None and direct.frames > 0 and direct.parsed > 0  # split out of the reads here


def test_a_library_user_on_plain_asyncio_run_gets_every_venue() -> None:
    """``asyncio.run`` (not ``anyio.run``): tasks a plugin starts while handling a frame (Coinbase
    waits for its snapshot, Bitstamp schedules its REST snapshot) still run."""
    import asyncio

    from aggcore import Aggregator
    from aggcore.plugins import load_plugins

    if not {"coinbase", "bitstamp"} <= set(load_plugins().connectors):
        pytest.skip("needs the coinbase and bitstamp plugins")

    async def main() -> list[str]:
        config = {"exchanges": {"coinbase": {"trading_pairs": ["BTC/USD"]}, "bitstamp": {"trading_pairs": ["BTC/USD"]}}}
        async with Aggregator(config, simulate=True) as agg:
            async for summary in agg.subscribe_summaries():
                if set(summary.venues) == {"coinbase", "bitstamp"}:
                    return sorted(agg.connectors["coinbase"].error_counts)
        return ["no summary"]

    assert asyncio.run(asyncio.wait_for(main(), 30)) == []  # both venues, and no error of any kind


# -- frames cut anywhere: the server writes raw WebSocket bytes in pieces ---------------------------


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([head, n]) + payload
    if n < 65536:
        return bytes([head, 126]) + n.to_bytes(2, "big") + payload
    return bytes([head, 127]) + n.to_bytes(8, "big") + payload


def _stream() -> tuple[bytes, list[str | bytes]]:
    """Frames of every length form and kind, in order, with what the connector must get."""
    out: list[bytes] = []
    expected: list[str | bytes] = []
    for i in range(120):
        kind = i % 12
        if kind == 3:
            out.append(_frame(0x9, f"ping{i}".encode()))  # websockets answers it
        elif kind == 5:
            out.append(_frame(0x1, f"frag{i}-a ".encode(), fin=False))
            out.append(_frame(0x9, b"mid"))  # a control frame between fragments
            out.append(_frame(0x0, f"frag{i}-b".encode()))
            expected.append(f"frag{i}-a frag{i}-b")
        elif kind == 7:
            out.append(_frame(0x2, bytes([i, 0, 255])))
            expected.append(bytes([i, 0, 255]))
        elif kind == 9:
            body = ("é" * 40_000 + str(i)).encode()  # 80 kB: the 8-byte length
            out.append(_frame(0x1, body))
            expected.append(body.decode())
        elif kind == 10:
            out.append(_frame(0xA, b"unsolicited pong"))
        else:
            body = (f"text{i} " + "x" * (i * 7 % 300)).encode()  # short and 2-byte lengths
            out.append(_frame(0x1, body))
            expected.append(body.decode())
    return b"".join(out), expected


async def _raw_session(pieces: list[bytes], **kw: Any) -> tuple[Recorder, BaseException | None, Any]:
    async def send(ws: ServerConnection) -> None:
        await anyio.sleep(0.1)  # the client is reading by now
        for piece in pieces:
            ws.transport.write(piece)
            await anyio.sleep(0.002)  # one read each, mostly (TCP_NODELAY)
        await anyio.sleep(0.1)

    return await _spied_session(send, **kw)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_frames_cut_anywhere_across_reads_arrive_whole_and_in_order(seed: int) -> None:
    import random

    data, expected = _stream()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 400))  # inside headers, lengths and payloads
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    conn, error, direct = await _raw_session(pieces)
    assert error is None
    assert conn.got == expected
    assert conn.messages == len(expected)
    assert direct is not None and direct.parsed > 0.5 * len(expected)  # most skipped websockets' parser


async def test_a_frame_over_the_limit_closes_with_1009_as_websockets_does() -> None:
    class Small(Recorder):
        max_frame_bytes = 1000

    async def send(ws: ServerConnection) -> None:
        await anyio.sleep(0.1)
        ws.transport.write(_frame(0x1, b"fine") + _frame(0x1, b"y" * 5000)[:300])  # the header says too big
        await anyio.sleep(1)

    async def handler(ws: ServerConnection) -> None:
        await send(ws)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = Small(ConnectorConfig(ws_url=f"ws://127.0.0.1:{port}/ws"))
        with anyio.fail_after(10), pytest.raises(Exception) as raised:
            await conn._session(0, [])
    assert conn.got == ["fine"]
    assert "1009" in str(raised.value) or "too big" in str(raised.value).lower()


async def test_text_that_is_not_utf8_closes_with_1007_as_websockets_does() -> None:
    pieces = [_frame(0x1, b"good") + _frame(0x1, b"\xff\xfe bad") + _frame(0x1, b"never")]
    conn, error, _ = await _raw_session(pieces)
    assert conn.got == ["good"]
    assert isinstance(error, ConnectionClosed) and error.sent is not None and error.sent.code == 1007
