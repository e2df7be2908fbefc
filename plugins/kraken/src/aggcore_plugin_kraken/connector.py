"""Kraken spot connector: public WebSocket v2, channel ``book``.

Exchange facts (docs.kraken.com, spot WebSocket v2):

- URL ``wss://ws.kraken.com/v2`` (beta ``wss://beta-ws.kraken.com/v2``); REST ``https://api.kraken.com``.
- Subscribe ``{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true},"req_id":1}``;
  depth is one of 10, 25, 100, 500, 1000; one ack per symbol (``success: true``) or an error reply
  (``{"error":"Currency pair not supported XBT/USD","success":false,"symbol":"XBT/USD",...}``).
- Snapshot, then updates. No sequence numbers: the CRC32 of the top 10 levels (``checksum``, unsigned,
  on the snapshot and on every update) is the only integrity check; a mismatch resyncs that symbol
  only (unsubscribe + subscribe gives a fresh snapshot).
- The client keeps the book at the subscribed depth: Kraken sends no delete for a level pushed out
  of range (the engine truncates to ``depth`` after every update, before the checksum).
- ``{"channel":"heartbeat"}`` about once a second when idle; client ``{"method":"ping"}`` keeps the
  connection alive (the server drops connections idle for about a minute); ``status`` channel on
  connect and on engine changes (``online``, ``maintenance``, ``cancel_only``, ``post_only``).
- Limits: no documented message rate (the server answers ``Exceeded msg rate``) and ~150 connection
  attempts per 10 minutes per IP (Cloudflare), so this connector is conservative on both.
"""

from __future__ import annotations

import builtins
import itertools
import logging
from typing import Any, ClassVar, Literal

import anyio
import orjson
from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SyncRules
from aggcore.connector import Connection, Connector, ConnectorConfig
from aggcore.errors import AggregatorError, ExchangeError, NetworkError, ParsingError, TimeoutError
from aggcore.models import BookState
from aggcore.symbols import SymbolTable
from pydantic import Field, field_validator
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .messages import HEARTBEAT, Instruments, Pong, Reply, Status, book_checksum, formats_for, level_digits, parse, parse_v1
from .symbols import from_asset_pairs, from_instrument_pairs, join_v1_names

__all__ = ["DEPTHS", "KrakenConfig", "KrakenConnector"]

log = logging.getLogger("aggcore.kraken")

#: the book depths Kraken accepts
DEPTHS = (10, 25, 100, 500, 1000)
#: REST error prefixes that mean "try again later" rather than "wrong request"
_TRANSIENT = ("EService:", "EAPI:Rate limit", "EGeneral:Temporary")


class KrakenConfig(ConnectorConfig):
    """``exchanges.kraken``: the common keys plus the instrument-list source."""

    instruments: Literal["both", "instrument_channel", "asset_pairs"] = Field(
        "both",
        description="where symbols come from: both (v2 names and precisions from the WebSocket instrument channel, "
        "each pair's v1 name from REST AssetPairs, joined), instrument_channel alone, or asset_pairs alone "
        "(REST only: v1 names mapped with Kraken's documented spellings XBT, XDG)",
    )
    checksum: bool = Field(
        True, description="verify Kraken's CRC32 book checksum (a mismatch resyncs the pair); false: for every pair"
    )
    checksum_off_pairs: list[str] = Field(
        default_factory=list,
        description="pairs whose checksum is not verified (BTC/USD or the v1 spelling), e.g. a high-precision pair "
        "whose checksum Kraken computes unreliably",
    )

    @field_validator("depth")
    @classmethod
    def _depth(cls, value: int | None) -> int | None:
        if value is not None and value not in DEPTHS:
            raise ValueError(f"Kraken book depth must be one of {', '.join(map(str, DEPTHS))}")
        return value


