"""FakeBinance speaks Binance's protocol: checked with a bare WebSocket client and httpx."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from aggcore_plugin_binance.fake import FakeBinance

pytestmark = pytest.mark.anyio


async def recv(ws: Any, timeout: float = 2.0) -> Any:
    with anyio.fail_after(timeout):
        return orjson.loads(await ws.recv())


async def test_url_streams_on_combined_and_raw_endpoints() -> None:
    fake = FakeBinance(seed=1, rate_hz=100)
    async with fake:
        async with connect(fake.ws_url + "/stream?streams=btcusdt@depth@100ms/ethusdt@depth") as ws:
            seen: set[str] = set()
            while len(seen) < 2:
                msg = await recv(ws)
                assert msg["data"]["e"] == "depthUpdate"
                seen.add(msg["stream"])
            assert seen == {"btcusdt@depth@100ms", "ethusdt@depth"}
        async with connect(fake.ws_url + "/ws/btcusdt@depth@100ms") as ws:
            first = await recv(ws)
            second = await recv(ws)
            assert first["e"] == "depthUpdate" and first["s"] == "BTCUSDT"
            assert second["U"] == first["u"] + 1


async def test_subscribe_ack_unknown_symbol_is_silent_and_errors() -> None:
    fake = FakeBinance(seed=1, rate_hz=100)
    async with fake:
        async with connect(fake.ws_url + "/stream") as raw:
            ws = _Paced(raw)
            await ws.send('{"method":"SUBSCRIBE","params":["xrpxrp@depth@100ms"],"id":1}')
            assert await recv(ws) == {"result": None, "id": 1}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            assert await recv(ws) == {"result": ["xrpxrp@depth@100ms"], "id": 2}
            await ws.send('{"method":"SUBSCRIBE","params":["BTC-USDT@book"],"id":3}')
            reply = await recv(ws)
            assert reply["id"] == 3 and reply["error"]["code"] == 2 and "invalid stream" in reply["error"]["msg"]
            await ws.send('{"method":"FOO","id":4}')
            reply = await recv(ws)
            assert reply["id"] == 4 and "unknown variant" in reply["error"]["msg"]
            await ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":5}')
            assert await recv(ws) == {"result": True, "id": 5}
            await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":6}')
            assert await recv(ws) == {"result": None, "id": 6}
            assert (await recv(ws))["stream"] == "btcusdt@depth@100ms"
            await ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@depth@100ms"],"id":7}')
            while (msg := await recv(ws)).get("id") != 7:
                pass
            assert msg == {"result": None, "id": 7}


class _Paced:
    """A client that keeps under Binance's 5 incoming messages per second."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await anyio.sleep(0.21)
        await self.ws.send(text)

    async def recv(self) -> Any:
        return await self.ws.recv()


async def test_more_than_five_messages_a_second_closes_the_connection() -> None:
    fake = FakeBinance(seed=1, rate_hz=10)
    async with fake:
        async with connect(fake.ws_url + "/stream") as ws:
            with pytest.raises(ConnectionClosed) as info:
                for i in range(7):
                    await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
                while True:
                    await recv(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert fake.closed_for_rate == 1


async def test_server_shutdown_notice_then_close() -> None:
    fake = FakeBinance(seed=1, rate_hz=10)
    async with fake:
        async with connect(fake.ws_url + "/stream") as ws:
            fake.server_shutdown(grace_s=0.1)
            assert await recv(ws) == {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": pytest.approx(0, abs=1e13)}}
            with pytest.raises(ConnectionClosed):
                await recv(ws)


async def test_rest_routes_errors_and_weight() -> None:
    fake = FakeBinance(seed=1, rate_hz=10)
    async with fake:
        fake.weight_limit_per_min = 70  # type: ignore[misc]  # a class constant, lowered for the test
        async with httpx.AsyncClient(base_url=fake.rest_url) as http:
            info = (await http.get("/api/v3/exchangeInfo")).json()
            assert {s["symbol"]: (s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]} == {
                "BTCUSDT": ("BTC", "USDT"),
                "ETHUSDT": ("ETH", "USDT"),
            }
            r = await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5})
            body = r.json()
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "25"
            assert body["lastUpdateId"] == fake.update_ids["BTCUSDT"] and len(body["bids"]) == 5
            assert float(body["bids"][0][0]) < float(body["asks"][0][0])
            bad = await http.get("/api/v3/depth", params={"symbol": "XRPXRP"})
            assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}
            r = await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000})  # 20 + 5 + 5 + 50 > 70
            assert r.status_code == 429 and r.json()["code"] == -1003 and int(r.headers["Retry-After"]) >= 1
