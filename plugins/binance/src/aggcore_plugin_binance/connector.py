"""Binance spot connector: diff depth stream on combined streams + REST depth snapshots.

Exchange facts (Binance spot API docs, ``web-socket-streams.md`` / ``rest-api.md``):

- WebSocket base ``wss://stream.binance.com:9443`` (also ``:443``; market-data-only host
  ``wss://data-stream.binance.vision``). This connector opens the combined-stream endpoint
  ``<base>/stream`` and subscribes with ``{"method":"SUBSCRIBE","params":[...],"id":N}``;
  the ack is ``{"result":null,"id":N}``, an error ``{"error":{"code":2,"msg":...},"id":N}``.
  Stream names are lowercase: ``btcusdt@depth@100ms`` (``speed_ms=1000`` -> ``btcusdt@depth``).
- Limits: 5 incoming messages per second per connection (pings, pongs and control messages
  count; over it the server disconnects), 1024 streams per connection, a connection lives
  at most 24 h (the base class reconnects; every book then resyncs from a fresh snapshot,
  staggered under the REST budget). The server pings every 20 s and wants a pong within a
  minute (websockets answers pings by itself).
- REST base ``https://api.binance.com``. Instruments from ``GET /api/v3/exchangeInfo``
  (weight 20); snapshots from ``GET /api/v3/depth?symbol=BTCUSDT&limit=N`` (weight 5/25/50/250
  for limit <=100/500/1000/5000). IP budget ``REQUEST_WEIGHT`` 6000 per minute; 429 on breach,
  418 after repeated breaches, both with ``Retry-After``.
- Sync: buffer events, fetch the snapshot, drop events with ``u <= lastUpdateId``, the first
  applied event has ``U <= lastUpdateId + 1 <= u``, then every event ``U == previous u + 1``;
  anything else resyncs that symbol from a new snapshot (the stream stays up). No checksum.
- An unknown but well-formed stream is acknowledged and then silent, so pairs are validated
  against ``exchangeInfo`` first; delisted (``BREAK``) instruments are reported, not subscribed.
- Maintenance: ``{"e":"serverShutdown"}`` -> close and reconnect at once.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import anyio
from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig, RateLimitConfig
from aggcore.symbols import SymbolTable
from pydantic import Field

from .messages import DECODE_FAILS, DEPTH_DECODER, Ack, ErrorReply, ServerShutdown, depth_decoder, depth_weight, parse, parse_snapshot, stream_name
from .symbols import build_symbol_table

__all__ = ["BinanceConfig", "BinanceConnector"]

log = logging.getLogger("aggcore.binance")

#: streams per SUBSCRIBE message (the server rejects requests with too many parameters)
STREAMS_PER_REQUEST = 50
MAX_SNAPSHOT_LIMIT = 5000
MAX_TRACKED_REQUESTS = 1024


def _weight_budget() -> RateLimitConfig:
    # 6000 weight/min per IP: 80/s plus a burst of 1200 never exceeds 6000 in any minute
    return RateLimitConfig(requests_per_second=80.0, burst_size=1200)


class BinanceConfig(ConnectorConfig):
    """``exchanges.binance``: the common keys plus Binance's own."""

    rate_limit: RateLimitConfig = Field(
        default_factory=_weight_budget,
        description="REST budget in request WEIGHT per second and burst (Binance: 6000 weight/min per IP)",
    )
    speed_ms: Literal[100, 1000] = Field(100, description="diff depth stream speed: @depth@100ms or @depth (1000 ms)")
    snapshot_wait_s: float = Field(
        2.0, ge=0, description="wait up to this long for the first buffered event before fetching a snapshot"
    )
    snapshot_retries: int = Field(
        3, ge=0, description="refetch a snapshot older than the first buffered event this many times"
    )


