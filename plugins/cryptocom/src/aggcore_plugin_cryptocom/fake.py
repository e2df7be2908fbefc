"""A fake Crypto.com Exchange (API v1) over real sockets on 127.0.0.1, for tests, conformance and demos.

What it speaks, as the exchange does (reference section 2.A):

- WebSocket at ``/exchange/v1/market``; REST ``/exchange/v1/public/get-instruments`` (v1 shape:
  ``result.data[]`` with ``symbol``, ``inst_type``, ``base_ccy``, ``quote_ccy``, ...) and
  ``/exchange/v1/public/get-book``.
- ``subscribe`` to ``book.{instrument}.{depth}`` (depth 10 or 50): a result-less ack (optional,
  ``send_acks``), then the ``book`` snapshot, then one ``book.update`` per market step with
  ``u``/``pu`` (``u`` grows by random, non-consecutive amounts) and an unvalidated ``cs``.
  Deltas are the diff of the subscriber's top-N view (levels leaving it are deleted with ``"0"``,
  levels entering it are sent), so a correct client holds exactly the top N. An idle book gets
  an empty delta every ``idle_delta_s`` (keeps the chain). ``book_subscription_type: "SNAPSHOT"``
  (or none) gets a full snapshot per step instead.
- ``public/heartbeat`` every ``heartbeat_s`` with a fresh ``id``; no matching
  ``public/respond-heartbeat`` within ``heartbeat_timeout_s`` -> close with code 1000.
- Request rate: ``max_requests_per_s`` per calendar second, pro-rated in the second the socket
  opened (``prorate_first_second``; a test that connects and sends at once, and should not meet
  a budget of 0 one time in a hundred, turns it off) -> ``42901 TOO_MANY_REQUESTS``; more than
  ``max_subscriptions`` -> ``40107``; an unknown instrument or depth -> ``10004`` "invalid
  channel ..."; a request without ``method`` -> ``{"id": -1, "method": "ERROR", ...,
  "original": ...}``. :meth:`maintenance` closes with 1013.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections.abc import Iterable
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session

__all__ = ["FakeCryptocom"]

_KIND_TO_TYPE = {"spot": "CCY_PAIR", "perp": "PERPETUAL_SWAP", "future": "FUTURE"}


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _ms() -> int:
    return int(time.time() * 1000)


class FakeCryptocom(FakeExchange):
    name = "cryptocom"
    supported_faults = frozenset(Fault) - {Fault.BAD_CHECKSUM, Fault.REST_418}
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        "BTC_USDT": InstrumentSpec("BTC", "USDT", mid=30000.0),
        "ETH_USDT": InstrumentSpec("ETH", "USDT", mid=2000.0),
        "BTCUSD-PERP": InstrumentSpec("BTC", "USD", mid=30010.0, tick=0.5, price_precision=1, qty_precision=4, kind="perp"),
    }
    ws_path: ClassVar[str] = "/exchange/v1/market"
    rest_path: ClassVar[str] = "/exchange/v1"

    def __init__(
        self,
        symbols: Iterable[str] | dict[str, InstrumentSpec] | None = None,
        *,
        heartbeat_s: float = 30.0,
        heartbeat_timeout_s: float = 5.0,
        idle_delta_s: float = 0.5,
        max_subscriptions: int = 400,
        max_requests_per_s: int = 100,
        prorate_first_second: bool = True,
        send_acks: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(symbols, **kwargs)
        self.heartbeat_interval_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.idle_delta_s = idle_delta_s
        self.max_subscriptions = max_subscriptions
        self.max_requests_per_s = max_requests_per_s
        self.prorate_first_second = prorate_first_second
        self.send_acks = send_acks
        self._u: dict[str, int] = {s: 78_795_598_000_000 + i * 7_919_000 for i, s in enumerate(self.books)}
        self._hb_ids = itertools.count(_ms())
        self._idle: asyncio.Task[None] | None = None
        self.heartbeats_answered = 0
        self.heartbeat_closes = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> "FakeCryptocom":
        await super().start()
        self._idle = asyncio.get_running_loop().create_task(self._idle_deltas())
        return self

    async def stop(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        await super().stop()

    def connector_config(self, **overrides: Any) -> dict[str, Any]:
        """Points the connector here; the 1 s connect wait is shortened (a pro-rated ``42901``
        is still retried by the connector should the first second's budget be short)."""
        return super().connector_config(**{"connect_delay_s": 0.1, "subscribe_retry_s": 0.2, **overrides})

    def maintenance(self, reason: str = "Server restarting -- try again later") -> None:
        """Close every connection with 1013, as the exchange does on a restart."""
        for s in list(self.sessions):
            asyncio.get_running_loop().create_task(s.ws.close(1013, reason))

    # -- REST ------------------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/public/get-instruments":
            return 200, {"id": 1, "method": "public/get-instruments", "code": 0, "result": {"data": self._instrument_list()}}
        if path == "/public/get-book":
            sym = query.get("instrument_name", "")
            if sym not in self.books:
                return 400, {"id": 1, "method": "public/get-book", "code": 40004, "message": "MISSING_OR_INVALID_ARGUMENT"}
            depth = min(int(query.get("depth", 50)), 50)
            bids, asks = self.books[sym].top(depth)
            data = {"bids": [[p, q, "1"] for p, q in bids], "asks": [[p, q, "1"] for p, q in asks], "t": _ms()}
            return 200, {"id": 1, "method": "public/get-book", "code": 0, "result": {"depth": depth, "instrument_name": sym, "data": [data]}}
        return 404, {"id": -1, "method": "ERROR", "code": 40001, "message": f"BAD_REQUEST: no route {path}"}

    def _instrument_list(self) -> list[dict[str, Any]]:
        out = []
        for sym, spec in self.specs.items():
            entry = {
                "symbol": sym,
                "inst_type": _KIND_TO_TYPE.get(spec.kind, "CCY_PAIR"),
                "display_name": f"{spec.base}/{spec.quote}" if spec.kind == "spot" else f"{spec.base}{spec.quote} Perpetual",
                "base_ccy": spec.base,
                "quote_ccy": spec.quote,
                "quote_decimals": spec.price_precision,
                "quantity_decimals": spec.qty_precision,
                "price_tick_size": f"{spec.tick:.{spec.price_precision}f}",
                "qty_tick_size": f"{10 ** -spec.qty_precision:.{spec.qty_precision}f}",
                "max_leverage": "50",
                "tradable": True,
            }
            entry.update(spec.extra)
            out.append(entry)
        return out

    # -- WebSocket requests -----------------------------------------------------------------------------
    def on_connect(self, session: Session) -> None:
        session.state["opened"] = time.time()
        session.state["hb"] = {}

    def _rate_ok(self, session: Session) -> bool:
        """Requests per calendar second, pro-rated in the second the connection opened."""
        now = time.time()
        second = int(now)
        st = session.state
        if st.get("second") != second:
            st["second"], st["count"] = second, 0
        opened = st["opened"]
        budget = self.max_requests_per_s
        if self.prorate_first_second and second == int(opened):
            budget = int(budget * (1.0 - (opened - second)))
        st["count"] += 1
        return bool(st["count"] <= budget)

    def on_message(self, session: Session, text: str) -> None:
        session.state.setdefault("first_request", time.time())
        try:
            msg = orjson.loads(text)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            session.send_soon(_dumps({"id": -1, "method": "ERROR", "code": 40001, "message": "BAD_REQUEST", "original": text}))
            return
        method = msg.get("method")
        req_id = msg.get("id", -1)
        if not method:
            session.send_soon(_dumps({"id": -1, "method": "ERROR", "code": 40001, "message": "BAD_REQUEST", "original": text}))
            return
        if not self._rate_ok(session):
            session.send_soon(_dumps({"id": req_id, "method": method, "code": 42901, "message": "TOO_MANY_REQUESTS"}))
            return
        if method == "public/respond-heartbeat":
            handle = session.state["hb"].pop(req_id, None)
            if handle is not None:
                handle.cancel()
                self.heartbeats_answered += 1
            return
        params = msg.get("params") or {}
        if method == "subscribe":
            self._subscribe(session, req_id, params)
        elif method == "unsubscribe":
            for ch in params.get("channels", []):
                parts = str(ch).split(".")
                if len(parts) == 3:
                    self.unsubscribe(session, parts[1])
            session.send_soon(_dumps({"id": req_id, "method": "unsubscribe", "code": 0}))
        else:
            session.send_soon(_dumps({"id": req_id, "method": method, "code": 40003, "message": "INVALID_REQUEST"}))

    def _subscribe(self, session: Session, req_id: Any, params: dict[str, Any]) -> None:
        kind = params.get("book_subscription_type", "SNAPSHOT")
        freq = params.get("book_update_frequency", 100 if kind == "SNAPSHOT_AND_UPDATE" else 500)
        channels = params.get("channels")
        if not isinstance(channels, list) or kind not in ("SNAPSHOT", "SNAPSHOT_AND_UPDATE") or freq not in (10, 100, 500):
            session.send_soon(_dumps({"id": req_id, "method": "subscribe", "code": 40004, "message": "MISSING_OR_INVALID_ARGUMENT"}))
            return
        accepted: list[tuple[str, int]] = []
        for ch in channels:
            parts = str(ch).split(".")
            if len(parts) != 3 or parts[0] != "book" or parts[1] not in self.books or parts[2] not in ("10", "50"):
                invalid = _dumps({"channels": [ch]})
                session.send_soon(_dumps({"id": req_id, "code": 10004, "method": "subscribe", "message": f"invalid channel {invalid}"}))
                continue
            if parts[1] not in session.subscribed and len(session.subscribed) + len(accepted) >= self.max_subscriptions:
                session.send_soon(
                    _dumps({"id": req_id, "method": "subscribe", "code": 40107, "message": f"EXCEED_MAX_SUBSCRIPTIONS: {ch}"})
                )
                continue
            accepted.append((parts[1], int(parts[2])))
        if not accepted:
            return
        if self.send_acks:
            session.send_soon(_dumps({"id": req_id, "method": "subscribe", "code": 0}))
        for sym, depth in accepted:
            self.subscribe(session, sym, depth=depth, kind=kind, req_id=req_id, u=0, view=({}, {}), sent=0.0)

    # -- book frames ------------------------------------------------------------------------------------
    def _next_u(self, symbol: str) -> int:
        self._u[symbol] += self.rng.randint(1, 90_000)
        return self._u[symbol]

    def _frame(self, symbol: str, depth: int, channel: str, data: dict[str, Any]) -> str:
        result = {"instrument_name": symbol, "subscription": f"book.{symbol}.{depth}", "channel": channel, "depth": depth, "data": [data]}
        return _dumps({"id": -1, "method": "subscribe", "code": 0, "result": result})

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        sub = session.subscribed[symbol]
        depth = sub["depth"]
        bids, asks = self.snapshot_levels(symbol, depth)  # padded when OVERSIZE_SNAPSHOT is pending
        # what the client holds after trimming to its depth (phantom far levels of an oversize
        # snapshot included: later diffs delete them as the real top-N takes their place)
        top_b = sorted(bids, key=lambda lv: -float(lv[0]))[:depth]
        top_a = sorted(asks, key=lambda lv: float(lv[0]))[:depth]
        sub["view"] = (dict(top_b), dict(top_a))
        sub["u"] = u = self._next_u(symbol)
        sub["sent"] = asyncio.get_running_loop().time()
        t = _ms()
        data = {"asks": [[p, q, "1"] for p, q in asks], "bids": [[p, q, "1"] for p, q in bids], "t": t, "tt": t, "u": u}
        return [self._frame(symbol, depth, "book", data)]

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        sub = session.subscribed[symbol]
        if sub["kind"] == "SNAPSHOT":
            return self.snapshot_frames(session, symbol)
        depth = sub["depth"]
        new_b, new_a = (dict(side) for side in self.books[symbol].top(depth))
        old_b, old_a = sub["view"]
        upd = {"asks": _diff(old_a, new_a), "bids": _diff(old_b, new_b)}
        sub["view"] = (new_b, new_a)
        pu = sub["u"]
        sub["u"] = u = self._next_u(symbol)
        sub["sent"] = asyncio.get_running_loop().time()
        t = _ms()
        cs = zlib.crc32(_dumps(upd).encode())
        cs = cs - (1 << 32) if cs >= 1 << 31 else cs
        return [self._frame(symbol, depth, "book.update", {"update": upd, "t": t, "tt": t, "u": u, "pu": pu, "cs": cs})]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        """A rejected subscription (10004 "invalid channel ..."); the server drops the channel."""
        if symbol is None or symbol not in session.subscribed:
            return _dumps({"id": -1, "method": "ERROR", "code": 40001, "message": message, "original": "{}"})
        sub = session.subscribed[symbol]
        channels = _dumps({"channels": [f"book.{symbol}.{sub['depth']}"]})
        self.unsubscribe(session, symbol)
        return _dumps({"id": 0, "code": 10004, "method": "subscribe", "message": f"{message}: invalid channel {channels}"})

    def heartbeat_frames(self, session: Session) -> list[str]:
        hb_id = next(self._hb_ids)
        loop = asyncio.get_running_loop()
        session.state["hb"][hb_id] = loop.call_later(self.heartbeat_timeout_s, self._heartbeat_missed, session, hb_id)
        return [_dumps({"id": hb_id, "method": "public/heartbeat", "code": 0})]

    def _heartbeat_missed(self, session: Session, hb_id: int) -> None:
        if session.state["hb"].pop(hb_id, None) is not None and session in self.sessions:
            self.heartbeat_closes += 1
            asyncio.get_running_loop().create_task(session.ws.close(1000, "heartbeat not answered"))

    async def _idle_deltas(self) -> None:
        """Empty ``book.update`` frames for books without changes (they keep the ``pu`` chain)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_delta_s / 2)
            now = loop.time()
            if now < self.stalled_until:
                continue
            for session in list(self.sessions):
                for sym, sub in list(session.subscribed.items()):
                    if sub.get("kind") == "SNAPSHOT_AND_UPDATE" and now - sub["sent"] >= self.idle_delta_s:
                        self.deliver(session, sym, self.delta_frames(session, sym, []))


def _diff(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
    out = [[p, "0", "0"] for p in old if p not in new]
    out += [[p, q, "1"] for p, q in new.items() if old.get(p) != q]
    return out