class KrakenConnector(Connector):
    """Kraken spot L2 books over WebSocket v2 (native symbols are v2 names: ``BTC/USD``)."""

    name = "kraken"
    Config: ClassVar[type[ConnectorConfig]] = KrakenConfig
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, checksum=book_checksum, keep_strings=True, level_text=level_digits)
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"
    default_depth = 10  # Kraken's default; the checksum covers exactly the top 10
    max_symbols_per_connection = 50  # undocumented; kept small so a reconnect resubscribes little
    max_messages_per_second = 10.0  # undocumented ("Exceeded msg rate"); conservative
    keepalive_interval_s = 30.0  # {"method":"ping"}: the server closes after ~60 s of client silence
    ws_ping_interval_s = 20.0
    rest_rate_per_s = 1.0  # public REST: about one call per second per IP
    rest_burst = 5.0
    #: a request dropped with "Exceeded msg rate" is sent again after this long
    rate_limit_retry_s: ClassVar[float] = 5.0
    fake_server = "aggcore_plugin_kraken.fake:FakeKraken"

    def __init__(self, config: ConnectorConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._req_ids = itertools.count(1)
        self._formats: dict[str, tuple[str, str]] = {}
        self._bad_snapshots: dict[str, int] = {}
        self._v1_names: dict[str, str] = {}  # v1 wsname (XBT/USD) -> v2 symbol (BTC/USD)
        self._no_checksum: set[str] = set()  # symbols whose checksum is not verified
        self._checksum_times: dict[str, list[float]] = {}  # recent checksum failures per symbol
        self.system_status: str | None = None

    # -- instruments ----------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        source = getattr(self.config, "instruments", "both")
        if source == "asset_pairs":
            return from_asset_pairs(await self._asset_pairs())
        if source == "instrument_channel":
            return from_instrument_pairs(await self._instrument_snapshot())
        try:
            pairs = await self._instrument_snapshot()
        except (ExchangeError, ParsingError) as exc:  # not transient: REST alone still names the pairs
            log.warning("kraken: no v2 instrument list (%s); names from REST AssetPairs (instruments: asset_pairs)", exc)
            return from_asset_pairs(await self._asset_pairs())
        try:
            body = await self._asset_pairs()
            return join_v1_names(pairs, body)
        except AggregatorError as exc:  # the v2 names stand; only the v1 spellings are missing
            log.warning("kraken: no v1 pair names (REST AssetPairs: %s); v2 names from the instrument channel", exc)
            return from_instrument_pairs(pairs)

    async def _asset_pairs(self) -> Any:
        body = await self.rest_get("/0/public/AssetPairs")
        errors = [str(e) for e in (body.get("error") or [])] if isinstance(body, dict) else []
        if errors and all(e.startswith(_TRANSIENT) for e in errors):
            raise NetworkError(f"kraken AssetPairs: {', '.join(errors)}", exchange=self.name)
        return body

    async def _instrument_snapshot(self) -> list[dict[str, Any]]:
        """Subscribe to channel ``instrument`` on a short-lived connection; return its snapshot's pairs."""
        request = {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}, "req_id": next(self._req_ids)}
        try:
            with anyio.fail_after(self.config.connect_timeout_s + self.config.request_timeout_s):
                async with self.ws_connect(
                    self.ws_base, max_size=self.max_frame_bytes, open_timeout=self.config.connect_timeout_s,
                    ping_interval=None, compression=None,
                ) as ws:
                    await ws.send(orjson.dumps(request).decode())
                    async for frame in ws:
                        for event in parse(frame, {}):
                            if isinstance(event, Instruments) and event.snapshot:
                                return event.pairs
                            if isinstance(event, Reply) and not event.success:
                                raise ExchangeError(f"instrument channel: {event.error}", exchange=self.name)
        except TimeoutError:
            raise
        except builtins.TimeoutError as exc:
            raise TimeoutError("kraken: no instrument snapshot in time", exchange=self.name) from exc
        except (ConnectionClosed, OSError, InvalidHandshake, InvalidURI) as exc:
            raise NetworkError(f"kraken instrument channel: {type(exc).__name__}: {exc}", exchange=self.name) from exc
        raise NetworkError("kraken instrument channel closed before its snapshot", exchange=self.name)

    async def setup(self) -> None:
        await super().setup()
        assert self.symbols is not None
        self._v1_names = {str(i.extra["wsname"]): i.symbol for i in self.symbols.by_symbol.values() if i.extra.get("wsname")}
        for sym in self.books:
            inst = self.symbols.by_symbol[sym]
            fmt = formats_for(inst.price_precision, inst.qty_precision)
            if fmt is not None:
                self._formats[sym] = fmt
        cfg = self.config
        if not getattr(cfg, "checksum", True):
            self._no_checksum = set(self.books)
            log.warning("kraken: checksum verification is off (exchanges.kraken.checksum: false)")
        for i, text in enumerate(getattr(cfg, "checksum_off_pairs", [])):
            try:
                sym = self.symbols.resolve(text).symbol
            except KeyError as exc:
                self.report_error(f"exchanges.kraken.checksum_off_pairs[{i}]: {exc.args[0]}", kind="config")
                continue
            self._no_checksum.add(sym)
        if self._no_checksum and getattr(cfg, "checksum", True):
            log.warning("kraken: checksum not verified for %s (exchanges.kraken.checksum_off_pairs)", ", ".join(sorted(self._no_checksum)))

    # -- requests -------------------------------------------------------------------------------

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [
            {
                "method": "subscribe",
                "params": {"channel": "book", "symbol": list(symbols), "depth": self.depth, "snapshot": True},
                "req_id": next(self._req_ids),
            }
        ]

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return [
            {
                "method": "unsubscribe",
                "params": {"channel": "book", "symbol": list(symbols), "depth": self.depth},
                "req_id": next(self._req_ids),
            }
        ]

    def keepalive_frame(self) -> dict[str, Any]:
        return {"method": "ping", "req_id": next(self._req_ids)}

    # -- the hot path ---------------------------------------------------------------------------

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        books = self.books
        if frame[:1] in ("[", b"["):
            self._on_v1_frame(conn, frame, receipt_ns)
            return
        no_checksum = self._no_checksum
        for event in parse(frame, self._formats):
            if type(event) is BookUpdate:
                book = books.get(event.symbol)
                if book is not None and book.state is not BookState.FAILED:
                    if no_checksum and event.symbol in no_checksum:
                        event.checksum = None  # the engine verifies only a checksum that is there
                    failures = book.checksum_failures
                    book.apply(event, receipt_ns)
                    if book.checksum_failures != failures:
                        self._checksum_failed(event.symbol)
                    if event.snapshot:
                        self._after_snapshot(conn, event.symbol)
            elif event is HEARTBEAT:
                # sent only when nothing else is: every book on this connection is current
                for sym in conn.symbols:
                    b = books[sym]
                    if b.state is BookState.LIVE:
                        b.last_update_ns = receipt_ns
            elif isinstance(event, Reply):
                self._on_reply(conn, event)
            elif isinstance(event, Status):
                self._on_status(conn, event)
            elif isinstance(event, Pong):
                conn.state["last_pong_ns"] = receipt_ns

    def _on_v1_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        """A WebSocket v1 book frame (recordings of the frozen v1 feed, e.g. cryptofeed captures
        replayed by ``aggcore replay``): same book rules and checksum, v1 pair names mapped."""
        for event in parse_v1(frame):
            if type(event) is BookUpdate:
                symbol = self._v1_names.get(event.symbol, event.symbol)
                book = self.books.get(symbol)
                if book is not None and book.state is not BookState.FAILED:
                    book.apply(event, receipt_ns)
                    if event.snapshot:
                        self._after_snapshot(conn, symbol)

    def _after_snapshot(self, conn: Connection, symbol: str) -> None:
        """A snapshot that fails its own checksum: first read that pair's numbers literally (its
        precision may have changed), and give the symbol up after 3 in a row instead of resubscribing
        forever."""
        if self.books[symbol].live:
            self._bad_snapshots.pop(symbol, None)
            return
        n = self._bad_snapshots[symbol] = self._bad_snapshots.get(symbol, 0) + 1
        if n == 1 and self._formats.pop(symbol, None) is not None:
            log.warning("kraken: %s snapshot checksum mismatch; reading its prices as sent from now on", symbol)
        elif n >= 3:
            self.report_error(
                f"checksum of {n} consecutive snapshots does not match; symbol given up. {self._checksum_advice(symbol)}",
                symbol=symbol,
                kind="checksum",
                permanent=True,
            )
            for frame in self.unsubscribe_frames([symbol]):
                conn.send_soon(frame)

    #: a pair whose checksum fails this often within CHECKSUM_WINDOW_S says so in health
    CHECKSUM_REPEATS: ClassVar[int] = 3
    CHECKSUM_WINDOW_S: ClassVar[float] = 600.0

    def _checksum_advice(self, symbol: str) -> str:
        return (
            f"Kraken's checksum is reported unreliable for some high-precision pairs: if {symbol} is otherwise right, "
            f"turn its check off with exchanges.kraken.checksum_off_pairs: [{symbol}]"
        )

    def _checksum_failed(self, symbol: str) -> None:
        """Each checksum mismatch resyncs the pair; a pair failing repeatedly says so in health
        (its book's error, shown while it resyncs) and in the log, naming the option."""
        now = self.clock.monotonic()
        times = [t for t in self._checksum_times.get(symbol, ()) if now - t < self.CHECKSUM_WINDOW_S]
        times.append(now)
        self._checksum_times[symbol] = times
        if len(times) >= self.CHECKSUM_REPEATS:
            book = self.books[symbol]
            minutes = self.CHECKSUM_WINDOW_S / 60
            advice = f"checksum failed {len(times)} times in {minutes:g} min; {self._checksum_advice(symbol)}"
            book.error = f"{book.error}; {advice}" if book.error else advice
            if len(times) == self.CHECKSUM_REPEATS:
                log.warning("kraken: %s: %s", symbol, advice)

    def _on_reply(self, conn: Connection, reply: Reply) -> None:
        if reply.success:
            if reply.method == "subscribe" and reply.symbol is not None:
                conn.state.setdefault("subscribed", set()).add(reply.symbol)
            elif reply.method == "unsubscribe" and reply.symbol is not None:
                conn.state.setdefault("subscribed", set()).discard(reply.symbol)
            return
        error = reply.error or "request rejected"
        lowered = error.lower()
        if "already subscribed" in lowered or (reply.method == "unsubscribe" and "not found" in lowered):
            log.info("kraken: %s (%s)", error, reply.symbol)
            return
        if "msg rate" in lowered or "rate limit" in lowered:
            # the request was dropped, the pair is fine: subscribe the books still waiting later
            self.report_error(f"{reply.method or 'request'} rate limited: {error}", kind="rate_limit")
            if not conn.state.get("retry_pending"):
                conn.state["retry_pending"] = True
                self.spawn(self._retry_unsynced, conn)
            return
        kind = "exchange"
        if reply.method == "subscribe" and reply.symbol in self.books:
            self.report_error(f"subscription rejected: {error}", symbol=reply.symbol, kind=kind)
        elif reply.symbol in self.books and reply.method != "unsubscribe":
            self.report_error(error, symbol=reply.symbol, kind=kind)
        else:
            self.report_error(f"{reply.method or 'error'}: {error}" + (f" ({reply.symbol})" if reply.symbol else ""), kind=kind)

    async def _retry_unsynced(self, conn: Connection) -> None:
        await self.clock.sleep(self.rate_limit_retry_s)
        conn.state["retry_pending"] = False
        waiting = [s for s in conn.symbols if self.books[s].state in (BookState.SYNCING, BookState.RESYNCING)]
        if waiting and not conn.closed and self.connections.get(conn.index) is conn:
            for frame in self.subscribe_frames(waiting):
                conn.send_soon(frame)

    def _on_status(self, conn: Connection, status: Status) -> None:
        previous = self.system_status
        self.system_status = status.system
        conn.state["system"] = status.system
        if status.system == "online":
            if previous not in (None, "online"):
                log.info("kraken: engine back online (was %s)", previous)
            return
        self.report_error(f"exchange status {status.system}", kind="maintenance")
        if status.system == "maintenance":
            for sym in conn.symbols:
                self.books[sym].mark_stale("exchange in maintenance")
