"""The OKX v5 public connector: channel ``books`` (400 levels, 100 ms), spot and swaps.

Exchange facts (OKX docs v5, scraped 2026-08-22):

- WebSocket ``wss://ws.okx.com:8443/ws/v5/public``; REST ``https://openapi.okx.com``
  (formerly ``https://www.okx.com``; both configurable).
- Subscribe ``{"id": "7", "op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}``,
  one ack per arg; errors ``{"event": "error", "code": "60018", "msg": ...}``; the maintenance
  notice ``{"event": "notice", "code": "64008"}`` comes 60 s before a service upgrade closes
  the connection (we reconnect at once).
- Limits: 3 connection requests per second per IP (this connector spaces its connection
  attempts); 480 subscribe/unsubscribe requests per
  connection per hour; the args of one request at most 64 KB; fewer than 30 ``books``
  channels per connection is recommended.
- Sync: in-band snapshot (``prevSeqId = -1``) then updates, each in order only when its
  ``prevSeqId`` equals the last ``seqId`` (idle heartbeats ``seqId == prevSeqId`` and
  maintenance resets ``seqId < prevSeqId`` pass that test); otherwise that instrument is
  resubscribed (unsubscribe + subscribe). The announced REST bootstrap
  (``GET /api/v5/market/books?instId=..&sz=400`` with ``seqId``; 40 requests per 2 s) is
  chosen with ``snapshot_source: rest``: in-band snapshots are then ignored and deltas are
  buffered until the REST snapshot, the first applied one satisfying
  ``prevSeqId <= snapshot seqId < seqId``.
- ``checksum`` is 0 since 2026-06-23; a non-zero one (older feeds) is verified: signed CRC32
  of the interleaved top-25 levels over the exact wire strings.
- Keepalive: the server drops a connection without traffic for 30 s (close 4004): when no
  frame came for ``ping_after_s`` (< 30) we send the text ``ping`` and expect ``pong``; no
  answer within ``ping_after_s`` more -> reconnect.
"""

from __future__ import annotations

import itertools
from collections import deque
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import anyio
import orjson
from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig, WsOpener
from aggcore.errors import ExchangeError, NetworkError
from aggcore.models import BookState
from aggcore.symbols import SymbolTable
from pydantic import Field, field_validator
from websockets.asyncio.client import ClientConnection

from .messages import Event, checksum, parse, parse_numeric
from .symbols import parse_instruments

__all__ = ["OkxConfig", "OkxConnector"]

CHANNEL = "books"
MAX_DEPTH = 400  # levels per side of the ``books`` channel and of GET /api/v5/market/books
SUBSCRIBE_OPS_PER_HOUR = 480
MAX_ARGS_BYTES = 64 * 1024
MAINTENANCE_CODES = frozenset({"64008"})
RATE_LIMIT_CODES = frozenset({"60014"})  # "Requests too frequent"
TRANSIENT_CODES = frozenset({"64007"})  # "Internal error": the server's, not the instrument's
CONNECTS_PER_SECOND = 3.0  # "Connection limit: 3 requests per second (based on IP)"

InstType = Literal["SPOT", "SWAP", "FUTURES"]
DEFAULT_INST_TYPES: tuple[InstType, ...] = ("SPOT", "SWAP")

# With in-band snapshots a book keeps no wire strings until a frame for it carries a checksum
# (the feed before 2026-06-23, e.g. the 2022 captures): it then keeps them
# (OrderBook.keep_strings) from a snapshot on, and its checksums are verified. A REST snapshot
# can come before any frame tells: with REST snapshots every book keeps them.
INBAND_RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS, checksum=checksum)
REST_RULES = SyncRules(SnapshotSource.REST, SequenceMode.CONTIGUOUS, checksum=checksum, keep_strings=True)


