"""The Bybit v5 public order-book connector (spot and linear).

Exchange facts (Bybit v5 docs, ``/v5/ws/connect`` and ``/v5/websocket/public/orderbook``):

- WebSocket ``wss://stream.bybit.com/v5/public/spot`` and ``.../v5/public/linear`` (USDT/USDC
  perpetuals and USDT futures); one connection per category. REST ``https://api.bybit.com``.
- Subscribe ``{"req_id":..,"op":"subscribe","args":["orderbook.50.BTCUSDT",..]}``: at most
  **10 args per request on spot** (``args size >10`` otherwise), no args limit on linear; the
  args of one connection may total 21,000 characters. One reply per request echoing ``req_id``.
- Topic ``orderbook.{1,50,200,1000}.{SYMBOL}``: an in-band ``snapshot`` then ``delta``s. Any
  snapshot replaces the book (also mid-stream, and with ``u = 1`` after a service restart);
  a delta must continue ``u`` by one, otherwise this symbol is resubscribed (unsubscribe +
  subscribe -> a fresh snapshot); ``seq`` is never gap-checked. Depth 1 is snapshot-only
  (re-pushed with the same ``u`` after 3 s without change). No checksum.
- Keepalive: client ``{"op":"ping"}`` every 20 s; the pong differs between spot and linear.
- A ``success:false`` reply naming a topic fails that symbol (health shows Bybit's message);
  other failures are connection-level errors. ``already subscribed`` is harmless.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, ClassVar, Literal

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig
from aggcore.models import BookState
from aggcore.errors import ExchangeError, RateLimitError
from aggcore.symbols import SymbolTable
from pydantic import Field, field_validator

from .messages import Ack, Pong, SystemStatus, failed_topic, parse, topic_for, topic_symbol
from .symbols import CATEGORIES, BybitSymbolTable, instruments_from_list

__all__ = ["BybitConfig", "BybitConnector", "DEPTHS"]

log = logging.getLogger("aggcore.bybit")

#: order-book depths Bybit v5 offers on spot and linear (500 was removed in 2025)
DEPTHS = (1, 50, 200, 1000)
#: the most args Bybit accepts in one subscribe request, per category
MAX_ARGS = {"spot": 10, "linear": 100}
#: book states that still wait for a snapshot
_WAITING = (BookState.SYNCING, BookState.RESYNCING)
#: the most characters of args Bybit accepts on one public connection
MAX_ARGS_CHARS = 21_000


class BybitConfig(ConnectorConfig):
    """``exchanges.bybit``: the common keys plus Bybit's own."""

    category: Literal["spot", "linear"] = Field(
        "spot",
        description="category of pairs written BASE/QUOTE or as bare symbols; spot and linear share symbol strings",
    )
    ping_interval_s: float = Field(20.0, gt=0, description="client {\"op\":\"ping\"} interval (Bybit: 20 s)")

    @field_validator("depth")
    @classmethod
    def _bybit_depth(cls, value: int | None) -> int | None:
        if value is not None and value not in DEPTHS:
            raise ValueError(f"Bybit order-book depth must be one of {', '.join(map(str, DEPTHS))}")
        return value


