"""``toy``: the smallest complete exchange plugin (connector + fake server + hook), in one file.

It speaks a made-up protocol with an in-band snapshot and contiguous sequence numbers, and
serves core's own tests (the Aggregator API against a real socket) and the docs as an example
of everything a plugin has. Register it with the entry point
``toy = "aggcore.testing.toy"`` (the test suite injects that entry point; it is not installed
as a plugin).

Protocol: REST ``GET /symbols`` -> ``[{"s": "BTCUSDT", "b": "BTC", "q": "USDT"}]``;
WebSocket ``{"op": "subscribe", "symbols": [...]}`` / ``{"op": "unsubscribe", ...}``; the
server sends ``{"s": SYM, "type": "snapshot"|"delta", "seq": N, "ts": MS, "b": [[p, q]], "a": [[p, q]]}``
and ``{"error": MSG, "s": SYM}`` for errors.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from ..connector import Connection, Connector, ConnectorConfig
from ..hookspecs import hookimpl
from ..symbols import Instrument, SymbolTable
from .market import Change
from .server import FakeExchange, Fault, InstrumentSpec, Session

__all__ = ["FakeToy", "ToyConnector", "aggcore_register_connectors"]


class ToyConnector(Connector):
    name = "toy"
    Config = ConnectorConfig
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS)
    ws_url = "ws://127.0.0.1:1/ws"
    rest_url = "http://127.0.0.1:1"
    max_messages_per_second = 50.0
    fake_server = "aggcore.testing.toy:FakeToy"

    async def load_symbols(self) -> SymbolTable:
        rows = await self.rest_get("/symbols")
        return SymbolTable(Instrument(r["s"], r["b"], r["q"]) for r in rows)

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [{"op": "subscribe", "symbols": symbols}]

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [{"op": "unsubscribe", "symbols": symbols}]

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        msg = orjson.loads(frame)
        sym = msg.get("s")
        if "error" in msg:
            self.report_error(msg["error"], symbol=sym)
            return
        book = self.books.get(sym)
        if book is None:
            return
        seq = msg["seq"]
        book.apply(
            BookUpdate(
                sym, msg["b"], msg["a"], snapshot=msg["type"] == "snapshot", first=seq, last=seq, exchange_ts=msg["ts"] / 1000
            ),
            receipt_ns,
        )


class FakeToy(FakeExchange):
    name = "toy"
    supported_faults = frozenset(Fault) - {Fault.BAD_CHECKSUM}
    default_symbols = {
        "BTCUSDT": InstrumentSpec("BTC", "USDT", mid=30000.0),
        "ETHUSDT": InstrumentSpec("ETH", "USDT", mid=2000.0),
    }

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/symbols":
            return 200, [{"s": s, "b": spec.base, "q": spec.quote} for s, spec in self.specs.items()]
        return 404, {"error": f"no route {path}"}

    def on_message(self, session: Session, text: str) -> None:
        msg = orjson.loads(text)
        for sym in msg.get("symbols", []):
            if msg.get("op") == "unsubscribe":
                self.unsubscribe(session, sym)
            elif sym not in self.books:
                session.send_soon(self.error_frame(session, sym, f"unknown symbol {sym}"))
            else:
                self.subscribe(session, sym)

    def _frame(self, sym: str, kind: str, bids: list[Any], asks: list[Any]) -> str:
        seq = self.books[sym].seq
        return orjson.dumps(
            {"s": sym, "type": kind, "seq": seq, "ts": int(time.time() * 1000), "b": bids, "a": asks}
        ).decode()

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        bids, asks = self.snapshot_levels(symbol)
        return [self._frame(symbol, "snapshot", [list(x) for x in bids], [list(x) for x in asks])]

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        bids = [[c.price, c.qty] for c in changes if c.side == "bid"]
        asks = [[c.price, c.qty] for c in changes if c.side == "ask"]
        return [self._frame(symbol, "delta", bids, asks)]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        return orjson.dumps({"error": message, "s": symbol}).decode()


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [ToyConnector]
