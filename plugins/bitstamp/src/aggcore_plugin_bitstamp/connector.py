"""The Bitstamp connector (WebSocket API v2, public channels, no API key).

Exchange facts (see the plugin README and the protocol reference):

- WebSocket ``wss://ws.bitstamp.net`` (one URL for every market); REST ``https://www.bitstamp.net``.
- Instruments: ``GET /api/v2/trading-pairs-info/``; native symbols are the lowercase
  ``url_symbol`` (``btcusd``). A wrong-case channel gets ``bts:error "Invalid channel
  provided."``; an unknown lowercase pair is acknowledged and then silent forever, so every
  configured pair is validated against the catalog before subscribing.
- One channel per frame: ``{"event":"bts:subscribe","data":{"channel":"diff_order_book_btcusd"}}``,
  acknowledged by ``bts:subscription_succeeded`` per channel. Client frames must stay under
  512 bytes (larger ones are refused with close 1009); the 1,025th subscription on a
  connection silently closes it (we put at most 1,000 on one connection).
- Book sync: subscribe ``diff_order_book_{pair}`` (full depth, only changed levels), buffer,
  then ``GET /api/v2/order_book/{pair}/`` and drop buffered diffs whose ``microtimestamp`` is at
  or before the snapshot's (integers, microseconds; the seconds ``timestamp`` is too coarse:
  real captures hold same-second diffs older than the snapshot). The snapshot is fetched after
  the subscription ack (plus ``snapshot_delay_s``) and fetched again when it is older than a
  diff received before the request (Bitstamp's REST book can lag the stream).
- No sequence numbers, no checksum: a lost diff is invisible on the wire. The book is re-seeded
  on every reconnect, on ``bts:request_reconnect`` (maintenance: we reconnect at once) and when
  it crosses; ``refresh_interval_s`` re-fetches the snapshot of LIVE books periodically and
  replaces a book that drifted from it.
- Keepalive: ``{"event": "bts:heartbeat"}`` every ``heartbeat_interval_s`` (answered with
  ``{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}``).
- Errors ``{"event": "bts:error", "channel": "", "data": {"code": null, "message": ...}}`` leave the
  socket open and name no channel: they answer our oldest unacknowledged subscription, whose
  book fails with the exchange's message.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, ClassVar

import anyio
import orjson
from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig
from aggcore.errors import ExchangeError, ParsingError
from aggcore.models import BookState
from aggcore.symbols import SymbolTable
from pydantic import Field

from .messages import Ack, BtsError, Heartbeat, ReconnectRequest, diff_channel, parse, parse_snapshot
from .symbols import parse_instruments

__all__ = ["MAX_CLIENT_FRAME_BYTES", "BitstampConfig", "BitstampConnector"]

log = logging.getLogger("aggcore.bitstamp")

#: client frames must be under 512 bytes; a larger one closes the socket with 1009
MAX_CLIENT_FRAME_BYTES = 511
#: "Attempting a 1025th subscription causes the connection to be silently closed"
MAX_CHANNELS_PER_CONNECTION = 1024
HEARTBEAT = '{"event":"bts:heartbeat"}'


class BitstampConfig(ConnectorConfig):
    """``exchanges.bitstamp``: the common keys plus Bitstamp's own."""

    heartbeat_interval_s: float = Field(20.0, gt=0, description="send bts:heartbeat this often")
    snapshot_delay_s: float = Field(0.5, ge=0, description="wait after the subscription ack before GET order_book")
    snapshot_retries: int = Field(3, ge=0, description="re-fetch a snapshot older than a diff received before asking for it")
    ack_timeout_s: float = Field(10.0, gt=0, description="a subscription without ack after this long fails its book")
    refresh_interval_s: float | None = Field(
        300.0, gt=0, description="re-fetch the REST snapshot of LIVE books this often (None: never)"
    )


def subscribe_frame(symbol: str) -> str:
    return '{"event":"bts:subscribe","data":{"channel":"' + diff_channel(symbol) + '"}}'


def unsubscribe_frame(symbol: str) -> str:
    return '{"event":"bts:unsubscribe","data":{"channel":"' + diff_channel(symbol) + '"}}'