class BinanceConnector(Connector):
    """Binance spot L2 books. See the module docstring for the protocol facts."""

    name = "binance"
    Config = BinanceConfig
    rules = SyncRules(SnapshotSource.REST, SequenceMode.CONTIGUOUS)
    ws_url = "wss://stream.binance.com:9443"
    rest_url = "https://api.binance.com"
    default_depth = 1000  # snapshot limit=1000 costs weight 50
    max_symbols_per_connection = 200  # the exchange allows 1024 streams per connection
    max_messages_per_second = 4.0  # the exchange allows 5 incoming per second, pongs included
    keepalive_interval_s = None  # no JSON ping on Binance streams; the server pings every 20 s
    ws_ping_interval_s = 30.0  # one extra control frame per 30 s to detect dead TCP connections
    fake_server = "aggcore_plugin_binance.fake:FakeBinance"

    config: BinanceConfig

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        if not isinstance(config, BinanceConfig):
            config = BinanceConfig.model_validate(config.model_dump())
        super().__init__(config, **kwargs)
        self.snapshot_limit = min(self.depth or 1000, MAX_SNAPSHOT_LIMIT)
        self._next_id = 0
        self._requests: dict[int | str, list[str]] = {}  # request id -> symbols it (un)subscribed
        self.shutdown_notices = 0
        # the typed decoder of the depthUpdates of every symbol subscribed so far (on any of
        # this connector's connections): see messages.depth_decoder
        self._subscribed: frozenset[str] = frozenset()
        self._decoder = DEPTH_DECODER

    # -- symbols ---------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        info = await self.rest_get("/api/v3/exchangeInfo", weight=20)
        return build_symbol_table(info)

    async def setup(self) -> None:
        await super().setup()
        assert self.symbols is not None
        for text in self.config.trading_pairs:
            try:
                inst = self.symbols.resolve(text)
            except KeyError:
                continue
            if not inst.active and inst.symbol in self.books:
                del self.books[inst.symbol]
                msg = f"{inst.symbol} is listed but not trading on Binance (status {inst.extra.get('status')})"
                self.pair_errors[text] = msg
                self.last_error = msg
                log.error("%s: %s", self.name, msg)

    # -- subscriptions -----------------------------------------------------------------------

    def connection_url(self, symbols: list[str]) -> str:
        base = self.ws_base
        for suffix in ("/stream", "/ws"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return base + "/stream"

    def _requests_for(self, method: str, symbols: list[str]) -> list[str | dict[str, Any]]:
        frames: list[str | dict[str, Any]] = []
        speed = self.config.speed_ms
        for i in range(0, len(symbols), STREAMS_PER_REQUEST):
            batch = symbols[i : i + STREAMS_PER_REQUEST]
            self._next_id += 1
            self._requests[self._next_id] = batch
            if len(self._requests) > MAX_TRACKED_REQUESTS:
                del self._requests[next(iter(self._requests))]
            frames.append({"method": method, "params": [stream_name(s, speed) for s in batch], "id": self._next_id})
        return frames

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        if not self._subscribed.issuperset(symbols):
            self._subscribed = self._subscribed.union(symbols)
            self._decoder = depth_decoder(self._subscribed)
        return self._requests_for("SUBSCRIBE", symbols)

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return self._requests_for("UNSUBSCRIBE", symbols)

    # -- the hot path ------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        try:
            update = self._decoder.decode(frame).data  # nearly every frame: decode_depth() inlined
        except DECODE_FAILS:
            pass
        else:
            update.exchange_ts /= 1000.0  # E: milliseconds
            try:
                book = self.books[update.symbol]
            except KeyError:
                return  # a symbol we did not subscribe to
            book.apply(update, receipt_ns)
            return
        event = parse(frame)
        if isinstance(event, BookUpdate):
            found = self.books.get(event.symbol)
            if found is not None:
                found.apply(event, receipt_ns)
        elif event is not None:
            self._control(conn, event)

    def _control(self, conn: Connection, event: Ack | ErrorReply | ServerShutdown) -> None:
        if isinstance(event, Ack):
            return  # the request's symbols stay on record: a later error may still name its id
        if isinstance(event, ErrorReply):
            symbols = self._symbols_of(event)
            if not symbols:
                self.report_error(f"error reply: {event.msg}", code=event.code)
            for sym in symbols:
                self.report_error(f"subscription rejected: {event.msg}", symbol=sym, code=event.code)
            return
        # maintenance: the server is going away; reconnect now rather than when it drops us
        self.shutdown_notices += 1
        self.last_error = "serverShutdown announced by Binance; reconnecting"
        log.warning("%s[%d]: %s", self.name, conn.index, self.last_error)
        if not conn.closed:
            self.spawn(conn.close, "serverShutdown")

    def _symbols_of(self, error: ErrorReply) -> list[str]:
        """The symbols an error is about: the stream it names (``data``), else its request's."""
        if isinstance(error.data, str) and "@" in error.data:
            symbol = error.data.split("@", 1)[0].upper()
            if symbol in self.books:
                return [symbol]
        if error.id is None:
            return []
        return list(self._requests.get(error.id, []))

    # -- snapshots -----------------------------------------------------------------------------

    async def fetch_snapshot(self, symbol: str) -> BookUpdate:
        """``GET /api/v3/depth`` once the stream has buffered an event; refetch while the snapshot
        is older than the first buffered event (``lastUpdateId + 1 < U``), as Binance says."""
        book = self.books[symbol]
        deadline = self.clock.monotonic() + self.config.snapshot_wait_s
        while not book.buffer and self.clock.monotonic() < deadline:
            await self.clock.sleep(0.02)
        limit = self.snapshot_limit
        params = {"symbol": symbol, "limit": limit}
        retries = self.config.snapshot_retries
        attempt = 0
        while True:
            body = await self.rest_get("/api/v3/depth", params, weight=depth_weight(limit))
            snap = parse_snapshot(symbol, body)
            buffered = book.buffer
            first = buffered[0].first if buffered else None
            if first is None or snap.last is None or snap.last + 1 >= first or attempt >= retries:
                return snap
            attempt += 1
            log.info("%s: %s snapshot %d older than first event %d; refetching", self.name, symbol, snap.last, first)
            await self.clock.sleep(0.1 * attempt)
