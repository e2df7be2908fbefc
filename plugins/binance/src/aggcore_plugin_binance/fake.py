"""FakeBinance: the Binance spot market-data protocol over real sockets on 127.0.0.1.

What it speaks (same shapes as the real exchange):

- WebSocket ``/stream`` (combined, ``{"stream":..,"data":..}`` wrapper) and ``/ws`` (raw
  payloads); streams in the URL (``/stream?streams=a@depth@100ms/b@depth``) or via
  ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/``SET_PROPERTY``/``GET_PROPERTY`` with
  ``{"result":..,"id":..}`` acks and ``{"error":{"code":..,"msg":..},"id":..}`` errors.
  A well-formed stream of an unknown symbol is acknowledged and then silent, like Binance.
- ``depthUpdate`` events with ``U``/``u`` update ids (one id per level change), no in-band
  snapshot; REST ``/api/v3/depth`` snapshots with ``lastUpdateId``; ``/api/v3/exchangeInfo``;
  ``/api/v3/ping``, ``/api/v3/time``. Unknown symbol -> HTTP 400 ``{"code":-1121,...}``.
- Limits: more than 5 client messages in a second closes the connection; a ping frame every
  ``ping_interval_s`` (20 s) and a close when no pong comes within ``pong_timeout_s``; a
  connection ends after ``max_connection_age_s`` (24 h); REST weight 6000/min per client with
  ``X-MBX-USED-WEIGHT-1M`` and 429 + ``Retry-After`` when exceeded.
- Maintenance: :meth:`FakeBinance.server_shutdown` sends ``serverShutdown`` then closes.

Faults: every :class:`~aggcore.testing.Fault` the protocol can express (no checksum and no
in-band snapshot on Binance, so ``BAD_CHECKSUM`` and ``SNAPSHOT`` are not supported).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session
from websockets.exceptions import ConnectionClosed

__all__ = ["FakeBinance", "exchange_symbol"]

_STREAM = re.compile(r"^([a-z0-9]+)@depth(?:@(100|1000)ms)?$")


def _weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def exchange_symbol(symbol: str, spec: InstrumentSpec) -> dict[str, Any]:
    """One instrument as ``GET /api/v3/exchangeInfo`` lists it."""
    tick = f"{spec.tick:.{spec.price_precision}f}"
    step = f"{10 ** -spec.qty_precision:.{spec.qty_precision}f}"
    return {
        "symbol": symbol,
        "status": spec.extra.get("status", "TRADING"),
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00", "stepSize": step},
        ],
    }


class FakeBinance(FakeExchange):
    """A fake Binance spot exchange. See the module docstring."""

    name = "binance"
    supported_faults = frozenset(Fault) - {Fault.BAD_CHECKSUM, Fault.SNAPSHOT}
    default_symbols = {
        "BTCUSDT": InstrumentSpec("BTC", "USDT", mid=30000.0),
        "ETHUSDT": InstrumentSpec("ETH", "USDT", mid=2000.0),
    }
    ws_path = ""
    rest_path = ""
    max_incoming_per_s: ClassVar[int] = 5
    weight_limit_per_min: ClassVar[int] = 6000

    def __init__(
        self,
        *args: Any,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 60.0,
        max_connection_age_s: float = 24 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.max_connection_age_s = max_connection_age_s
        self.update_ids: dict[str, int] = {s: 1_000_000 * (i + 1) for i, s in enumerate(self.books)}
        self._ranges: dict[str, tuple[int, int] | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._weights: deque[tuple[float, int]] = deque()
        self._reply_headers: dict[str, str] = {}
        self.closed_for_rate = 0

    # -- instruments and REST ----------------------------------------------------------------

    def _charge(self, weight: int) -> tuple[int, Any] | None:
        now = time.monotonic()
        while self._weights and now - self._weights[0][0] >= 60.0:
            self._weights.popleft()
        used = sum(w for _, w in self._weights) + weight
        if used > self.weight_limit_per_min:
            retry = 60.0 - (now - self._weights[0][0]) if self._weights else 1.0
            self._reply_headers["Retry-After"] = str(max(1, int(retry + 0.999)))
            return 429, {
                "code": -1003,
                "msg": f"Too much request weight used; current limit is {self.weight_limit_per_min} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            }
        self._weights.append((now, weight))
        self._reply_headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return None

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
        """A route's reply with the headers it set (``X-MBX-USED-WEIGHT-1M``, ``Retry-After``)."""
        self._reply_headers = {}
        status, body = self._route(path, query)
        return status, body, self._reply_headers

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/ping":
            return self._charge(1) or (200, {})
        if path == "/api/v3/time":
            return self._charge(1) or (200, {"serverTime": int(time.time() * 1000)})
        if path == "/api/v3/exchangeInfo":
            limited = self._charge(20)
            if limited:
                return limited
            wanted = query.get("symbol")
            if wanted is not None and wanted not in self.specs:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [
                    exchange_symbol(s, spec) for s, spec in self.specs.items() if wanted in (None, s)
                ],
            }
        if path == "/api/v3/depth":
            try:
                limit = min(int(query.get("limit", "100")), 5000)
            except ValueError:
                return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}
            limited = self._charge(_weight(limit))
            if limited:
                return limited
            symbol = query.get("symbol")
            if not symbol:
                return 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
            if symbol not in self.books:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            bids, asks = self.snapshot_levels(symbol, limit)
            return 200, {"lastUpdateId": self.update_ids[symbol], "bids": bids, "asks": asks}
        return 404, {"code": -1000, "msg": f"no route {path}"}

    # -- WebSocket ---------------------------------------------------------------------------------

    def on_connect(self, session: Session) -> None:
        path, _, query = session.path.partition("?")
        session.state["opened"] = time.monotonic()
        session.state["times"] = deque()
        session.state["silent"] = []  # well-formed streams of unknown symbols: acked, never fed
        if path.rstrip("/") == "/stream":
            session.state["combined"] = True
            streams = query.split("streams=", 1)[1].split("&", 1)[0].split("/") if "streams=" in query else []
        elif path == "/ws" or path.startswith("/ws/"):
            session.state["combined"] = False
            streams = [s for s in path[4:].split("/") if s]
        else:
            self._spawn(session.ws.close(1008, "unknown path"))
            return
        for stream in streams:
            self._add_stream(session, stream, None)
        self._spawn(self._keepalive(session))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keepalive(self, session: Session) -> None:
        """Ping every ``ping_interval_s``, close without a pong in time or at the connection's end of life."""
        ws = session.ws
        end = session.state["opened"] + self.max_connection_age_s
        next_ping = time.monotonic() + self.ping_interval_s
        try:
            while True:
                now = time.monotonic()
                if now >= end:
                    await ws.close(1001, "connection lifetime (24h) reached")
                    return
                if now >= next_ping:
                    waiter = await ws.ping()
                    try:
                        await asyncio.wait_for(waiter, self.pong_timeout_s)
                    except asyncio.TimeoutError:
                        await ws.close(1008, "pong timeout")
                        return
                    next_ping = time.monotonic() + self.ping_interval_s
                await asyncio.sleep(max(0.0, min(next_ping, end) - time.monotonic()))
        except ConnectionClosed:
            return

    def _add_stream(self, session: Session, stream: str, request_id: Any) -> bool:
        m = _STREAM.match(stream)
        if m is None:
            return False
        symbol = m.group(1).upper()
        if symbol in self.books:
            self.subscribe(session, symbol, stream=stream, id=request_id)
        elif stream not in session.state["silent"]:
            session.state["silent"].append(stream)
        return True

    def _reply(self, session: Session, body: dict[str, Any]) -> None:
        session.send_soon(orjson.dumps(body).decode())

    def _error(self, session: Session, request_id: Any, code: int, msg: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "msg": msg}
        if data is not None:
            error["data"] = data
        self._reply(session, {"error": error, "id": request_id})

    def on_message(self, session: Session, text: str) -> None:
        if session.state.get("closing"):
            return
        times: deque[float] = session.state["times"]
        now = time.monotonic()
        times.append(now)
        while times and now - times[0] > 1.0:
            times.popleft()
        if len(times) > self.max_incoming_per_s:
            self.closed_for_rate += 1
            session.state["closing"] = True
            self._spawn(session.ws.close(1008, "Too many requests"))
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(session, None, 3, "Invalid JSON: expected value at line 1 column 1")
            return
        if not isinstance(msg, dict) or "method" not in msg:
            self._error(session, None, 2, "Invalid request: missing field `method` at line 1 column 1")
            return
        request_id = msg.get("id")
        if not (request_id is None or isinstance(request_id, int) or (isinstance(request_id, str) and len(request_id) <= 36)):
            self._error(session, None, 2, "Invalid request: request ID must be an unsigned integer")
            return
        method = msg["method"]
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            bad = [s for s in params if not isinstance(s, str) or _STREAM.match(s) is None]
            if bad:
                self._error(session, request_id, 2, "Invalid request: invalid stream", bad[0])
                return
            for stream in params:
                self._add_stream(session, stream, request_id)
            self._reply(session, {"result": None, "id": request_id})
        elif method == "UNSUBSCRIBE":
            for stream in params:
                m = _STREAM.match(stream) if isinstance(stream, str) else None
                if m is not None:
                    self.unsubscribe(session, m.group(1).upper())
                if stream in session.state["silent"]:
                    session.state["silent"].remove(stream)
            self._reply(session, {"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            streams = [sub["stream"] for sub in session.subscribed.values()] + session.state["silent"]
            self._reply(session, {"result": streams, "id": request_id})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                self._reply(session, {"error": {"code": 0, "msg": "Unknown property"}, "id": request_id})
            elif method == "GET_PROPERTY":
                self._reply(session, {"result": session.state["combined"], "id": request_id})
            elif len(params) < 2 or not isinstance(params[1], bool):
                self._error(session, request_id, 1, "Invalid value type: expected Boolean")
            else:
                session.state["combined"] = params[1]
                self._reply(session, {"result": None, "id": request_id})
        else:
            self._error(
                session,
                request_id,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
                "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 28",
            )

    def _wrap(self, session: Session, stream: str, payload: dict[str, Any]) -> str:
        if session.state.get("combined", True):
            return orjson.dumps({"stream": stream, "data": payload}).decode()
        return orjson.dumps(payload).decode()

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        if not changes:
            self._ranges[symbol] = None
            return
        first = self.update_ids[symbol] + 1
        self.update_ids[symbol] += len(changes)
        self._ranges[symbol] = (first, self.update_ids[symbol])

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        span = self._ranges.get(symbol)
        if span is None:
            return []
        payload = {
            "e": "depthUpdate",
            "E": int(time.time() * 1000),
            "s": symbol,
            "U": span[0],
            "u": span[1],
            "b": [[c.price, c.qty] for c in changes if c.side == "bid"],
            "a": [[c.price, c.qty] for c in changes if c.side == "ask"],
        }
        return [self._wrap(session, session.subscribed[symbol]["stream"], payload)]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        sub = session.subscribed.get(symbol) if symbol else None
        error: dict[str, Any] = {"code": 2, "msg": message}
        if sub is not None:
            error["data"] = sub["stream"]
        return orjson.dumps({"error": error, "id": sub["id"] if sub else None}).decode()

    # -- maintenance --------------------------------------------------------------------------------

    def server_shutdown(self, grace_s: float = 5.0) -> None:
        """Announce ``serverShutdown`` on every connection and close them ``grace_s`` later."""
        payload = {"e": "serverShutdown", "E": int(time.time() * 1000)}
        for session in list(self.sessions):
            session.send_soon(self._wrap(session, "!serverShutdown", payload))
            self._spawn(self._close_later(session, grace_s))

    async def _close_later(self, session: Session, delay: float) -> None:
        await asyncio.sleep(delay)
        await session.ws.close(1001, "server shutdown")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().stop()
