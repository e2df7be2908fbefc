"""FakeOkx speaks OKX's wire protocol: checked with a raw WebSocket/HTTP client."""

from __future__ import annotations

import httpx
import orjson
import pytest
from aggcore_plugin_okx.fake import FakeOkx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.anyio


async def test_subscribe_ack_snapshot_updates_ping_and_errors() -> None:
    async with FakeOkx(["BTC-USDT"], seed=1, rate_hz=50) as fake:
        async with connect(fake.ws_url) as ws:
            await ws.send("ping")
            assert await ws.recv() == "pong"
            await ws.send('{"id":"7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"books","instId":"NOPE-USDT"}]}')
            ack = orjson.loads(await ws.recv())
            assert ack["id"] == "7" and ack["event"] == "subscribe" and ack["arg"] == {"channel": "books", "instId": "BTC-USDT"} and ack["connId"]
            frames = [orjson.loads(await ws.recv()) for _ in range(4)]
            errors = [f for f in frames if f.get("event") == "error"]
            assert len(errors) == 1 and errors[0]["code"] == "60018" and "instId:NOPE-USDT" in errors[0]["msg"]
            books = [f for f in frames if "action" in f]
            snap = books[0]
            assert snap["action"] == "snapshot" and snap["data"][0]["prevSeqId"] == -1 and snap["data"][0]["checksum"] == 0
            assert len(snap["data"][0]["bids"][0]) == 4
            prev = snap["data"][0]["seqId"]
            for f in books[1:]:
                assert f["action"] == "update" and f["data"][0]["prevSeqId"] == prev
                prev = f["data"][0]["seqId"]
            await ws.send('{"op":"login","args":[]}')
            await ws.send("not json")
            codes = set()
            while len(codes) < 2:
                msg = await ws.recv()
                if '"event":"error"' in msg:
                    codes.add(orjson.loads(msg)["code"])
            assert codes == {"60019", "60012"}


async def test_idle_connection_is_closed_with_4004() -> None:
    async with FakeOkx(["BTC-USDT"], idle_close_s=0.3) as fake:
        async with connect(fake.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4004


async def test_rest_routes() -> None:
    async with FakeOkx(["BTC-USDT", "BTC-USDT-SWAP"]) as fake:
        async with httpx.AsyncClient(base_url=fake.rest_url) as http:
            spot = (await http.get("/api/v5/public/instruments", params={"instType": "SPOT"})).json()
            assert spot["code"] == "0" and {d["instId"] for d in spot["data"]} == {"BTC-USDT", "ETH-USDT"}
            swap = (await http.get("/api/v5/public/instruments", params={"instType": "SWAP"})).json()
            [s] = swap["data"]
            assert (s["instId"], s["ctType"], s["ctValCcy"], s["settleCcy"]) == ("BTC-USDT-SWAP", "linear", "BTC", "USDT")
            book = (await http.get("/api/v5/market/books", params={"instId": "BTC-USDT", "sz": "5"})).json()
            d = book["data"][0]
            assert book["code"] == "0" and len(d["bids"]) == 5 and d["seqId"] == fake.seq_ids["BTC-USDT"]
            bad = (await http.get("/api/v5/market/books", params={"instId": "NOPE"})).json()
            assert bad["code"] == "51001"
