"""The Coinbase Advanced Trade connector: public ``level2`` books over one or more WebSockets.

Exchange facts (see the plugin README for sources):

- WebSocket ``wss://advanced-trade-ws.coinbase.com``, no authentication for ``level2`` and
  ``heartbeats``. One channel per subscribe message (``"channel"``, singular):
  ``{"type": "subscribe", "product_ids": [...], "channel": "level2"}``. A client that has not
  subscribed within 5 s is disconnected. Each (un)subscribe is answered by a ``subscriptions``
  frame listing the cumulative set; a product missing from it was not accepted.
- Data arrives on channel ``l2_data``: one ``snapshot`` event per product after each subscribe,
  then ``update`` events with absolute sizes (``"0"`` deletes); sides ``bid``/``offer``.
  No checksum. BTC-USD snapshots are several MB: the frame limit is 64 MiB.
- ``sequence_num`` is one counter per connection across all channels. A jump means a lost
  message of unknown product, so every LIVE product of that connection is resynced
  (unsubscribe + subscribe for fresh snapshots; a product already waiting for its snapshot
  keeps waiting: that snapshot replaces everything); ``products_per_connection`` bounds that
  blast radius (default 1: a gap resyncs only its own product). Older or repeated numbers are
  dropped. Not every jump is lost data: a public client's log shows ``sequence_num`` 150 -> 158
  on two ``heartbeats`` frames carrying one ``heartbeat_counter`` (a repeated heartbeat; the
  numbers in between went to its copies). A jump that lands on a heartbeat repeating the last
  ``heartbeat_counter`` therefore resyncs nothing (counted in ``sequence_skips``).
- ``heartbeats`` (server, 1/s) is subscribed on every connection: channels without traffic are
  closed after 60-90 s otherwise. It needs no products: the subscribe omits ``product_ids``.
- Limits: 8 connections/s and 8 unauthenticated client messages/s **per IP**: one limiter is
  shared by every connection of the connector, and opening a connection takes a slot too.
- ``-USDC`` products are served under their ``-USD`` alias (``alias_to``): data with
  ``product_id`` ``BTC-USD`` feeds a ``BTC-USDC`` book.
- Errors are ``{"type": "error", "message": ...}``: naming a product they fail that book,
  otherwise they are a connection error shown on the books still waiting for data.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal

import anyio
from aggcore.book import SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig, WsOpener
from aggcore.models import BookState
from aggcore.symbols import SymbolTable
from pydantic import Field
from websockets.asyncio.client import ClientConnection

from .messages import parse
from .symbols import build_table, wire_ids

__all__ = ["CoinbaseConfig", "CoinbaseConnector"]

_PRODUCT_RE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")
_WAITING = (BookState.SYNCING, BookState.RESYNCING)


class CoinbaseConfig(ConnectorConfig):
    """``exchanges.coinbase`` settings (on top of the common connector keys)."""

    products_per_connection: int = Field(
        1, ge=1, le=500, description="products per WebSocket; a sequence_num gap resyncs all products of its connection"
    )
    messages_per_second: float = Field(
        8.0, gt=0, le=8.0, description="client messages and connection opens per second, shared (Coinbase: 8/s per IP)"
    )
    ack_timeout_s: float = Field(
        5.0, gt=0, description="a product left out of the subscriptions ack fails if no snapshot comes within this"
    )
    snapshot_timeout_s: float = Field(
        20.0, gt=0, description="an acknowledged product without a snapshot after this is resubscribed"
    )


class _ThrottledOpen:
    """Wraps a WebSocket opener so that each connection attempt waits for a rate slot.

    Opens go one at a time through ``gate``, held until the connection's first subscribe is
    sent (``on_open`` releases it): otherwise a burst of opens reserves every slot of the
    shared rate ahead of the subscribes, and connections opened first miss Coinbase's 5 s
    subscribe deadline (with 8 slots/s, from about 40 connections on: closed, reopened, forever).
    """

    def __init__(
        self,
        opener: WsOpener,
        slot: Callable[[], Awaitable[None]],
        url: str,
        kwargs: dict[str, Any],
        gate: "_OpenGate | None" = None,
    ) -> None:
        self.opener = opener
        self.slot = slot
        self.url = url
        self.kwargs = kwargs
        self.gate = gate
        self.cm: AbstractAsyncContextManager[ClientConnection] | None = None

    async def __aenter__(self) -> ClientConnection:
        if self.gate is not None:
            await self.gate.acquire(self)
        try:
            await self.slot()
            self.cm = self.opener(self.url, **self.kwargs)
            return await self.cm.__aenter__()
        except BaseException:
            if self.gate is not None:
                self.gate.release(self)
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        if self.gate is not None:
            self.gate.release(self)
        if self.cm is None:
            return None
        return await self.cm.__aexit__(*exc)


class _OpenGate:
    """One connection opening at a time (see :class:`_ThrottledOpen`); releasable from any task."""

    def __init__(self) -> None:
        self._sem = anyio.Semaphore(1)
        self.holder: object | None = None

    async def acquire(self, holder: object) -> None:
        await self._sem.acquire()
        self.holder = holder

    def release(self, holder: object | None = None) -> None:
        """Release if held (by ``holder``, when given); a no-op otherwise."""
        if self.holder is not None and (holder is None or holder is self.holder):
            self.holder = None
            self._sem.release()


class CoinbaseConnector(Connector):
    """Coinbase Advanced Trade ``level2`` (see the module docstring for the protocol)."""

    name: ClassVar[str] = "coinbase"
    Config: ClassVar[type[ConnectorConfig]] = CoinbaseConfig
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)  # sequence_num: per connection
    ws_url: ClassVar[str] = "wss://advanced-trade-ws.coinbase.com"
    rest_url: ClassVar[str] = "https://api.coinbase.com"
    products_path: ClassVar[str] = "/api/v3/brokerage/market/products"
    default_depth: ClassVar[int | None] = None  # the snapshot is the full aggregated book
    max_frame_bytes: ClassVar[int] = 64 * 1024 * 1024
    max_symbols_per_connection: ClassVar[int] = 1  # CoinbaseConfig.products_per_connection decides
    max_messages_per_second: ClassVar[float] = 8.0  # CoinbaseConfig.messages_per_second decides
    rate_limit_scope: ClassVar[Literal["connection", "connector"]] = "connector"  # the limit is per IP
    keepalive_interval_s: float | None = None  # the heartbeats channel keeps connections open
    ws_ping_interval_s: ClassVar[float | None] = 20.0
    fake_server: ClassVar[str | None] = "aggcore_plugin_coinbase.fake:FakeCoinbase"

    config: CoinbaseConfig

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        if not isinstance(config, CoinbaseConfig):
            config = CoinbaseConfig.model_validate(config.model_dump())
        super().__init__(config, **kwargs)
        inner: WsOpener = self.ws_connect
        slot = self.message_slot  # opening a connection takes a slot of the shared message rate
        self._open_gate = gate = _OpenGate()

        def throttled(url: str, **kw: Any) -> AbstractAsyncContextManager[ClientConnection]:
            return _ThrottledOpen(inner, slot, url, kw, gate)

        self.ws_connect = throttled
        self.wire: dict[str, str] = {}  # product id -> the product id its data carries
        self.connection_gaps = 0
        self.sequence_skips = 0  # sequence_num jumps explained by a repeated heartbeat: no resync
        self.duplicates = 0
        self.snapshots: dict[str, int] = {}
        self._batch: list[str] | None = None

    # -- symbols -----------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        """Public product list, spot only (paged by ``offset`` when ``num_products`` says so)."""
        products: list[dict[str, Any]] = []
        params: dict[str, Any] = {"product_type": "SPOT"}
        while True:
            data = await self.rest_get(self.products_path, params)
            page = data.get("products") or []
            products.extend(page)
            total = data.get("num_products")
            if not page or not isinstance(total, int) or len(products) >= total or len(products) > 100_000:
                break
            params = {**params, "offset": len(products)}
        table = build_table(products)
        self.wire = wire_ids(table)
        return table

    async def setup(self) -> None:
        await super().setup()
        assert self.symbols is not None
        for sym in list(self.books):
            inst = self.symbols.by_symbol[sym]
            if not inst.active:
                status = inst.extra.get("status", "?")
                self.report_error(
                    f"{sym} is {status!r} on Coinbase (maintenance, disabled or delisted): not subscribed",
                    symbol=sym,
                    code=status,
                )

    def groups(self) -> list[list[str]]:
        syms = [s for s, b in self.books.items() if b.state is not BookState.FAILED]
        n = self.config.products_per_connection
        return [syms[i : i + n] for i in range(0, len(syms), n)]

    # -- frames ------------------------------------------------------------------------------

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [{"type": "subscribe", "product_ids": list(symbols), "channel": "level2"}]

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [{"type": "unsubscribe", "product_ids": list(symbols), "channel": "level2"}]

    def message_rate(self) -> float:
        return self.config.messages_per_second

    async def on_open(self, conn: Connection) -> None:
        routes: dict[str, list[str]] = {}
        for sym in conn.symbols:
            for key in {self.wire.get(sym, sym), sym}:
                routes.setdefault(key, []).append(sym)
        conn.state["routes"] = routes
        conn.state["seq"] = None
        conn.state["pending"] = deque(maxlen=256)  # (op, channel, products) awaiting their ack
        conn.state["pending"].append(("subscribe", "heartbeats", ()))
        try:
            # sent now, before the next connection may open: it meets the 5 s subscribe deadline
            # heartbeats needs no products: product_ids is omitted, not sent empty
            await conn.send({"type": "subscribe", "channel": "heartbeats"})
        finally:
            self._open_gate.release()

    def subscribe(self, conn: Connection, symbols: list[str]) -> None:
        super().subscribe(conn, symbols)
        live = tuple(s for s in symbols if self.books[s].state is not BookState.FAILED)
        if live:
            conn.state["pending"].append(("subscribe", "level2", live))

    def resubscribe(self, symbol: str) -> None:
        if self._batch is not None:
            self._batch.append(symbol)
            return
        conn = self.connections.get(self.symbol_conn.get(symbol, -1))
        if conn is None:
            return  # the reconnect resubscribes it
        # products sharing one feed on this connection (BTC-USD and its alias BTC-USDC) resync
        # together: unsubscribing one may stop the data of the other
        key = self.wire.get(symbol, symbol)
        self._batch = [symbol]
        try:
            for other in conn.symbols:
                book = self.books[other]
                if other != symbol and self.wire.get(other, other) == key and book.state is not BookState.FAILED:
                    book.resync(f"{symbol} shares its feed and resyncs", "gap")
        finally:
            batch, self._batch = self._batch, None
        self._resubscribe(conn, list(dict.fromkeys(batch)))

    def _resubscribe(self, conn: Connection, symbols: list[str]) -> None:
        """Unsubscribe then subscribe ``level2`` for these products: fresh snapshots follow."""
        pending = conn.state["pending"]
        for frame in self.unsubscribe_frames(symbols):
            conn.send_soon(frame)
            pending.append(("unsubscribe", "level2", tuple(symbols)))
        for frame in self.subscribe_frames(symbols):
            conn.send_soon(frame)
            pending.append(("subscribe", "level2", tuple(symbols)))

    # -- the hot path ----------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        msg = parse(frame)
        state = conn.state
        seq = msg.seq
        if seq is not None:
            last = state["seq"]
            if last is not None and seq != last + 1:
                if seq <= last:
                    self.duplicates += 1  # repeated or out of order: already accounted for
                    return
                if msg.heartbeat is not None and msg.heartbeat == state.get("heartbeat"):
                    self.sequence_skips += 1  # a repeated heartbeat: the skipped numbers were its copies
                else:
                    self._connection_gap(conn, last, seq)
            state["seq"] = seq
        if msg.books:
            routes = state["routes"]
            books = self.books
            for update in msg.books:
                for sym in routes.get(update.symbol, ()):
                    if update.snapshot:
                        self.snapshots[sym] = self.snapshots.get(sym, 0) + 1
                    books[sym].apply(update, receipt_ns)
            return
        if msg.subscriptions is not None:
            self._on_ack(conn, msg.subscriptions)
        elif msg.error is not None:
            self._on_error(conn, msg.error)
        elif msg.heartbeat is not None:
            state["heartbeat"] = msg.heartbeat

    # -- sequence, acks, errors -------------------------------------------------------------------

    def _connection_gap(self, conn: Connection, last: int, seq: int) -> None:
        """A message of unknown product was lost: resync every LIVE product of this connection
        (one waiting for its snapshot after a resubscribe keeps waiting: the snapshot replaces all)."""
        self.connection_gaps += 1
        reason = f"sequence_num gap on connection {conn.index}: expected {last + 1}, got {seq}"
        conn.state["pending"].clear()  # a lost ack would shift the ack queue: start afresh
        self._batch = []
        try:
            for sym in conn.symbols:
                book = self.books[sym]
                if book.state is BookState.LIVE or book.state is BookState.STALE:  # not those awaiting a snapshot
                    book.gaps += 1
                    book.resync(reason, "gap")
        finally:
            batch, self._batch = self._batch, None
        if batch:
            self._resubscribe(conn, batch)

    def _on_ack(self, conn: Connection, subs: dict[str, list[str]]) -> None:
        pending: deque[tuple[str, str, tuple[str, ...]]] = conn.state["pending"]
        if not pending:
            return
        op, channel, products = pending.popleft()
        if op != "subscribe" or channel != "level2":
            return
        acked = set(subs.get("level2", ()))
        for sym in products:
            if sym in acked or self.wire.get(sym, sym) in acked:
                self.spawn(self._expect_snapshot, conn, sym, self.snapshots.get(sym, 0))
                continue
            book = self.books[sym]
            if book.state in _WAITING:
                book.error = f"level2 subscription of {sym} not in Coinbase's subscriptions ack"
                self.spawn(self._confirm_rejected, sym, self.snapshots.get(sym, 0))

    async def _confirm_rejected(self, sym: str, snapshots: int) -> None:
        """Fail the product unless a snapshot arrived after all (acks are matched by order)."""
        await self.clock.sleep(self.config.ack_timeout_s)
        book = self.books[sym]
        if self.snapshots.get(sym, 0) == snapshots and book.state in _WAITING:
            self.report_error(
                f"Coinbase did not accept the level2 subscription of {sym} (unknown or unsupported product)",
                symbol=sym,
                code="not_subscribed",
            )

    async def _expect_snapshot(self, conn: Connection, sym: str, snapshots: int) -> None:
        """An accepted subscription that yields no snapshot is retried (never a silent empty book)."""
        await self.clock.sleep(self.config.snapshot_timeout_s)
        book = self.books[sym]
        if self.snapshots.get(sym, 0) == snapshots and book.state in _WAITING and not conn.closed:
            if self.connections.get(conn.index) is conn:
                book.resync(f"no snapshot {self.config.snapshot_timeout_s:g}s after the subscription was acknowledged", "timeout")

    def _on_error(self, conn: Connection, text: str) -> None:
        routes: dict[str, list[str]] = conn.state.get("routes", {})
        named = {sym for token in _PRODUCT_RE.findall(text) for sym in routes.get(token, ())}
        if named:
            for sym in sorted(named):
                self.report_error(f"Coinbase error: {text}", symbol=sym, code="error")
            return
        self.report_error(f"Coinbase error on connection {conn.index}: {text}", kind="exchange")
        for sym in conn.symbols:
            book = self.books[sym]
            if book.state in _WAITING:
                book.error = f"Coinbase error: {text}"
