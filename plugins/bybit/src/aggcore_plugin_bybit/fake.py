"""A fake Bybit v5 public server: the same protocol over real sockets on 127.0.0.1.

- WebSocket ``<ws_url>/spot`` and ``<ws_url>/linear`` (``ws_url`` ends in ``/v5/public``);
  any other path is refused at the handshake with HTTP 404.
- ``{"op":"subscribe"|"unsubscribe","args":[..],"req_id":..}`` -> one reply per request in the
  category's shape (spot ``ret_msg:"subscribe"``, linear ``ret_msg:""`` and ``req_id`` always);
  spot refuses more than 10 args (``args size >10``); unknown topics, depths or symbols get
  ``error:handler not found,topic:...``; a second subscribe ``error:already subscribed,...``.
- ``orderbook.{1,50,200,1000}.{SYMBOL}``: a snapshot on subscribe, then one delta per book
  change of that depth's window with ``u`` + 1 per topic; ``seq`` grows but is not contiguous;
  depth 1 sends snapshots only and re-pushes them with the same ``u`` (``heartbeat_interval_s``,
  3 s on Bybit). :meth:`restart_service` sends the ``u = 1`` snapshots of a service restart.
- ``{"op":"ping"}`` -> the category's pong; a non-JSON text -> Bybit's decode error reply.
- REST ``/v5/market/instruments-info`` (linear paged by ``nextPageCursor``) and
  ``/v5/market/orderbook``.

Book keys follow the connector's home-category rule: spot instruments are keyed by symbol,
linear ones ``linear:SYMBOL`` (``InstrumentSpec.kind`` is the category).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session

__all__ = ["FakeBybit"]

DEPTHS = (1, 50, 200, 1000)
View = tuple[dict[str, str], dict[str, str]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeBybit(FakeExchange):
    name = "bybit"
    supported_faults = frozenset(Fault) - {Fault.BAD_CHECKSUM, Fault.REST_418}
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        "BTCUSDT": InstrumentSpec("BTC", "USDT", mid=30000.0, tick=0.01, price_precision=2, qty_precision=6),
        "ETHUSDT": InstrumentSpec("ETH", "USDT", mid=2000.0, tick=0.01, price_precision=2, qty_precision=5),
        "linear:BTCUSDT": InstrumentSpec(
            "BTC", "USDT", mid=30010.0, tick=0.1, price_precision=1, qty_precision=3, kind="linear"
        ),
    }
    ws_path = "/v5/public"
    heartbeat_interval_s = 3.0  # level-1 snapshots are re-pushed after 3 s
    page_size: int = 500  # linear instruments per page at most

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.u: dict[tuple[str, int], int] = {}
        self.views: dict[tuple[str, int], View] = {}
        self.pending: dict[tuple[str, int], str] = {}  # this step's frame per topic
        self.cross_seq = 7_961_638_000

    async def start(self) -> "FakeBybit":
        """Publish the books as they are now (callers may swap ``books`` before starting)."""
        for key in self.books:
            for depth in DEPTHS:
                self.u.setdefault((key, depth), 1000)
                bids, asks = self.books[key].top(depth)
                self.views[(key, depth)] = (dict(bids), dict(asks))
        await super().start()
        return self

    # -- identity -----------------------------------------------------------------------------
    def category_of(self, key: str) -> str:
        return "linear" if self.specs[key].kind == "linear" else "spot"

    def native_of(self, key: str) -> str:
        return str(self.specs[key].extra.get("symbol") or key.rpartition(":")[2])

    def key_for(self, category: str, native: str) -> str | None:
        for key in self.specs:
            if self.category_of(key) == category and self.native_of(key) == native:
                return key
        return None

    # -- frames ---------------------------------------------------------------------------------
    def _book_frame(self, session_category: str, key: str, depth: int, kind: str, bids: Any, asks: Any) -> str:
        self.cross_seq += 1 + self.rng.randint(0, 40)
        ts = _now_ms()
        data = {"s": self.native_of(key), "b": bids, "a": asks, "u": self.u[(key, depth)], "seq": self.cross_seq}
        topic = f"orderbook.{depth}.{self.native_of(key)}"
        if session_category == "spot" or depth == 1:  # spot and futures level 1: "ts" before "type"
            msg: dict[str, Any] = {"topic": topic, "ts": ts, "type": kind, "data": data, "cts": ts - 2}
        else:
            msg = {"topic": topic, "type": kind, "ts": ts, "data": data, "cts": ts - 2}
        return orjson.dumps(msg).decode()

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        depth = int(session.subscribed.get(symbol, {}).get("depth", 50))
        bids, asks = self.snapshot_levels(symbol, depth)
        category = self.category_of(symbol)
        return [self._book_frame(category, symbol, depth, "snapshot", [list(b) for b in bids], [list(a) for a in asks])]

    def snapshot_levels(self, symbol: str, depth: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The book's best ``depth`` levels; with ``OVERSIZE_SNAPSHOT`` pending, thousands more.

        Bybit's deltas maintain the subscribed window, so padding levels that land inside a
        client's window become part of the truth (later deltas update or delete them)."""
        book = self.books[symbol]
        d = depth or book.depth
        pending = self.take_fault(Fault.OVERSIZE_SNAPSHOT, symbol)
        if pending is None:
            return book.top(d)
        bids, asks = book.deep_snapshot(int(pending.params.get("levels", 20000)))
        for side, levels, best_first in (("bid", bids, True), ("ask", asks, False)):
            for price, qty in sorted(levels, key=lambda lv: float(lv[0]), reverse=best_first)[:d]:
                book.add_level(side, price, qty)
        return bids, asks

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        """Diff every depth's window against what was published; one frame per changed topic
        that a client subscribes to (the others' windows and ``u`` move on all the same, so a
        later subscriber's snapshot carries on from them)."""
        book = self.books[symbol]
        bids, asks = book.top(max(DEPTHS))
        category = self.category_of(symbol)
        wanted = {int(s.subscribed[symbol].get("depth", 50)) for s in self.sessions if symbol in s.subscribed}
        for depth in DEPTHS:
            new_b, new_a = dict(bids[:depth]), dict(asks[:depth])
            old_b, old_a = self.views[(symbol, depth)]
            db = _diff(old_b, new_b, book.fmt_qty(0))
            da = _diff(old_a, new_a, book.fmt_qty(0))
            self.pending.pop((symbol, depth), None)
            if not db and not da:
                continue
            self.views[(symbol, depth)] = (new_b, new_a)
            self.u[(symbol, depth)] += 1
            if depth not in wanted:
                continue
            if depth == 1:
                frame = self._book_frame(category, symbol, 1, "snapshot", [list(b) for b in bids[:1]], [list(a) for a in asks[:1]])
            else:
                frame = self._book_frame(category, symbol, depth, "delta", db, da)
            self.pending[(symbol, depth)] = frame

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        frame = self.pending.get((symbol, int(session.subscribed[symbol].get("depth", 50))))
        return [frame] if frame else []

    def heartbeat_frames(self, session: Session) -> list[str]:
        """Level-1 topics: the same snapshot again (same ``u``), as Bybit does after 3 s."""
        out = []
        for key, state in session.subscribed.items():
            if state.get("depth") == 1:
                bids, asks = self.books[key].top(1)
                out.append(self._book_frame(self.category_of(key), key, 1, "snapshot", [list(b) for b in bids], [list(a) for a in asks]))
        return out

    def restart_service(self, symbol: str) -> None:
        """A Bybit service restart: every topic of ``symbol`` starts over with a ``u = 1`` snapshot."""
        for depth in DEPTHS:
            self.u[(symbol, depth)] = 1
        for session in self.sessions_for(symbol):
            for frame in self.snapshot_frames(session, symbol):
                session.send_soon(frame)

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        if symbol is not None:
            depth = session.subscribed.get(symbol, {}).get("depth", 50)
            message = f"Invalid symbol :[orderbook.{depth}.{self.native_of(symbol)}]"
        return self._reply(session, "subscribe", False, message, None)

    # -- client frames --------------------------------------------------------------------------
    def on_connect(self, session: Session) -> None:
        session.state["category"] = session.path.rstrip("/").rpartition("/")[2].partition("?")[0]
        session.state["conn_id"] = str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _reply(self, session: Session, op: str, success: bool, ret_msg: str, req_id: Any) -> str:
        msg: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": session.state.get("conn_id", "")}
        if session.state.get("category") == "linear":
            msg["req_id"] = req_id if req_id is not None else ""
        elif req_id is not None:
            msg["req_id"] = req_id
        msg["op"] = op
        return orjson.dumps(msg).decode()

    def on_message(self, session: Session, text: str) -> None:
        category = session.state.get("category", "spot")
        try:
            msg = orjson.loads(text)
            op = msg["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            session.send_soon(self._reply(session, "", False, f"Failed to decode incoming data:readObject {text[:40]}", None))
            return
        req_id = msg.get("req_id")
        if op == "ping":
            session.send_soon(self._reply(session, "ping", True, "pong", req_id))
            return
        if op not in ("subscribe", "unsubscribe"):
            session.send_soon(self._reply(session, str(op), False, "error:invalid op", req_id))
            return
        args = list(msg.get("args") or [])
        if category == "spot" and len(args) > 10:
            session.send_soon(orjson.dumps({"success": False, "ret_msg": "args size >10", "op": op}).decode())
            return
        errors: list[str] = []
        todo: list[tuple[str, int]] = []
        for topic in args:
            parts = str(topic).split(".", 2)
            key = self.key_for(category, parts[2]) if len(parts) == 3 else None
            if len(parts) != 3 or parts[0] != "orderbook" or parts[1] not in {"1", "50", "200", "1000"} or key is None or key not in self.books:
                errors.append(f"error:handler not found,topic:{topic}")
            elif op == "subscribe" and key in session.subscribed:
                errors.append(f"error:already subscribed,topic:{topic}")
            else:
                todo.append((key, int(parts[1])))
        ok_msg = op if category == "spot" else ""
        session.send_soon(self._reply(session, op, not errors, errors[0] if errors else ok_msg, req_id))
        for key, depth in todo:
            if op == "subscribe":
                self.subscribe(session, key, depth=depth)
            else:
                self.unsubscribe(session, key)

    def accept_websocket(self, path: str) -> tuple[int, Any] | None:
        """Only ``<ws_path>/spot`` and ``<ws_path>/linear``; any other path gets HTTP 404."""
        if path.partition("?")[0].rstrip("/") not in (f"{self.ws_path}/spot", f"{self.ws_path}/linear"):
            return 404, {"error": "not found"}
        return None

    # -- REST -------------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/v5/market/instruments-info":
            return 200, self._instruments(query)
        if path == "/v5/market/orderbook":
            return 200, self._orderbook(query)
        return 404, {"retCode": 404, "retMsg": f"no route {path}"}

    @staticmethod
    def _ok(result: Any) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": _now_ms()}

    def _instruments(self, query: dict[str, str]) -> dict[str, Any]:
        category = query.get("category", "")
        if category not in ("spot", "linear"):
            return {"retCode": 10001, "retMsg": "params error: category invalid", "result": {}, "retExtInfo": {}, "time": _now_ms()}
        items = [self._instrument(key, spec) for key, spec in self.specs.items() if self.category_of(key) == category]
        if category == "spot":
            items = [i for i in items if i["status"] == "Trading"]
            return self._ok({"category": category, "list": items})
        page = min(int(query.get("limit") or 500), self.page_size)
        start = int(query.get("cursor") or 0)
        chunk = items[start : start + page]
        cursor = str(start + page) if start + page < len(items) else ""
        return self._ok({"category": category, "list": chunk, "nextPageCursor": cursor})

    def _instrument(self, key: str, spec: InstrumentSpec) -> dict[str, Any]:
        tick = f"{spec.tick:.{spec.price_precision}f}"
        step = f"{10 ** -spec.qty_precision:.{spec.qty_precision}f}"
        base: dict[str, Any] = {
            "symbol": self.native_of(key),
            "baseCoin": spec.base,
            "quoteCoin": spec.quote,
            "status": spec.extra.get("status", "Trading"),
        }
        if self.category_of(key) == "spot":
            base.update(innovation="0", marginTrading="both", priceFilter={"tickSize": tick},
                        lotSizeFilter={"basePrecision": step, "quotePrecision": "0.00000001", "minOrderQty": step, "maxOrderQty": "1000"})
        else:
            base.update(contractType=spec.extra.get("contractType", "LinearPerpetual"), settleCoin=spec.extra.get("settle", spec.quote),
                        priceScale=str(spec.price_precision), priceFilter={"minPrice": tick, "maxPrice": "1999999.8", "tickSize": tick},
                        lotSizeFilter={"qtyStep": step, "minOrderQty": step, "maxOrderQty": "1190"})
        return base

    def _orderbook(self, query: dict[str, str]) -> dict[str, Any]:
        key = self.key_for(query.get("category", ""), query.get("symbol", ""))
        if key is None or key not in self.books:
            return {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "retExtInfo": {}, "time": _now_ms()}
        limit = int(query.get("limit") or (1 if self.category_of(key) == "spot" else 25))
        bids, asks = self.books[key].top(limit)
        ts = _now_ms()
        return self._ok({"s": self.native_of(key), "b": [list(b) for b in bids], "a": [list(a) for a in asks], "ts": ts,
                         "u": self.u[(key, 1000)], "seq": self.cross_seq, "cts": ts - 2})


def _diff(old: dict[str, str], new: dict[str, str], zero: str) -> list[list[str]]:
    out = [[p, q] for p, q in new.items() if old.get(p) != q]
    out.extend([p, zero] for p in old if p not in new)
    return out
