"""Crypto.com Exchange (API v1) public L2 connector.

Exchange facts (reference: protocols-coinbase-cryptocom-bitstamp.md, section 2.A):

- WebSocket ``wss://stream.crypto.com/exchange/v1/market``; REST ``https://api.crypto.com/exchange/v1``
  (instruments from ``public/get-instruments``). Both configurable (``ws_url``/``rest_url``; UAT is
  ``wss://uat-stream.3ona.co/exchange/v1/market`` and ``https://uat-api.3ona.co/exchange/v1``).
- Channel ``book.{instrument}.{depth}`` (depth 10 or 50) subscribed with
  ``book_subscription_type: "SNAPSHOT_AND_UPDATE"`` and an explicit ``book_update_frequency``
  (10 or 100 ms): a ``book`` snapshot first, then ``book.update`` deltas. A delta is valid only
  when its ``pu`` equals the previous message's ``u``; anything else (gap, duplicate, reorder)
  resubscribes that instrument only (unsubscribe + subscribe -> a fresh snapshot). Empty deltas,
  sent when the book is idle, keep the chain. The undocumented ``cs`` field is not validated.
- Rate limits are pro-rated on the calendar second the socket opened: wait ``connect_delay_s``
  (1 s) after connecting before sending anything; 100 requests/s per connection (we send at most
  50/s, one channel per subscribe request so a rejection names exactly one instrument); at most
  400 subscriptions per connection (``40107 EXCEED_MAX_SUBSCRIPTIONS``).
- The server sends ``public/heartbeat`` every 30 s and closes the socket (code 1000) when
  ``public/respond-heartbeat`` with the same ``id`` does not come within 5 s: answered from the hot
  path, ahead of any queued subscriptions.
- Errors: any non-zero ``code`` (integer or string). Rejected subscriptions fail that instrument's
  book with the exchange's reason; ``TOO_MANY_REQUESTS``/internal errors are retried with backoff
  (the book shows the error meanwhile). Close code 1013 ("Server restarting", maintenance) is a
  reconnect with backoff; the reason shows in health.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, ClassVar, Literal

import anyio
from aggcore.book import SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig
from aggcore.models import BookState
from aggcore.symbols import SymbolTable
from pydantic import Field, field_validator

from .messages import Ack, BookData, ErrorReply, Heartbeat, parse
from .symbols import INSTRUMENTS_PATH, symbol_table

__all__ = ["CryptocomConfig", "CryptocomConnector"]

BOOK_DEPTHS = (10, 50)
_MAX_PENDING = 10_000


class CryptocomConfig(ConnectorConfig):
    """``exchanges.cryptocom``: the common keys plus Crypto.com's own."""

    book_update_frequency: Literal[10, 100] = Field(100, description="delta interval in ms (10 or 100)")
    connect_delay_s: float = Field(1.0, ge=0, description="wait after connecting before the first request")
    subscribe_retry_s: float = Field(1.0, gt=0, description="first backoff after a retryable subscribe error")

    @field_validator("depth")
    @classmethod
    def _book_depth(cls, value: int | None) -> int | None:
        if value is not None and value not in BOOK_DEPTHS:
            raise ValueError(f"Crypto.com book depth must be one of {BOOK_DEPTHS}, got {value}")
        return value


