"""FakeKraken: the Kraken spot WebSocket v2 protocol over real sockets on 127.0.0.1.

What it speaks (as the real exchange does):

- WebSocket at ``/v2``: ``status`` on connect; ``subscribe``/``unsubscribe`` of channel ``book``
  (depth 10/25/100/500/1000, one ack per symbol, ``Currency pair not supported X/Y`` for unknown or
  v1-style symbols, ``Subscription depth not supported`` for other depths); a snapshot then updates
  whose prices/quantities are JSON numbers **with** trailing zeros (``0.5660``) and a CRC32 checksum
  of the top 10 on each; channel ``instrument`` (snapshot of pairs); ``{"method":"ping"}`` -> pong;
  ``{"channel":"heartbeat"}`` each idle second.
- Depth semantics: each subscription sees only the top ``depth`` levels. Levels entering that range
  are published; levels leaving it because better ones arrived get **no** delete (the client must
  truncate), levels really removed get ``qty 0``.
- REST ``GET /0/public/AssetPairs`` with v1 ``wsname`` (``XBT/USD``, ``XDG/USD``) and a dark-pool pair.

Faults: every one of :class:`~aggcore.testing.Fault` (Kraken has no sequence numbers, so a dropped or
reordered update shows as a checksum mismatch on the next update; a duplicate is harmless).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session, iso_now

from .messages import CHECKSUM_DEPTH, checksum_levels

__all__ = ["FakeKraken"]

_DEPTHS = (10, 25, 100, 500, 1000)
_V2_TO_V1 = {"BTC": "XBT", "DOGE": "XDG"}
_CHECKSUM = re.compile(r'"checksum":(\d+)')


def _levels(levels: list[tuple[str, str]]) -> str:
    # JSON numbers written from the wire strings, trailing zeros kept (as Kraken's engine sends them)
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"


class FakeKraken(FakeExchange):
    """Kraken spot v2 fake. Active books by default: ``BTC/USD`` and ``ETH/USD``; ``DOGE/USD`` is listed."""

    name = "kraken"
    ws_path = "/v2"
    supported_faults: ClassVar[frozenset[Fault]] = frozenset(Fault)
    heartbeat_interval_s: float | None = 0.25  # the check period; heartbeats go out each idle second
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        "BTC/USD": InstrumentSpec("BTC", "USD", mid=30000.0, tick=0.1, price_precision=1, qty_precision=8),
        "ETH/USD": InstrumentSpec("ETH", "USD", mid=2000.0, tick=0.01, price_precision=2, qty_precision=8),
    }
    listed_only: ClassVar[dict[str, InstrumentSpec]] = {
        "DOGE/USD": InstrumentSpec("DOGE", "USD", mid=0.1, tick=0.000001, price_precision=7, qty_precision=8),
    }

    def __init__(self, symbols: Any = None, **kwargs: Any) -> None:
        super().__init__(list(self.default_symbols) if symbols is None else symbols, **kwargs)
        self.connection_id = 13834774380200032777  # > 2**63, as the real one

    def instruments(self) -> dict[str, InstrumentSpec]:
        return {**self.default_symbols, **self.listed_only}

    # -- REST -------------------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/0/public/AssetPairs":
            result: dict[str, Any] = {}
            for sym, spec in self.specs.items():
                b1, q1 = _V2_TO_V1.get(spec.base, spec.base), _V2_TO_V1.get(spec.quote, spec.quote)
                result[f"{b1}{q1}"] = {
                    "altname": f"{b1}{q1}", "wsname": f"{b1}/{q1}", "aclass_base": "currency", "base": b1,
                    "aclass_quote": "currency", "quote": q1, "lot": "unit", "cost_decimals": 5,
                    "pair_decimals": spec.price_precision, "lot_decimals": spec.qty_precision,
                    "tick_size": f"{spec.tick:.{spec.price_precision}f}", "status": "online",
                }
            result["XBTUSD.d"] = {"altname": "XBTUSD.d", "base": "XXBT", "quote": "ZUSD", "pair_decimals": 1, "lot_decimals": 8}
            return 200, {"error": [], "result": result}
        return 404, {"error": ["EGeneral:Unknown method"]}

    # -- WebSocket --------------------------------------------------------------------------------------
    def on_connect(self, session: Session) -> None:
        session.send_soon(orjson.dumps({
            "channel": "status", "type": "update",
            "data": [{"api_version": "v2", "connection_id": self.connection_id, "system": "online", "version": "2.0.0"}],
        }).decode())

    def _reply(self, session: Session, body: dict[str, Any]) -> None:
        body.update(time_in=iso_now(), time_out=iso_now())
        session.send_soon(orjson.dumps(body).decode())

    def on_message(self, session: Session, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._reply(session, {"error": "Malformed request", "success": False})
            return
        method = msg.get("method")
        req: dict[str, Any] = {"req_id": msg["req_id"]} if "req_id" in msg else {}
        if method == "ping":
            self._reply(session, {"method": "pong", **req})
            return
        params = msg.get("params") or {}
        channel = params.get("channel")
        if method not in ("subscribe", "unsubscribe") or channel not in ("book", "instrument"):
            self._reply(session, {"error": f"Unsupported request {method} {channel}", "method": method, "success": False, **req})
            return
        if channel == "instrument":
            self._instrument(session, method, req)
            return
        depth = params.get("depth", 10)
        if depth not in _DEPTHS:
            self._reply(session, {"error": "Subscription depth not supported", "method": method, "success": False, **req})
            return
        for sym in params.get("symbol") or []:
            result = {"channel": "book", "depth": depth, "snapshot": True, "symbol": sym}
            if method == "unsubscribe":
                if sym in session.subscribed:
                    self.unsubscribe(session, sym)
                    self._reply(session, {"method": method, "result": result, "success": True, **req})
                else:
                    self._reply(session, {"error": "Subscription Not Found", "method": method, "success": False, "symbol": sym, **req})
            elif not isinstance(sym, str) or "/" not in sym:
                self._reply(session, {"error": f"Currency pair not in ISO 4217-A3 format {sym}", "method": method, "success": False, "symbol": sym, **req})
            elif sym not in self.books:
                self._reply(session, {"error": f"Currency pair not supported {sym}", "method": method, "success": False, "symbol": sym, **req})
            elif sym in session.subscribed:
                self._reply(session, {"error": "Already subscribed", "method": method, "success": False, "symbol": sym, **req})
            else:
                self._reply(session, {"method": method, "result": result, "success": True, **req})
                self.subscribe(session, sym, depth=depth)

    def _instrument(self, session: Session, method: str, req: dict[str, Any]) -> None:
        self._reply(session, {"method": method, "result": {"channel": "instrument", "snapshot": True}, "success": True, **req})
        if method != "subscribe":
            return
        pairs = [
            {"symbol": sym, "base": s.base, "quote": s.quote, "status": "online", "price_precision": s.price_precision,
             "qty_precision": s.qty_precision, "price_increment": s.tick, "qty_increment": 10 ** -s.qty_precision}
            for sym, s in self.specs.items()
        ]
        assets = sorted({s.base for s in self.specs.values()} | {s.quote for s in self.specs.values()})
        session.send_soon(orjson.dumps({
            "channel": "instrument", "type": "snapshot",
            "data": {"assets": [{"id": a, "status": "enabled"} for a in assets], "pairs": pairs},
        }).decode())

    # -- book frames -----------------------------------------------------------------------------------
    def _frame(self, kind: str, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int) -> str:
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{_levels(bids)},'
            f'"asks":{_levels(asks)},"checksum":{checksum},"timestamp":"{iso_now()}"}}]}}'
        )

    def _checksum(self, symbol: str) -> int:
        bids, asks = self.books[symbol].top(CHECKSUM_DEPTH)
        return checksum_levels(asks, bids)

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        sub = session.subscribed[symbol]
        depth = int(sub.get("depth", 10))
        bids, asks = self.snapshot_levels(symbol, depth)
        top_b, top_a = self.books[symbol].top(depth)
        sub["view"] = (dict(top_b), dict(top_a))  # what a correct client holds after truncating
        session.state["last_data"] = asyncio.get_running_loop().time()
        return [self._frame("snapshot", symbol, bids, asks, self._checksum(symbol))]

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        sub = session.subscribed[symbol]
        depth = int(sub.get("depth", 10))
        book = self.books[symbol]
        top_b, top_a = book.top(depth)
        view_b, view_a = sub["view"]
        out: list[list[tuple[str, str]]] = []
        zero = book.fmt_qty(0)
        for view, top, truth in ((view_b, dict(top_b), book.bids), (view_a, dict(top_a), book.asks)):
            levels = [(p, zero) for p in view if p not in top and p not in truth]  # really removed
            levels += [(p, q) for p, q in top.items() if view.get(p) != q]  # changed or entering range
            out.append(levels)
        sub["view"] = (dict(top_b), dict(top_a))
        if not out[0] and not out[1]:
            return []
        session.state["last_data"] = asyncio.get_running_loop().time()
        return [self._frame("update", symbol, out[0], out[1], self._checksum(symbol))]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        body: dict[str, Any] = {"error": message, "method": "subscribe", "success": False}
        if symbol is not None:
            body["symbol"] = symbol
        body.update(time_in=iso_now(), time_out=iso_now())
        return orjson.dumps(body).decode()

    def corrupt(self, frame: str) -> str:
        return _CHECKSUM.sub(lambda m: f'"checksum":{(int(m.group(1)) + 1) & 0xFFFFFFFF}', frame, count=1)

    def heartbeat_frames(self, session: Session) -> list[str]:
        loop_time = asyncio.get_running_loop().time()
        if not session.subscribed or loop_time < self.stalled_until:
            return []
        idle_since = max(session.state.get("last_data", 0.0), session.state.get("last_heartbeat", 0.0))
        if loop_time - idle_since < 1.0:
            return []  # heartbeats only in the absence of other updates, about once a second
        session.state["last_heartbeat"] = loop_time
        return ['{"channel":"heartbeat"}']