class OkxConfig(ConnectorConfig):
    """``exchanges.okx``: the common keys plus OKX's own."""

    snapshot_source: Literal["inband", "rest"] = Field(
        "inband", description="in-band snapshot (current) or GET /api/v5/market/books + seqId (announced)"
    )
    inst_types: list[InstType] = Field(default_factory=lambda: list(DEFAULT_INST_TYPES), description="instrument lists to load")
    verify_checksum: bool = Field(True, description="verify non-zero checksums (OKX sends 0 since 2026-06-23)")
    ping_after_s: float = Field(20.0, gt=0, lt=30, description="send text 'ping' after this long without a frame")
    sync_timeout_s: float = Field(15.0, gt=0, description="resubscribe an instrument not LIVE this long after subscribing")

    @field_validator("depth")
    @classmethod
    def _depth_max(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_DEPTH:
            raise ValueError(f"OKX books carry at most {MAX_DEPTH} levels per side")
        return value


class OkxConnector(Connector):
    """OKX v5 public order books (``books`` channel). See the module docstring."""

    name = "okx"
    Config = OkxConfig
    rules = INBAND_RULES
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url = "https://openapi.okx.com"
    default_depth = MAX_DEPTH
    max_symbols_per_connection = 29
    max_messages_per_second = 3.0
    keepalive_interval_s = 1.0  # how often the idle check runs; see keepalive
    ws_ping_interval_s = None  # OKX's JSON API documents text ping/pong, not ping frames
    fake_server = "aggcore_plugin_okx.fake:FakeOkx"

    config: OkxConfig

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        if not isinstance(config, OkxConfig):
            config = OkxConfig.model_validate(config.model_dump())
        super().__init__(config, **kwargs)
        # ``books`` is always 400 levels and OKX never re-sends a level that stays inside them:
        # a book cut to a smaller ``depth`` (or a REST snapshot of fewer levels) would miss the
        # level that moves up when a better one is deleted. Keep all 400; readers take their top N.
        self.depth = MAX_DEPTH
        rules = REST_RULES if config.snapshot_source == "rest" else INBAND_RULES
        if not config.verify_checksum:
            rules = SyncRules(rules.snapshot, rules.sequence)
        self.rules = rules  # chosen per instance by config
        self.rest_snapshots = config.snapshot_source == "rest"
        self._verify = config.verify_checksum
        # every frame takes the wire-string parse: REST snapshots, or a frame carried a checksum
        self._checksummed = self.rest_snapshots and config.verify_checksum
        self._ids = itertools.count(1)
        self._requests: dict[str, tuple[str, list[str]]] = {}  # request id -> (op, instIds)
        self._prev: dict[str, int] = {}  # instId -> prevSeqId of the last applied message
        # every connection attempt of this connector (startup, reconnects) waits for a slot
        self._next_connect = 0.0
        inner: WsOpener = self.ws_connect

        def spaced(url: str, **kw: Any) -> AbstractAsyncContextManager[ClientConnection]:
            return _SpacedOpen(self, inner, url, kw)

        self.ws_connect = spaced

    async def _connect_slot(self) -> None:
        now = self.clock.monotonic()
        at = max(now, self._next_connect)
        self._next_connect = at + 1.05 / CONNECTS_PER_SECOND  # a little margin over the IP limit
        if at > now:
            await self.clock.sleep(at - now)

    # -- symbols --------------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        entries: list[dict[str, Any]] = []
        for inst_type in self.config.inst_types:
            body = await self.rest_get("/api/v5/public/instruments", {"instType": inst_type})
            entries.extend(_data(body, f"instruments {inst_type}"))
        return parse_instruments(entries)

    async def setup(self) -> None:
        await super().setup()
        for sym, book in self.books.items():
            inst = self.instrument(sym)
            if not inst.active:
                self.report_error(f"instrument {sym} is not trading (state {inst.extra.get('state')})", symbol=sym, permanent=True)

    # -- frames -------------------------------------------------------------------------------------

    def _request(self, op: str, symbols: list[str]) -> list[str | dict[str, Any]]:
        frames: list[str | dict[str, Any]] = []
        batch: list[str] = []
        size = 0
        for sym in symbols:
            arg_size = len(sym) + 40
            if batch and size + arg_size > MAX_ARGS_BYTES:
                frames.append(self._frame(op, batch))
                batch, size = [], 0
            batch.append(sym)
            size += arg_size
        if batch:
            frames.append(self._frame(op, batch))
        return frames

    def _frame(self, op: str, symbols: list[str]) -> dict[str, Any]:
        rid = str(next(self._ids))
        self._requests[rid] = (op, list(symbols))
        if len(self._requests) > 1000:
            self._requests.pop(next(iter(self._requests)))
        return {"id": rid, "op": op, "args": [{"channel": CHANNEL, "instId": s} for s in symbols]}

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return self._request("subscribe", symbols)

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return self._request("unsubscribe", symbols)

    def keepalive_frame(self) -> str:
        return "ping"

    # -- the hot path ---------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        # the current feed (checksum 0): typed decoding into numbers; anything else, or once a
        # frame carried a checksum, the wire strings (the checksum is computed over them)
        updates = None if self._checksummed else parse_numeric(frame, checksums=self._verify)
        if updates is None:
            result = parse(frame, checksums=self._verify)
            if isinstance(result, Event):
                self.on_event_frame(conn, result)
                return
            updates = result
        books = self.books
        for update in updates:
            sym = update.symbol
            book = books.get(sym)
            if book is None:
                continue
            if update.snapshot and self.rest_snapshots:
                continue  # the announced procedure: ignore the in-band snapshot, use REST
            if update.checksum and book.book.bids.raw is None:
                # a feed with checksums: this book keeps the wire strings from a snapshot on (a
                # book that holds levels read without them is synced again)
                self._checksummed = True
                held = not update.snapshot and bool(book.book.bids.keys or book.book.asks.keys)
                book.book.keep_strings()
                if held:
                    book.resync("OKX sends checksums: a fresh snapshot to verify them from", "checksum")
                    continue
            if update.snapshot:
                self._prev[sym] = -1
                book.apply(update, receipt_ns)
                continue
            first = update.first
            seq = update.last
            if first is None or seq is None:
                book.apply(update, receipt_ns)  # no sequence (2022 feeds): checksum only
                continue
            prev = first - 1
            last = book.last_seq
            if last is not None and prev != last and (book.state is BookState.LIVE or book.state is BookState.STALE):
                if not (seq == last and prev == self._prev.get(sym)):
                    # out of order and not a repeat of the last message: OKX says resubscribe
                    update.last = None  # the engine counts a gap and resyncs this symbol
            book.apply(update, receipt_ns)
            if book.last_seq == seq:
                self._prev[sym] = prev

    # -- events ----------------------------------------------------------------------------------------

    def on_event_frame(self, conn: Connection, event: Event) -> None:
        kind = event.kind
        if kind in ("pong", "subscribe", "unsubscribe", "other"):
            return
        if kind == "notice" or event.code in MAINTENANCE_CODES:
            self.report_error(f"maintenance notice: {event.msg}", kind="maintenance", code=event.code)
            if event.code in MAINTENANCE_CODES:
                self._close_soon(conn, "service upgrade announced (64008)")
            return
        if kind != "error":
            return
        op, requested = self._requests.get(event.id or "", ("", []))
        symbols = [s for s in requested if s in self.books]
        if event.code in RATE_LIMIT_CODES:
            self.report_error(f"rate limited by OKX: {event.msg}", kind="rate_limit", code=event.code)
            if op == "subscribe" and symbols:  # try these again later
                for s in symbols:
                    self.books[s].error = f"subscription rate limited ({event.msg}); retrying"
                self._later(5.0, self._retry_subscribe, symbols)
            return
        if event.code in TRANSIENT_CODES:
            self.report_error(f"error from OKX: {event.msg}", kind="exchange", code=event.code)
            if op == "subscribe" and symbols:  # try these again later
                self._later(5.0, self._retry_subscribe, symbols)
            return
        sym = event.symbol
        if sym is None and len(symbols) == 1 and op == "subscribe":
            sym = symbols[0]
        if sym is not None and sym in self.books:
            self.report_error(f"subscription rejected: {event.msg}", symbol=sym, code=event.code)
            return
        self.report_error(f"error from OKX: {event.msg}", kind="exchange", code=event.code)

    def _retry_subscribe(self, symbols: list[str]) -> None:
        for sym in symbols:
            if self.books[sym].state is not BookState.FAILED and not self.books[sym].live:
                self.resubscribe(sym)

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        async def run() -> None:
            await self.clock.sleep(delay)
            fn(*args)

        self.spawn(run)

    def _close_soon(self, conn: Connection, reason: str) -> None:
        if not conn.closed:
            self.spawn(conn.close, reason)

    # -- resync ------------------------------------------------------------------------------------------

    def resubscribe(self, symbol: str) -> None:
        """Unsubscribe + subscribe this instrument; past OKX's 480 requests per connection
        and hour, reconnect instead (a new connection subscribes everything in one request)."""
        conn = self.connections.get(self.symbol_conn.get(symbol, -1))
        if conn is None:
            return
        ops: deque[float] = conn.state.setdefault("ops", deque())
        now = self.clock.monotonic()
        while ops and now - ops[0] > 3600:
            ops.popleft()
        if len(ops) + 2 > SUBSCRIBE_OPS_PER_HOUR - 10:
            self.report_error("subscription request budget (480/hour) used up; reconnecting", kind="rate_limit")
            self._close_soon(conn, "subscription budget used up")
            return
        ops.extend((now, now))
        super().resubscribe(symbol)

    # -- REST snapshot (snapshot_source: rest) -------------------------------------------------------------

    async def fetch_snapshot(self, symbol: str) -> BookUpdate:
        sz = min(self.depth or MAX_DEPTH, MAX_DEPTH)
        body = await self.rest_get("/api/v5/market/books", {"instId": symbol, "sz": str(sz)})
        data = _data(body, f"order book {symbol}", rate_limited=self)
        if not data:
            raise ExchangeError(f"order book {symbol}: empty data", code=body.get("code"), exchange=self.name)
        d = data[0]
        ts = d.get("ts")
        return BookUpdate(
            symbol,
            d["bids"],
            d["asks"],
            snapshot=True,
            last=int(d["seqId"]),
            exchange_ts=int(ts) / 1000.0 if ts else None,
        )

    # -- keepalive ---------------------------------------------------------------------------------------

    async def keepalive(self, conn: Connection) -> None:
        """Text ``ping`` after ``ping_after_s`` without a frame; reconnect when no answer."""
        idle_ns = int(self.config.ping_after_s * 1e9)
        pinged_at: int | None = None
        waiting: dict[str, int] = {}  # instId -> when we first saw it not LIVE
        while not conn.closed:
            await self.clock.sleep(min(self.keepalive_interval_s or 1.0, self.config.ping_after_s / 4, self.config.sync_timeout_s / 4))
            now = self.clock.monotonic_ns()
            self._check_sync(conn, waiting, now)
            last = conn.last_frame_ns
            if pinged_at is not None and last >= pinged_at:
                pinged_at = None
            if pinged_at is None:
                if now - last >= idle_ns:
                    conn.send_soon("ping")
                    pinged_at = now
            elif now - pinged_at >= idle_ns:
                self.report_error(f"no pong within {self.config.ping_after_s:g}s; reconnecting", kind="websocket")
                with anyio.move_on_after(2):
                    await conn.close("no pong")
                return


    def _check_sync(self, conn: Connection, waiting: dict[str, int], now: int) -> None:
        """An instrument whose subscription brought no book within ``sync_timeout_s`` (a lost
        request or ack) is subscribed again."""
        limit = int(self.config.sync_timeout_s * 1e9)
        for sym in conn.symbols:
            state = self.books[sym].state
            if state is BookState.LIVE or state is BookState.STALE or state is BookState.FAILED:
                waiting.pop(sym, None)
                continue
            since = waiting.setdefault(sym, now)
            if now - since >= limit and not self.snapshot_pending(sym):
                waiting[sym] = now
                self.books[sym].error = f"no book {self.config.sync_timeout_s:g}s after subscribing; subscribing again"
                self.resubscribe(sym)


class _SpacedOpen:
    """A WebSocket opener whose connection attempt first waits for the connector's slot."""

    def __init__(self, connector: OkxConnector, opener: WsOpener, url: str, kwargs: dict[str, Any]) -> None:
        self.connector = connector
        self.opener = opener
        self.url = url
        self.kwargs = kwargs
        self.cm: AbstractAsyncContextManager[ClientConnection] | None = None

    async def __aenter__(self) -> ClientConnection:
        await self.connector._connect_slot()
        self.cm = self.opener(self.url, **self.kwargs)
        return await self.cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        if self.cm is None:
            return None
        return await self.cm.__aexit__(*exc)


def _data(body: Any, what: str, rate_limited: OkxConnector | None = None) -> list[dict[str, Any]]:
    """The ``data`` of an OKX REST answer ``{"code": "0", "msg": "", "data": [...]}``."""
    if not isinstance(body, dict):
        raise ExchangeError(f"{what}: unexpected answer {orjson.dumps(body)[:200]!r}", exchange="okx")
    code = str(body.get("code", "0"))
    if code != "0":
        msg = body.get("msg", "")
        if code == "50011" and rate_limited is not None:  # rate limit in the body (HTTP 200/429)
            rate_limited.budget.pause(1.0)
            raise NetworkError(f"{what}: rate limited by OKX ({msg})", exchange="okx")
        raise ExchangeError(f"{what}: {msg} (OKX code {code})", code=code, exchange="okx")
    data = body.get("data")
    return list(data) if isinstance(data, list) else []