class CryptocomConnector(Connector):
    """Crypto.com Exchange v1 market-data connector (in-band snapshot, ``pu``/``u`` chain)."""

    name = "cryptocom"
    Config: ClassVar[type[ConnectorConfig]] = CryptocomConfig
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS)
    ws_url = "wss://stream.crypto.com/exchange/v1/market"
    rest_url = "https://api.crypto.com/exchange/v1"
    default_depth = 50
    max_symbols_per_connection = 400
    max_messages_per_second = 50.0  # exchange limit: 100 requests/s per market-data connection
    keepalive_interval_s = None  # the server sends public/heartbeat; we answer it
    ws_ping_interval_s = 20.0
    rest_rate_per_s = 50.0  # public REST: 100 requests/s per method per IP
    rest_burst = 10.0
    fake_server = "aggcore_plugin_cryptocom.fake:FakeCryptocom"

    config: CryptocomConfig

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        if not isinstance(config, CryptocomConfig):
            config = CryptocomConfig.model_validate(config.model_dump())
        super().__init__(config, **kwargs)
        self._ids = itertools.count(1)
        #: request id -> (method, native symbols): attributes error replies to instruments
        self._requests: dict[int, tuple[str, list[str]]] = {}
        self._retry_attempts: dict[str, int] = {}
        self._retrying: set[str] = set()

    # -- protocol ---------------------------------------------------------------------------------

    def channel(self, symbol: str) -> str:
        return f"book.{symbol}.{self.depth}"

    def _request(self, method: str, symbols: list[str], params: dict[str, Any]) -> dict[str, Any]:
        req_id = next(self._ids)
        self._requests[req_id] = (method, symbols)
        if len(self._requests) > _MAX_PENDING:
            del self._requests[next(iter(self._requests))]
        return {"id": req_id, "method": method, "params": params, "nonce": int(self.clock.time() * 1000)}

    async def load_symbols(self) -> SymbolTable:
        return symbol_table(await self.rest_get(INSTRUMENTS_PATH))

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        """One ``subscribe`` request per channel, so an error reply names one instrument."""
        return [
            self._request(
                "subscribe",
                [sym],
                {
                    "channels": [self.channel(sym)],
                    "book_subscription_type": "SNAPSHOT_AND_UPDATE",
                    "book_update_frequency": self.config.book_update_frequency,
                },
            )
            for sym in symbols
        ]

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [self._request("unsubscribe", [sym], {"channels": [self.channel(sym)]}) for sym in symbols]

    async def on_open(self, conn: Connection) -> None:
        """Rate limits are pro-rated on the calendar second of the connect: wait before sending."""
        if self.config.connect_delay_s:
            await self.clock.sleep(self.config.connect_delay_s)

    # -- the hot path ----------------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        msg = parse(frame)
        if type(msg) is BookData:
            books = self.books
            for update in msg.updates:
                book = books.get(update.symbol)
                if book is None:
                    continue
                state = book.state
                if update.snapshot:
                    if state is BookState.FAILED:
                        continue
                    self._retry_attempts.pop(update.symbol, None)
                elif (state is BookState.LIVE or state is BookState.STALE) and book.last_seq is not None:
                    pu = update.first - 1 if update.first is not None else None
                    if pu != book.last_seq:
                        # equality only: a duplicate or reordered delta breaks the chain as a gap does
                        book.gaps += 1
                        book.resync(f"book.update pu {pu} != previous u {book.last_seq}", "gap")
                        continue
                book.apply(update, receipt_ns)
        elif type(msg) is Heartbeat:
            self._respond_heartbeat(conn, msg.id)
        elif type(msg) is ErrorReply:
            self._on_error(msg)
        elif type(msg) is Ack and isinstance(msg.id, int):
            self._requests.pop(msg.id, None)

    def _respond_heartbeat(self, conn: Connection, hb_id: Any) -> None:
        """Answer within 5 s: jump the queue of pending subscriptions (the writer drains in order)."""
        conn.send_urgent({"id": hb_id, "method": "public/respond-heartbeat"})

    # -- errors ----------------------------------------------------------------------------------------

    def _on_error(self, err: ErrorReply) -> None:
        entry = self._requests.pop(err.id, None) if isinstance(err.id, int) else None
        method = entry[0] if entry else err.method
        symbols = [s for s in (entry[1] if entry else err.symbols) if s in self.books]
        text = err.describe()
        if method == "unsubscribe" or not symbols:
            self.report_error(text, code=err.code)  # connection-level: no book to blame
            return
        if err.retryable:
            self.errors += 1
            kind = "rate_limit" if "TOO_MANY" in text else "exchange"
            self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
            self.last_error = f"{text} (code {err.code})"
            for sym in symbols:
                self.books[sym].error = f"{self.last_error}; retrying"
                self._retry_later(sym)
            return
        # 40107 EXCEED_MAX_SUBSCRIPTIONS cannot heal on this connection: FAILED (retried rarely);
        # other codes: the engine tells from the message (unknown instrument -> FAILED, else retried)
        permanent = True if "EXCEED_MAX_SUBSCRIPTIONS" in text else None
        for sym in symbols:
            self.report_error(text, symbol=sym, code=err.code, permanent=permanent)

    def _retry_later(self, symbol: str) -> None:
        if symbol in self._retrying:
            return
        attempt = self._retry_attempts.get(symbol, 0)
        delay = min(self.config.subscribe_retry_s * 2**attempt, self.config.reconnect_max_s)
        if not self.spawn(self._retry_subscribe, symbol, delay * (0.8 + 0.4 * random.random())):
            return  # not running
        self._retry_attempts[symbol] = attempt + 1
        self._retrying.add(symbol)  # the task starts after this returns

    async def _retry_subscribe(self, symbol: str, delay: float) -> None:
        try:
            await self.clock.sleep(delay)
        finally:
            self._retrying.discard(symbol)
        if self.books[symbol].state is BookState.FAILED:
            return
        conn = self.connections.get(self.symbol_conn.get(symbol, -1))
        if conn is not None:  # else the reconnect subscribes it again
            for frame in self.subscribe_frames([symbol]):
                conn.send_soon(frame)