class BybitConnector(Connector):
    """Bybit v5 public order books, spot and linear, with in-band snapshots and ``u`` checks."""

    name = "bybit"
    Config = BybitConfig
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS)
    ws_url = "wss://stream.bybit.com/v5/public"
    rest_url = "https://api.bybit.com"
    default_depth = 50
    max_symbols_per_connection = 200
    max_messages_per_second = 10.0
    keepalive_interval_s = 20.0
    ws_ping_interval_s = 20.0
    rest_rate_per_s = 10.0
    rest_burst = 10.0
    fake_server = "aggcore_plugin_bybit.fake:FakeBybit"

    config: BybitConfig
    _req_ids: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        if not isinstance(config, BybitConfig):
            config = BybitConfig.model_validate(config.model_dump())
        super().__init__(config, **kwargs)
        self.home: str = self.config.category
        # the ping interval is a per-instance setting here (config key ping_interval_s)
        setattr(self, "keepalive_interval_s", self.config.ping_interval_s)
        base = self.ws_base
        for category in CATEGORIES:  # accept a category URL too (".../v5/public/spot")
            if base.endswith("/" + category):
                base = base[: -len(category) - 1]
        self.ws_base = base
        self.native: dict[str, tuple[str, str]] = {}  # book key -> (category, Bybit symbol)
        self.maintenance: list[dict[str, Any]] = []

    # -- symbols ------------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        instruments = []
        for category in BybitSymbolTable.categories_for(self.config.trading_pairs, self.home):
            instruments.extend(instruments_from_list(category, await self._instrument_list(category), self.home))
        table = BybitSymbolTable(instruments, self.home)
        self.native = {i.symbol: (i.extra["category"], i.extra["native"]) for i in instruments}
        return table

    async def _instrument_list(self, category: str) -> list[dict[str, Any]]:
        """``GET /v5/market/instruments-info`` for one category, following ``nextPageCursor``."""
        items: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(100):
            params: dict[str, Any] = {"category": category}
            if category != "spot":
                params["limit"] = 1000
            if cursor:
                params["cursor"] = cursor
            body = await self.rest_get("/v5/market/instruments-info", params)
            code = body.get("retCode")
            if code == 10006:  # "Too many visits": back off like a 429
                self.budget.pause(1.0)
                raise RateLimitError(f"instruments-info: {body.get('retMsg')}", status=200, exchange=self.name)
            if code != 0:
                raise ExchangeError(f"instruments-info {category}: {body.get('retMsg')}", code=code, exchange=self.name)
            result = body.get("result") or {}
            items.extend(result.get("list") or [])
            cursor = result.get("nextPageCursor") or ""
            if not cursor:
                break
        return items

    async def setup(self) -> None:
        await super().setup()
        for key, book in self.books.items():
            inst = self.instrument(key)
            if not inst.active:
                status = inst.extra.get("status")
                book.fail(f"{inst.extra['native']} ({inst.extra['category']}) is {status}: Bybit sends no order book")
                self.pair_errors.setdefault(key, f"instrument status {status}")

    # -- connections --------------------------------------------------------------------------

    def groups(self) -> list[list[str]]:
        """One connection per category (different URLs), split at the per-connection limits."""
        out: list[list[str]] = []
        for category in CATEGORIES:
            keys = [k for k in self.books if self.native[k][0] == category]
            group: list[str] = []
            chars = 0
            for key in keys:
                size = len(topic_for(self.depth or 50, self.native[key][1])) + 3
                if group and (len(group) >= self.max_symbols_per_connection or chars + size > MAX_ARGS_CHARS):
                    out.append(group)
                    group, chars = [], 0
                group.append(key)
                chars += size
            if group:
                out.append(group)
        return out

    def connection_url(self, symbols: list[str]) -> str:
        category = self.native[symbols[0]][0] if symbols else self.home
        return f"{self.ws_base}/{category}"

    async def on_open(self, conn: Connection) -> None:
        category = self.native[conn.symbols[0]][0] if conn.symbols else self.home
        conn.state["category"] = category
        conn.state["keys"] = {self.native[k][1]: k for k in conn.symbols}  # Bybit symbol -> book key
        conn.state["requests"] = {}  # req_id -> book keys of that request
        conn.state["pongs"] = 0

    def _frames(self, op: str, symbols: list[str]) -> list[str | dict[str, Any]]:
        if not symbols:
            return []
        category = self.native[symbols[0]][0]
        conn = self.connections.get(self.symbol_conn.get(symbols[0], -1))
        per_request = MAX_ARGS[category]
        frames: list[str | dict[str, Any]] = []
        for i in range(0, len(symbols), per_request):
            batch = symbols[i : i + per_request]
            req_id = f"{op[:5]}-{next(self._req_ids)}"
            if conn is not None and "requests" in conn.state:
                conn.state["requests"][req_id] = batch
            args = [topic_for(self.depth or 50, self.native[k][1]) for k in batch]
            frames.append({"req_id": req_id, "op": op, "args": args})
        return frames

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return self._frames("subscribe", symbols)

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return self._frames("unsubscribe", symbols)

    def keepalive_frame(self) -> dict[str, Any]:
        return {"op": "ping"}

    # -- the hot path -------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        event = parse(frame)
        if event.__class__ is BookUpdate:
            update: BookUpdate = event
            key = conn.state["keys"].get(update.symbol)
            if key is not None:  # None: a late frame of a topic no longer ours
                book = self.books[key]
                if book.state is not BookState.FAILED:  # a rejected symbol stays failed
                    update.symbol = key
                    book.apply(update, receipt_ns)
        elif isinstance(event, Pong):
            conn.state["pongs"] = conn.state.get("pongs", 0) + 1
        elif isinstance(event, Ack):
            self._on_ack(conn, event)
        elif isinstance(event, SystemStatus):
            self._on_status(event)

    # -- replies --------------------------------------------------------------------------------

    def _on_ack(self, conn: Connection, ack: Ack) -> None:
        batch = conn.state.get("requests", {}).pop(ack.req_id, None) if ack.req_id else None
        if ack.success:
            return
        msg = ack.ret_msg or "request rejected"
        if "already subscribed" in msg:
            log.info("%s: %s", self.name, msg)  # the subscription exists: its snapshot comes
            return
        if ack.op == "unsubscribe":
            log.info("%s: unsubscribe rejected: %s", self.name, msg)
            return
        topic = failed_topic(msg)
        symbol = topic_symbol(topic) if topic else None
        key = conn.state["keys"].get(symbol) if symbol else None
        if key is not None:
            self.report_error(f"Bybit rejected {topic}: {msg}", symbol=key, kind="exchange")
            for frame in self.unsubscribe_frames([key]):  # make sure no data keeps coming for it
                conn.send_soon(frame)
            # the other topics of that request may not be subscribed: ask again for them
            others = [k for k in (batch or []) if k != key and self.books[k].state in _WAITING]
            for frame in self.subscribe_frames(others):
                conn.send_soon(frame)
            return
        if ack.op == "subscribe" and batch:
            for k in batch:
                self.report_error(f"Bybit rejected the subscription: {msg}", symbol=k, kind="exchange")
            return
        self.report_error(f"Bybit error reply: {msg}", kind="exchange")

    def _on_status(self, status: SystemStatus) -> None:
        self.maintenance = status.items
        for item in status.items:
            if item.get("state") != "completed":
                self.report_error(f"Bybit maintenance {item.get('title')!r}: {item.get('state')}", kind="maintenance")