class BitstampConnector(Connector):
    """Bitstamp v2 ``diff_order_book`` books seeded from REST snapshots by ``microtimestamp``."""

    name = "bitstamp"
    Config: ClassVar[type[ConnectorConfig]] = BitstampConfig
    rules = SyncRules(SnapshotSource.REST, SequenceMode.MONOTONIC, check_crossed=True)
    ws_url = "wss://ws.bitstamp.net"
    rest_url = "https://www.bitstamp.net"
    default_depth = None  # diff_order_book is full depth
    max_symbols_per_connection = 1000  # one channel per symbol, under the 1,024-channel cap
    max_messages_per_second = 50.0  # no published limit; stay polite
    keepalive_interval_s = 20.0
    ws_ping_interval_s = 20.0
    fake_server = "aggcore_plugin_bitstamp.fake:FakeBitstamp"

    config: BitstampConfig

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        assert isinstance(config, BitstampConfig), "BitstampConnector needs a BitstampConfig"
        self.keepalive_interval_s = config.heartbeat_interval_s
        self.refresh_mismatches = 0

    # -- instruments and frames ------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        data = await self.rest_get("/api/v2/trading-pairs-info/")
        if not isinstance(data, list):
            raise ParsingError(f"trading-pairs-info: expected a list, got {str(data)[:200]}", exchange=self.name)
        return parse_instruments(data)

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [subscribe_frame(s) for s in symbols]

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [unsubscribe_frame(s) for s in symbols]

    def keepalive_frame(self) -> str:
        return HEARTBEAT

    def subscribe(self, conn: Connection, symbols: list[str]) -> None:
        """Subscribe one channel per frame; the REST snapshot waits for each channel's ack."""
        pending: deque[str] = conn.state.setdefault("pending", deque())
        conn.state.setdefault("acked", set())
        sent: list[str] = []
        for sym in symbols:
            book = self.books[sym]
            if book.state is BookState.FAILED:
                continue
            frame = subscribe_frame(sym)
            if len(frame.encode()) > MAX_CLIENT_FRAME_BYTES:
                self.report_error(f"subscribe frame for {sym!r} exceeds Bitstamp's 512-byte limit", symbol=sym, permanent=True)
                continue
            if len(pending) + len(conn.state["acked"]) >= MAX_CHANNELS_PER_CONNECTION:
                self.report_error("more than 1,024 channels on one connection", symbol=sym, permanent=True)
                continue
            book.begin_sync()
            pending.append(sym)
            conn.send_soon(frame)
            sent.append(sym)
        if sent:
            self.spawn(self._watch_acks, conn, sent)

    async def _watch_acks(self, conn: Connection, symbols: list[str]) -> None:
        # the timeout counts from when the frames go out: queued ones leave at the message rate
        # (1,000 subscriptions take 20 s at 50/s)
        await self.clock.sleep(self.config.ack_timeout_s + len(conn.outbox) / self.message_rate())
        if conn.closed or self.connections.get(conn.index) is not conn:
            return
        pending: deque[str] = conn.state["pending"]
        for sym in symbols:
            if sym in pending:
                pending.remove(sym)
                self.report_error(
                    f"no bts:subscription_succeeded for {diff_channel(sym)} within {self.config.ack_timeout_s:g}s",
                    symbol=sym,
                    kind="timeout",
                )

    # -- the hot path -------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        msg = parse(frame)
        if type(msg) is BookUpdate:
            book = self.books.get(msg.symbol)
            if book is not None:
                book.apply(msg, receipt_ns)
            return
        self._on_event(conn, msg)

    def _on_event(self, conn: Connection, msg: object) -> None:
        if isinstance(msg, Ack):
            self._on_ack(conn, msg)
        elif isinstance(msg, BtsError):
            self._on_error(conn, msg)
        elif isinstance(msg, ReconnectRequest):
            self.report_error("bts:request_reconnect (maintenance): reconnecting and re-seeding", kind="maintenance")
            conn.state["reconnect_requested"] = True
            if not conn.closed:
                self.spawn(self._close, conn, "bts:request_reconnect")
        elif isinstance(msg, Heartbeat):
            if msg.status not in (None, "success"):
                self.report_error(f"bts:heartbeat answered {msg.status!r}", kind="exchange")
        # trades, unsubscription acks and other channels are not ours to handle

    def _on_ack(self, conn: Connection, msg: Ack) -> None:
        sym = msg.symbol
        if sym is None or sym not in self.books:
            return
        pending: deque[str] = conn.state.setdefault("pending", deque())
        if sym in pending:
            pending.remove(sym)
        conn.state.setdefault("acked", set()).add(sym)
        if self.books[sym].state is not BookState.FAILED:
            self.schedule_snapshot(sym)

    def _on_error(self, conn: Connection, msg: BtsError) -> None:
        pending: deque[str] = conn.state.setdefault("pending", deque())
        sym = msg.symbol if msg.symbol in self.books else None
        if sym is None and pending:
            sym = pending[0]  # Bitstamp answers in order: the oldest unanswered subscription
        if sym is None:
            self.report_error(f"bts:error: {msg.message}", code=msg.code)
            return
        if sym in pending:
            pending.remove(sym)
        self.report_error(f"bts:error for {diff_channel(sym)}: {msg.message}", symbol=sym, code=msg.code)

    async def _close(self, conn: Connection, reason: str) -> None:
        with anyio.move_on_after(5):
            await conn.close(reason)

    # -- REST snapshots ---------------------------------------------------------------------------

    async def fetch_snapshot(self, symbol: str) -> BookUpdate:
        """``GET /api/v2/order_book/{pair}/`` once the channel is acknowledged on the live connection.

        Fetched again (up to ``snapshot_retries`` times) when it is older than the oldest diff we
        hold: the REST book lags the stream, and the changes between that snapshot and the start of
        our diffs would be missing with nothing on the wire to tell. A snapshot at or after the
        oldest buffered diff is complete: the buffered diffs after it are applied, older ones dropped.
        """
        cfg = self.config
        attempt = 0
        while True:
            if cfg.snapshot_delay_s:
                await self.clock.sleep(cfg.snapshot_delay_s)
            conn = self.connections.get(self.symbol_conn.get(symbol, -1))
            if conn is None or symbol not in conn.state.get("acked", ()):
                if self.books[symbol].state is BookState.FAILED:
                    raise ExchangeError(f"{symbol}: no snapshot for a failed subscription", exchange=self.name, symbol=symbol)
                await self.clock.sleep(0.05)
                continue
            buffer = self.books[symbol].buffer
            known = buffer[0].last if buffer else None  # the oldest diff we hold
            snap = await self._get_snapshot(symbol)
            if self.connections.get(self.symbol_conn.get(symbol, -1)) is not conn:
                continue  # reconnected meanwhile: this snapshot may predate the new subscription
            if known is not None and snap.last is not None and snap.last < known and attempt < cfg.snapshot_retries:
                attempt += 1  # a hole between the snapshot and our first diff: ask again
                log.info("bitstamp: %s snapshot %s older than the first diff %s; again", symbol, snap.last, known)
                continue
            return snap

    async def _get_snapshot(self, symbol: str) -> BookUpdate:
        body = await self.rest_get(f"/api/v2/order_book/{symbol}/")
        if not isinstance(body, dict) or "microtimestamp" not in body:
            reason = body.get("reason") or body.get("message") if isinstance(body, dict) else None
            raise ExchangeError(
                f"order_book/{symbol}: {reason or 'unexpected answer ' + orjson.dumps(body).decode()[:200]}",
                exchange=self.name,
                symbol=symbol,
            )
        return parse_snapshot(symbol, body)

    async def on_open(self, conn: Connection) -> None:
        if self.config.refresh_interval_s:
            self.spawn(self._refresh_loop, conn)

    async def _refresh_loop(self, conn: Connection) -> None:
        """Re-fetch LIVE books' snapshots; one newer than everything applied replaces the book."""
        interval = self.config.refresh_interval_s
        assert interval
        while True:
            await self.clock.sleep(interval)
            if conn.closed or self.connections.get(conn.index) is not conn:
                return
            for sym in list(conn.symbols):
                book = self.books[sym]
                if not book.live:
                    continue
                try:
                    snap = await self._get_snapshot(sym)
                except Exception as exc:  # a refresh is best effort; the book stays as it is
                    log.info("bitstamp: refresh of %s failed: %s", sym, exc)
                    continue
                if not book.live or snap.last is None or book.last_seq is None or snap.last < book.last_seq:
                    continue  # diffs newer than the snapshot were applied: try next round
                if not _same_book(book.book.bids.levels, snap.bids, book.depth, True) or not _same_book(
                    book.book.asks.levels, snap.asks, book.depth, False
                ):
                    self.refresh_mismatches += 1
                    self.error_counts["refresh_mismatch"] = self.error_counts.get("refresh_mismatch", 0) + 1
                    log.warning("bitstamp: %s differed from a fresh snapshot; replaced", sym)
                    book.snapshot_fetched(snap, self.clock.monotonic_ns())


def _same_book(levels: dict[float, float], wire: Any, depth: int | None, bids: bool) -> bool:
    """Does one side of our book hold exactly the snapshot's levels (its best ``depth``)?"""
    other = {float(p): float(q) for p, q, *_ in wire if float(q) != 0.0}
    if depth is not None and len(other) > depth:
        keep = sorted(other, reverse=bids)[:depth]
        other = {p: other[p] for p in keep}
    return other == levels
