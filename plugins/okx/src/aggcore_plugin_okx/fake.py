"""A fake OKX v5 public server on 127.0.0.1: the same protocol over real sockets.

WebSocket ``/ws/v5/public``: text ``ping`` -> ``pong``; ``subscribe``/``unsubscribe`` of
channel ``books`` with one ack per arg (``connId`` included, ``id`` echoed); ``60012``
invalid request, ``60018`` unknown channel/instId, ``60019`` invalid op, ``60014`` past 480
subscription requests per connection and hour; in-band snapshot (``prevSeqId = -1``), then
updates with ``prevSeqId``/``seqId`` (steps are not +1) and ``checksum: 0`` (or real CRC32s
with ``checksums=True``, the pre-2026 feed); an empty update with ``seqId == prevSeqId``
when an instrument was idle for ``idle_heartbeat_s``; close ``4004`` after ``idle_close_s``
with nothing pushed. :meth:`FakeOkx.reset_sequence` sends a maintenance reset
(``seqId < prevSeqId``); :meth:`FakeOkx.notice` the ``64008`` service-upgrade notice.

REST: ``GET /api/v5/public/instruments?instType=SPOT|SWAP`` and ``GET /api/v5/market/books
?instId=&sz=`` (with ``seqId``; ``51001`` for an unknown instId). With ``inband_snapshot=
False`` the channel sends no snapshot (the announced protocol: REST snapshot + ``seqId``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session

from .messages import checksum_of_levels

__all__ = ["FakeOkx"]

_NOT_FOUND = (
    "Wrong URL or channel:{channel},instId:{inst} doesn't exist. "
    "Please use the correct URL, channel and parameters referring to API document."
)


class FakeOkx(FakeExchange):
    """The fake OKX. See the module docstring."""

    name = "okx"
    ws_path = "/ws/v5/public"
    supported_faults: ClassVar[frozenset[Fault]] = frozenset(Fault)
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        "BTC-USDT": InstrumentSpec("BTC", "USDT", mid=30000.0, tick=0.1, price_precision=1, qty_precision=8),
        "ETH-USDT": InstrumentSpec("ETH", "USDT", mid=2000.0, tick=0.01, price_precision=2, qty_precision=6),
        "BTC-USDT-SWAP": InstrumentSpec(
            "BTC", "USDT", mid=30010.0, tick=0.1, price_precision=1, qty_precision=2, kind="swap",
            extra={"settle": "USDT", "ctVal": "0.01"},
        ),
    }
    heartbeat_interval_s: float | None = 0.25  # how often idle checks run

    def __init__(
        self,
        symbols: Any = None,
        *,
        inband_snapshot: bool = True,
        checksums: bool = False,
        idle_heartbeat_s: float = 60.0,
        idle_close_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(symbols, **kwargs)
        self.inband_snapshot = inband_snapshot
        self.checksums = checksums
        self.idle_heartbeat_s = idle_heartbeat_s
        self.idle_close_s = idle_close_s
        self.seq_ids: dict[str, int] = {s: 1000 + 37 * i for i, s in enumerate(self.books)}
        self.last_step: dict[str, tuple[int, int]] = {}
        self.last_push: dict[str, float] = {s: time.monotonic() for s in self.books}
        self._conn_ids = 0
        self._resets: dict[str, int] = {}
        self.pings = 0  # text pings received, on every connection

    def connector_config(self, **overrides: Any) -> dict[str, Any]:
        config = super().connector_config(**overrides)
        if not self.inband_snapshot:
            config.setdefault("snapshot_source", "rest")
        return config

    # -- framing ------------------------------------------------------------------------------------
    @staticmethod
    def _levels(levels: list[tuple[str, str]], orders: int = 1) -> list[list[str]]:
        return [[p, q, "0", str(orders if float(q) else 0)] for p, q in levels]

    def _checksum(self, symbol: str) -> int:
        if not self.checksums:
            return 0
        bids, asks = self.books[symbol].top(25)
        return checksum_of_levels(bids, asks)

    def _book_frame(self, symbol: str, action: str, bids: list[list[str]], asks: list[list[str]], prev: int, seq: int) -> str:
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(int(time.time() * 1000)),
            "checksum": self._checksum(symbol),
            "prevSeqId": prev,
            "seqId": seq,
        }
        return orjson.dumps({"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [data]}).decode()

    # -- FakeExchange hooks -----------------------------------------------------------------------
    def on_connect(self, session: Session) -> None:
        self._conn_ids += 1
        session.state["conn_id"] = f"{self._conn_ids:08x}"
        session.state["ops"] = []
        session.state["last_push"] = time.monotonic()

    def on_message(self, session: Session, text: str) -> None:
        if text == "ping":
            self.pings += 1
        if self._stalled():
            session.state.setdefault("deferred", []).append(text)  # a hung server answers later
            return
        if text == "ping":
            self._push(session, "pong")
            return
        conn_id = session.state["conn_id"]
        try:
            msg = orjson.loads(text)
            op = msg["op"]
            args = msg["args"]
            assert isinstance(args, list)
        except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
            self._push(session, self._error("60012", f"Invalid request: {text[:200]}", conn_id))
            return
        rid = msg.get("id")
        if op not in ("subscribe", "unsubscribe"):
            self._push(session, self._error("60019", f"Invalid op: op:{op}", conn_id, rid))
            return
        ops: list[float] = session.state["ops"]
        now = time.monotonic()
        ops[:] = [t for t in ops if now - t < 3600]
        if len(ops) >= 480:
            self._push(session, self._error("60014", "Requests too frequent.", conn_id, rid))
            return
        ops.append(now)
        for arg in args:
            channel, inst = arg.get("channel"), arg.get("instId")
            if channel != "books" or inst not in self.books:
                self._push(session, self._error("60018", _NOT_FOUND.format(channel=channel, inst=inst), conn_id, rid))
                continue
            ack: dict[str, Any] = {"event": op, "arg": {"channel": channel, "instId": inst}, "connId": conn_id}
            if rid is not None:
                ack = {"id": rid, **ack}
            self._push(session, orjson.dumps(ack).decode())
            if op == "subscribe":
                self.subscribe(session, inst)
            else:
                self.unsubscribe(session, inst)

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        if not self.inband_snapshot:
            return []
        bids, asks = self.snapshot_levels(symbol, 400)
        session.state["last_push"] = time.monotonic()
        seq = self.seq_ids[symbol]
        return [self._book_frame(symbol, "snapshot", self._levels(bids, 3), self._levels(asks, 3), -1, seq)]

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        prev = self.seq_ids[symbol]
        seq = self._resets.pop(symbol, None)
        if seq is None:
            seq = prev + 1 + self.rng.randrange(0, 20)  # OKX seqIds grow, but not by 1
        self.seq_ids[symbol] = seq
        self.last_step[symbol] = (prev, seq)
        self.last_push[symbol] = time.monotonic()

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        prev, seq = self.last_step[symbol]
        if not self._stalled():
            session.state["last_push"] = time.monotonic()
        bids = self._levels([(c.price, c.qty) for c in changes if c.side == "bid"], 2)
        asks = self._levels([(c.price, c.qty) for c in changes if c.side == "ask"], 2)
        return [self._book_frame(symbol, "update", bids, asks, prev, seq)]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        if symbol is not None:
            self.unsubscribe(session, symbol)  # a rejected subscription delivers nothing
        return self._error("60018", _NOT_FOUND.format(channel="books", inst=symbol), session.state.get("conn_id", ""))

    def corrupt(self, frame: str) -> str:
        msg = orjson.loads(frame)
        data = msg["data"][0]
        bids, asks = self.books[msg["arg"]["instId"]].top(25)
        data["checksum"] = (checksum_of_levels(bids, asks) ^ 0x5A5A) or 1  # non-zero and wrong
        return orjson.dumps(msg).decode()

    def heartbeat_frames(self, session: Session) -> list[str]:
        """Idle heartbeats (empty update, ``seqId == prevSeqId``) and the 30 s idle close."""
        if self._stalled():
            return []
        for text in session.state.pop("deferred", []):
            self.on_message(session, text)
        now = time.monotonic()
        out: list[str] = []
        for symbol in session.subscribed:
            if now - self.last_push[symbol] >= self.idle_heartbeat_s:
                seq = self.seq_ids[symbol]
                out.append(self._book_frame(symbol, "update", [], [], seq, seq))
                self.last_push[symbol] = now
        if out:
            session.state["last_push"] = now
        elif now - session.state.get("last_push", now) > self.idle_close_s:
            asyncio.get_running_loop().create_task(session.ws.close(4004, "No data received in 30s."))
        return out

    # -- REST ----------------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v5/public/instruments":
            inst_type = query.get("instType")
            if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
                return 400, {"code": "50014", "msg": "Parameter instType can not be empty.", "data": []}
            return 200, {"code": "0", "msg": "", "data": [self._instrument(s, sp) for s, sp in self.specs.items() if _type(sp) == inst_type]}
        if path == "/api/v5/market/books":
            inst = query.get("instId", "")
            if inst not in self.books:
                return 200, {"code": "51001", "msg": "Instrument ID, Instrument ID code or Spread ID doesn't exist.", "data": []}
            sz = max(1, min(int(query.get("sz", "1")), 400))
            bids, asks = self.snapshot_levels(inst, sz)
            data = {"asks": self._levels(asks, 4), "bids": self._levels(bids, 4), "ts": str(int(time.time() * 1000)), "seqId": self.seq_ids[inst]}
            return 200, {"code": "0", "msg": "", "data": [data]}
        return 404, {"code": "50000", "msg": f"no route {path}"}

    def _instrument(self, symbol: str, spec: InstrumentSpec) -> dict[str, Any]:
        tick = f"{spec.tick:.{spec.price_precision}f}"
        lot = f"{10 ** -spec.qty_precision:.{spec.qty_precision}f}"
        entry: dict[str, Any] = {"instId": symbol, "instType": _type(spec), "tickSz": tick, "lotSz": lot, "state": spec.extra.get("state", "live")}
        if _type(spec) == "SPOT":
            entry.update(baseCcy=spec.base, quoteCcy=spec.quote, settleCcy="", ctValCcy="", ctType="")
        else:
            entry.update(baseCcy="", quoteCcy="", ctType="linear", ctValCcy=spec.base, settleCcy=spec.extra.get("settle", spec.quote), ctVal=spec.extra.get("ctVal", "1"))
        return entry

    # -- helpers and extra controls ---------------------------------------------------------------------
    def _stalled(self) -> bool:
        return asyncio.get_running_loop().time() < self.stalled_until

    def _push(self, session: Session, frame: str) -> None:
        session.state["last_push"] = time.monotonic()
        session.send_soon(frame)

    @staticmethod
    def _error(code: str, msg: str, conn_id: str, rid: Any = None) -> str:
        body: dict[str, Any] = {"event": "error", "code": code, "msg": msg, "connId": conn_id}
        if rid is not None:
            body = {"id": rid, **body}
        return orjson.dumps(body).decode()

    def reset_sequence(self, symbol: str, to: int = 3) -> None:
        """A maintenance sequence reset: the next update of ``symbol`` has ``seqId < prevSeqId``."""
        self._resets[symbol] = min(to, self.seq_ids[symbol] - 1)

    def notice(self) -> None:
        """The ``64008`` service-upgrade notice on every connection."""
        for s in self.sessions:
            s.send_soon(orjson.dumps({
                "event": "notice", "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": s.state.get("conn_id", ""),
            }).decode())


def _type(spec: InstrumentSpec) -> str:
    return {"spot": "SPOT", "swap": "SWAP", "future": "FUTURES"}.get(spec.kind, "SPOT")
