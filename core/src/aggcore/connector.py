"""The connector base class: the I/O every exchange shares.

An exchange plugin subclasses :class:`Connector`, declares its facts as class attributes
(URLs, :class:`~aggcore.book.SyncRules`, limits) and implements a handful of small methods:

=========================  ===========================================================
``load_symbols()``         async: the exchange's instrument list -> :class:`SymbolTable`
``subscribe_frames(syms)`` the frames that subscribe these native symbols
``unsubscribe_frames()``   the frames that unsubscribe them (for per-symbol resync)
``on_frame(conn, frame)``  sync, the hot path: parse, then ``self.books[sym].apply(u)``
``fetch_snapshot(sym)``    async, REST-snapshot exchanges only
``keepalive_frame()``      the application-level ping, if the exchange wants one
``keepalive(conn)``        async, per connection: the keepalive loop (default: send
                           ``keepalive_frame()`` every ``keepalive_interval_s``)
``on_open(conn)``          async hook after connect, before subscribing
=========================  ===========================================================

Helpers a plugin may use: ``spawn(fn, *args)`` (a background task of the running connector),
``snapshot_pending(sym)``, ``message_slot()`` and, on a :class:`Connection`, ``send_soon``,
``send`` and ``send_urgent`` (ahead of queued frames). ``rate_limit_scope = "connector"``
makes all connections of a connector share one outgoing message rate (a per-IP limit).

The base class does the rest: connect with timeout and a frame limit fit for multi-MB
snapshots, subscribe in batches under the exchange's message rate, keepalive, reconnect with
exponential backoff and jitter (reset after a stable period), resync of one symbol (a fresh
REST snapshot or an unsubscribe/subscribe of that symbol only), REST calls through a
per-exchange weight budget that honours 429/418 and ``Retry-After``, and stale-feed detection.
All I/O goes through the injected ``httpx.AsyncClient`` and WebSocket opener, so fake
servers and recordings drive the same code.
"""

from __future__ import annotations

import builtins
import importlib
import logging
import math
import random
import re
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import anyio
import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI, PayloadTooBig
from websockets.frames import Opcode
from websockets.protocol import State

from .clock import SYSTEM_CLOCK, Clock
from .book import BookListener, BookUpdate, SnapshotSource, SymbolBook, SyncRules
from .errors import (
    AggregatorError,
    ExchangeError,
    NetworkError,
    ParsingError,
    RateLimitError,
    TimeoutError,
    WebSocketError,
)
from .models import BookState
from .symbols import Instrument, SymbolTable

if TYPE_CHECKING:
    from .testing.server import FakeExchange

__all__ = [
    "Connection",
    "Connector",
    "ConnectorConfig",
    "RateBudget",
    "RateLimitConfig",
    "WsOpener",
]

_TEXT = Opcode.TEXT
_OPEN = State.OPEN
_BINARY = Opcode.BINARY

log = logging.getLogger("aggcore.connector")

WsOpener = Callable[..., AbstractAsyncContextManager[ClientConnection]]


class RateLimitConfig(BaseModel):
    """Client-side REST budget (the specification's ``rate_limit`` section)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_second: float = Field(10.0, gt=0)
    burst_size: int = Field(20, ge=1)


class ConnectorConfig(BaseModel):
    """Settings every connector accepts (``exchanges.<name>``); plugins subclass it."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    trading_pairs: list[str] = Field(default_factory=list, description="BTC/USDT or as the exchange writes it")
    ws_url: str | None = Field(None, description="WebSocket base URL (fake servers, regional hosts, testnets)")
    rest_url: str | None = Field(None, description="REST base URL")
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    depth: int | None = Field(None, ge=1, description="book depth to subscribe and keep; plugin default when unset")
    connect_timeout_s: float = Field(10.0, gt=0)
    request_timeout_s: float = Field(10.0, gt=0)
    stale_after_s: float = Field(30.0, gt=0, description="a book with no data for this long is STALE")
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    stable_after_s: float = Field(60.0, gt=0, description="a connection up this long resets the backoff")
    resync_deadline_s: float = Field(
        10.0,
        gt=0,
        description="a book not LIVE for this long is escalated: asked again (snapshot or resubscribe), then its "
        "connection is reconnected, alternately, with the interval doubling up to reconnect_max_s, forever",
    )
    failed_retry_s: float = Field(
        600.0, gt=0, description="a FAILED book (an error that cannot heal, e.g. an unknown symbol) is retried after this long"
    )
    max_book_levels: int = Field(
        10_000,
        ge=100,
        description="levels kept per book side: levels beyond them are dropped and the book stays exact within "
        "the levels it keeps (a full-depth feed cannot grow a book without bound)",
    )


class RateBudget:
    """A weight budget for one exchange's REST calls: a token bucket plus a hard pause.

    ``acquire(weight)`` waits until the bucket holds ``weight`` tokens. ``pause(seconds)``
    (after a 429/418 with ``Retry-After``) blocks every caller until then.
    """

    def __init__(self, rate_per_s: float, burst: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.rate = rate_per_s
        self.capacity = max(burst, 1.0)
        self.tokens = self.capacity
        self.stamp = clock.monotonic()
        self.paused_until = 0.0
        self._lock = anyio.Lock()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock.monotonic() + seconds)

    async def acquire(self, weight: float = 1.0) -> None:
        weight = min(weight, self.capacity)
        async with self._lock:
            while True:
                now = self.clock.monotonic()
                if now < self.paused_until:
                    await self.clock.sleep(self.paused_until - now)
                    continue
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= weight:
                    self.tokens -= weight
                    return
                await self.clock.sleep((weight - self.tokens) / self.rate)


class _Limiter:
    """Outgoing WebSocket message rate (messages per second, pongs included).

    A slot is reserved before sleeping, so concurrent waiters (the connections of a connector
    with ``rate_limit_scope = "connector"``) never share one."""

    def __init__(self, per_second: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        if at > now:
            await self.clock.sleep(at - now)


class Connection:
    """One WebSocket connection of a connector and the native symbols it carries.

    ``send_soon`` is safe from synchronous code (the hot path): frames are queued and written
    by the connection's writer task under the exchange's message rate; ``send_urgent`` queues
    at the front (a heartbeat answer ahead of queued subscriptions). ``state`` is free for
    the plugin (e.g. Coinbase keeps its per-connection ``sequence_num`` there).
    """

    def __init__(self, connector: "Connector", ws: ClientConnection, symbols: list[str], index: int) -> None:
        self.connector = connector
        self.ws = ws
        self.symbols = symbols
        self.index = index
        self.state: dict[str, Any] = {}
        self.outbox: deque[str | bytes] = deque()
        self._wake = anyio.Event()
        self._limiter = connector._connection_limiter()
        self.opened_at = connector.clock.monotonic()
        self.last_frame_ns = connector.clock.monotonic_ns()
        #: the last frame the plugin's parser took without an error: only those keep the
        #: connection's books current (a feed whose every frame fails to parse goes STALE)
        self.last_parsed_ns = self.last_frame_ns
        self.closed = False

    def send_soon(self, frame: str | bytes | dict[str, Any] | list[Any]) -> None:
        if isinstance(frame, (dict, list)):
            frame = orjson.dumps(frame).decode()
        self.outbox.append(frame)
        self._wake.set()

    def send_urgent(self, frame: str | bytes | dict[str, Any] | list[Any]) -> None:
        """Like ``send_soon``, but ahead of every queued frame (still under the message rate)."""
        if isinstance(frame, (dict, list)):
            frame = orjson.dumps(frame).decode()
        self.outbox.appendleft(frame)
        self._wake.set()

    async def send(self, frame: str | bytes | dict[str, Any] | list[Any]) -> None:
        """Send now (still under the message rate)."""
        if isinstance(frame, (dict, list)):
            frame = orjson.dumps(frame).decode()
        await self._limiter.wait()
        await self.ws.send(frame)

    async def _writer(self) -> None:
        try:
            while True:
                while self.outbox:
                    frame = self.outbox.popleft()
                    await self._limiter.wait()
                    await self.ws.send(frame)
                self._wake = anyio.Event()
                if self.outbox:
                    continue
                await self._wake.wait()
        except ConnectionClosed:
            return  # the reader sees the close and reports it

    async def close(self, reason: str = "") -> None:
        self.closed = True
        await self.ws.close(1000, reason[:120])


class _Heal:
    """How the engine is bringing one book back to LIVE (see ``Connector._heal_books``)."""

    __slots__ = ("since", "next_at", "step", "requests", "retry_scheduled", "resubscribe", "failed_at", "waiting", "action")

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time the book was first seen not LIVE
        self.next_at = 0.0  # when the next escalation is due
        self.step = 0  # escalations so far: odd = asked again, even = reconnected
        self.requests = 0  # resync requests since the book was last seen LIVE (their backoff)
        self.retry_scheduled = False  # a delayed re-ask is pending
        self.resubscribe = False  # the next re-ask also resubscribes (after an exchange error)
        self.failed_at: float | None = None
        self.waiting: str | None = None  # what the book waits for (health)
        self.action: str | None = None  # what the engine does next, at next_at (health)

    def reset(self) -> None:
        self.since = None
        self.step = 0
        self.requests = 0
        self.failed_at = None
        self.waiting = None
        self.action = None


class Connector:
    """Base class of exchange connectors. See the module docstring for what to implement."""

    # -- exchange facts, declared by each plugin --------------------------------------------
    name: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    #: snapshot source, sequence mode, checksum: a class-level default that an instance may
    #: override in ``__init__`` before ``start()`` (e.g. a config-chosen snapshot source)
    rules: SyncRules
    ws_url: ClassVar[str]
    rest_url: ClassVar[str] = ""
    default_depth: ClassVar[int | None] = None
    max_frame_bytes: ClassVar[int] = 64 * 1024 * 1024
    max_symbols_per_connection: ClassVar[int] = 200
    max_messages_per_second: ClassVar[float] = 5.0
    #: "connection": each connection has its own outgoing message rate; "connector": all
    #: connections of the connector share one (an exchange that limits per IP, not per socket)
    rate_limit_scope: ClassVar[Literal["connection", "connector"]] = "connection"
    keepalive_interval_s: float | None = None  # a class default; an instance may set its own
    ws_ping_interval_s: ClassVar[float | None] = 20.0
    rest_rate_per_s: ClassVar[float | None] = None  # weight per second; from config when None
    rest_burst: ClassVar[float | None] = None
    #: "module:Class" of the plugin's fake exchange server (for tests, conformance and --simulate)
    fake_server: ClassVar[str | None] = None

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        http: httpx.AsyncClient | None = None,
        ws_connect: WsOpener | None = None,
        listener: BookListener | None = None,
        on_event: Callable[[str, SymbolBook, str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        #: every time read and sleep of the connector (and its plugin) goes through this clock
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.http = http or httpx.AsyncClient()
        self._own_http = http is None
        self.ws_connect: WsOpener = ws_connect or ws_connect_default
        self.listener = listener
        self.on_event = on_event
        self.ws_base = (config.ws_url or type(self).ws_url).rstrip("/") if (config.ws_url or type(self).ws_url) else ""
        self.rest_base = (config.rest_url or type(self).rest_url).rstrip("/")
        self.depth = config.depth or self.default_depth
        rate = self.rest_rate_per_s or config.rate_limit.requests_per_second
        burst = self.rest_burst or float(config.rate_limit.burst_size)
        self.budget = RateBudget(rate, burst, self.clock)
        self.symbols: SymbolTable | None = None
        self.books: dict[str, SymbolBook] = {}
        self.pair_errors: dict[str, str] = {}  # configured pair -> why it is not subscribed
        self.connections: dict[int, Connection] = {}
        self.symbol_conn: dict[str, int] = {}
        self.connected = False
        self.reconnects = 0
        self.errors = 0
        self.error_counts: dict[str, int] = {}
        self.last_error: str | None = None
        self.messages = 0
        self._pending_snapshots: set[str] = set()
        self._heal: dict[str, _Heal] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._snapshot_slot = 0.0
        self._shared_limiter: _Limiter | None = None

    @classmethod
    def load_fake(cls) -> "type[FakeExchange]":
        """The plugin's fake exchange server class (``fake_server``), imported on demand.

        Raises ``LookupError`` when the plugin ships none."""
        if not cls.fake_server:
            raise LookupError(f"plugin {cls.name!r} ships no fake server (Connector.fake_server is unset)")
        module, _, attr = cls.fake_server.partition(":")
        fake: type[FakeExchange] = getattr(importlib.import_module(module), attr)
        return fake

    # -- to implement -------------------------------------------------------------------------

    async def load_symbols(self) -> SymbolTable:
        raise NotImplementedError

    def subscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        raise NotImplementedError

    def unsubscribe_frames(self, symbols: list[str]) -> list[str | dict[str, Any]]:
        return []

    def on_frame(self, conn: Connection, frame: str | bytes, receipt_ns: int) -> None:
        raise NotImplementedError

    async def fetch_snapshot(self, symbol: str) -> BookUpdate:
        raise NotImplementedError(f"{self.name} has no REST snapshots")

    def keepalive_frame(self) -> str | dict[str, Any] | None:
        return None

    async def on_open(self, conn: Connection) -> None:
        return None

    async def keepalive(self, conn: Connection) -> None:
        """The keepalive loop of one connection, run beside its reader until it closes.

        The default sends ``keepalive_frame()`` (when not ``None``) every ``keepalive_interval_s``
        through the writer, so pings count in the message rate; without an interval it returns
        at once. Override it for another policy (e.g. ping only when idle, detect a missing pong).
        """
        interval = self.keepalive_interval_s
        if not interval:
            return
        while True:
            await self.clock.sleep(interval)
            frame = self.keepalive_frame()
            if frame is not None:
                conn.send_soon(frame)  # through the writer: counted in the message rate

    def connection_url(self, symbols: list[str]) -> str:
        """The URL to connect to for these symbols (Binance puts streams in the URL)."""
        return self.ws_base

    # -- helpers for plugins ----------------------------------------------------------------------

    def report_error(
        self,
        message: str,
        *,
        symbol: str | None = None,
        kind: str = "exchange",
        code: int | str | None = None,
        permanent: bool | None = None,
    ) -> None:
        """Record an exchange/parsing error. Never raises: the hot path goes on.

        Without a symbol it is a connection-level error (counted, shown in health). With a
        symbol, that book leaves LIVE and health shows why: a transient error (e.g. an error
        reply such as "busy" or "rate limited") resyncs and resubscribes it, retried with
        backoff until it heals; a permanent one (an error that cannot heal: an unknown,
        invalid or delisted symbol, a channel the exchange does not have) makes it FAILED,
        retried only every ``failed_retry_s``. ``permanent=None`` (the default) lets the
        engine tell from the message (:func:`looks_permanent`); a plugin that knows its
        exchange's codes passes ``True`` or ``False``."""
        self.errors += 1
        self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
        text = f"{message} (code {code})" if code is not None else message
        self.last_error = text
        log.warning("%s: %s%s", self.name, f"{symbol}: " if symbol else "", text)
        book = self.books.get(symbol) if symbol is not None else None
        if book is None:
            return
        if permanent is None:
            permanent = looks_permanent(text)
        if permanent:
            book.fail(text)
        elif not book.failed:
            self._heal_state(book.symbol).resubscribe = True
            book.resync(text, "error")

    def parse_error(self, frame: str | bytes, exc: BaseException, conn: Connection | None = None) -> None:
        snippet = frame[:200] if isinstance(frame, str) else frame[:200].decode("utf-8", "replace")
        self.report_error(f"cannot parse frame ({type(exc).__name__}: {exc}): {snippet!r}", kind="parsing")

    def message_rate(self) -> float:
        """Outgoing WebSocket messages per second (per connection or per connector, see
        ``rate_limit_scope``); ``max_messages_per_second`` unless a plugin takes it from config."""
        return self.max_messages_per_second

    async def message_slot(self) -> None:
        """Wait for a slot under the connector-wide message rate (``rate_limit_scope =
        "connector"``), e.g. to count a connection attempt as a message."""
        await self._connector_limiter().wait()

    def _connector_limiter(self) -> _Limiter:
        if self._shared_limiter is None:
            self._shared_limiter = _Limiter(self.message_rate(), self.clock)
        return self._shared_limiter

    def _connection_limiter(self) -> _Limiter:
        if self.rate_limit_scope == "connector":
            return self._connector_limiter()
        return _Limiter(self.message_rate(), self.clock)

    def spawn(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Run ``func(*args)`` as a background task of the running connector (cancelled when it
        stops). Returns ``False``, starting nothing, when the connector is not running."""
        if self._tg is None:
            return False
        self._tg.start_soon(self._guarded, func, args)
        return True

    async def _guarded(self, func: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
        """A background task that raises is reported, never the end of the connector."""
        try:
            await func(*args)
        except Exception as exc:
            self.report_error(f"background task {getattr(func, '__name__', func)!r} failed: {_describe(exc)}", kind="internal")
            log.debug("%s: background task failed", self.name, exc_info=True)

    def snapshot_pending(self, symbol: str) -> bool:
        """Whether a REST snapshot of this symbol is scheduled or being fetched."""
        return symbol in self._pending_snapshots

    def instrument(self, symbol: str) -> Instrument:
        assert self.symbols is not None
        return self.symbols.by_symbol[symbol]

    async def rest_get(self, path: str, params: dict[str, Any] | None = None, *, weight: float = 1.0, retries: int = 4) -> Any:
        """GET ``rest_base + path`` as JSON under the REST budget.

        429/418 pause the whole exchange's budget for ``Retry-After`` (or a backoff) and the call
        is retried; 5xx and transport errors are retried with backoff; other statuses raise.
        """
        url = path if path.startswith("http") else self.rest_base + path
        delay = 0.5
        for attempt in range(retries + 1):
            await self.budget.acquire(weight)
            try:
                resp = await self.http.get(url, params=params, timeout=self.config.request_timeout_s)
            except httpx.TimeoutException as exc:
                err: AggregatorError = TimeoutError(f"GET {url} timed out", exchange=self.name)
                err.__cause__ = exc
            except httpx.HTTPError as exc:
                err = NetworkError(f"GET {url} failed: {exc}", exchange=self.name)
                err.__cause__ = exc
            else:
                if resp.status_code in (429, 418):
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    self.budget.pause(retry_after if retry_after is not None else delay * 4)
                    self.error_counts["rate_limit"] = self.error_counts.get("rate_limit", 0) + 1
                    err = RateLimitError(
                        f"GET {url}: HTTP {resp.status_code}, retry after {retry_after}s",
                        status=resp.status_code,
                        retry_after=retry_after,
                        exchange=self.name,
                    )
                    self.last_error = str(err)
                    if attempt < retries:
                        continue
                    raise err
                if resp.status_code >= 500:
                    err = NetworkError(f"GET {url}: HTTP {resp.status_code}", status=resp.status_code, exchange=self.name)
                elif resp.status_code >= 400:
                    raise ExchangeError(
                        f"GET {url}: HTTP {resp.status_code}: {resp.text[:300]}", code=resp.status_code, exchange=self.name
                    )
                else:
                    try:
                        return orjson.loads(resp.content)
                    except orjson.JSONDecodeError as exc:
                        raise ParsingError(f"GET {url}: body is not JSON: {resp.text[:200]!r}", exchange=self.name) from exc
            if attempt >= retries:
                raise err
            await self.clock.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    # -- lifecycle ----------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Load the instrument list and create one book per configured pair that exists."""
        delay = self.config.reconnect_min_s
        while True:
            try:
                self.symbols = await self.load_symbols()
                break
            except (NetworkError, TimeoutError) as exc:
                self.last_error = f"loading instruments: {exc}"
                log.warning("%s: %s; retrying in %.1fs", self.name, self.last_error, delay)
                await self.clock.sleep(delay * (1 + random.random() * 0.2))
                delay = min(delay * 2, self.config.reconnect_max_s)
        for text in self.config.trading_pairs:
            try:
                inst = self.symbols.resolve(text)
            except KeyError as exc:
                msg = str(exc.args[0])
                self.pair_errors[text] = msg
                self.last_error = msg
                log.error("%s: %s", self.name, msg)
                continue
            if inst.symbol in self.books:
                continue
            self.books[inst.symbol] = self.make_book(inst)

    def make_book(self, inst: Instrument) -> SymbolBook:
        return SymbolBook(
            self.name,
            inst.symbol,
            inst.pair,
            self.rules,
            depth=self.depth,
            max_levels=self.config.max_book_levels,
            listener=self.listener,
            request_resync=self.request_resync,
            on_event=self.on_event,
        )

    def groups(self) -> list[list[str]]:
        syms = list(self.books)
        n = self.max_symbols_per_connection
        return [syms[i : i + n] for i in range(0, len(syms), n)] or []

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled: set up, then one supervised loop per connection."""
        try:
            await self.setup()
            task_status.started()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._watchdog)
                for index, group in enumerate(self.groups()):
                    for sym in group:
                        self.symbol_conn[sym] = index
                    tg.start_soon(self._connection_loop, index, group)
        finally:
            self._tg = None
            if self._own_http:
                with anyio.CancelScope(shield=True):
                    await self.http.aclose()

    async def _connection_loop(self, index: int, symbols: list[str]) -> None:
        delay = self.config.reconnect_min_s
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            started = self.clock.monotonic()
            try:
                await self._session(index, symbols)
                error: AggregatorError = WebSocketError("connection closed by the exchange", exchange=self.name)
            except (ConnectionClosed, InvalidHandshake, InvalidURI, PayloadTooBig) as exc:
                error = WebSocketError(_describe(exc), close_code=_close_code(exc), exchange=self.name)
                error.__cause__ = exc
            except OSError as exc:
                error = NetworkError(_describe(exc), exchange=self.name)
                error.__cause__ = exc
            except AggregatorError as exc:
                error = exc
            finally:
                self.connections.pop(index, None)
                self.connected = bool(self.connections)
            reason = error.message
            self.last_error = reason
            self.errors += 1
            kind = "websocket" if isinstance(error, WebSocketError) else "timeout" if isinstance(error, TimeoutError) else "network"
            self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
            for sym in symbols:
                book = self.books[sym]
                if book.state is not BookState.FAILED:
                    book.state = BookState.RESYNCING
                    book.error = reason
                    book.book.clear()
                    if self.listener is not None:
                        self.listener.book_state_changed(book)
            if self.clock.monotonic() - started >= self.config.stable_after_s:
                delay = self.config.reconnect_min_s
            wait = delay * (0.5 + random.random())
            log.warning("%s[%d]: %s; reconnecting in %.2fs", self.name, index, reason, wait)
            await self.clock.sleep(wait)
            delay = min(delay * 2, self.config.reconnect_max_s)

    async def _session(self, index: int, symbols: list[str]) -> None:
        url = self.connection_url(symbols)
        opener = self.ws_connect(
            url,
            max_size=self.max_frame_bytes,
            open_timeout=self.config.connect_timeout_s,
            ping_interval=self.ws_ping_interval_s,
            ping_timeout=self.ws_ping_interval_s,
            compression=None,
            max_queue=4096,
        )
        try:
            ws = await opener.__aenter__()
        except builtins.TimeoutError as exc:  # websockets' open_timeout
            raise TimeoutError(f"connecting to {url} timed out", exchange=self.name) from exc
        error: Exception | None = None
        try:
            conn = Connection(self, ws, symbols, index)
            self.connections[index] = conn
            self.connected = True
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn._writer)
                tg.start_soon(self.keepalive, conn)
                try:
                    await self.on_open(conn)
                    self.subscribe(conn, symbols)
                    await self._read(conn)
                except Exception as exc:  # surfaced below, outside the task group (no ExceptionGroup)
                    error = exc
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await opener.__aexit__(None, None, None)
        if error is not None:
            raise error

    def _handle(self, conn: Connection, frame: str | bytes, now: int) -> None:
        """One frame to the plugin's parser (the hot path); its errors are reported, not raised."""
        conn.last_frame_ns = now
        self.messages += 1
        try:
            self.on_frame(conn, frame, now)
        except AggregatorError as exc:
            self.report_error(str(exc), kind="parsing" if isinstance(exc, ParsingError) else "exchange")
            return
        except Exception as exc:  # whatever a frame does to the parser, the connection goes on
            self.parse_error(frame, exc, conn)
            return
        conn.last_parsed_ns = now

    async def _read(self, conn: Connection) -> None:
        """The hot loop: every frame goes straight to the plugin's parser.

        With the default opener, every complete data frame a read of the socket delivers is
        parsed out of the read and handled right there (:class:`_DirectFrames`), all of them
        before anything else runs, instead of websockets' frame parser, one task wake-up,
        ``recv()`` and message assembly per frame. Everything else (fragmented messages, frames
        queued before this loop started) still comes through ``recv()`` below, in order; pings,
        pongs, keepalive, size limits, invalid text and the close handshake stay websockets' own,
        unchanged.
        """
        clock = self.clock.monotonic_ns
        handle = self._handle
        direct = _direct_frames(self, conn)
        try:
            async for frame in conn.ws:
                if direct is not None and direct.failure is not None:
                    raise direct.failure
                handle(conn, frame, clock())
        finally:
            if direct is not None:
                direct.ws.uninstall()
        if direct is not None and direct.failure is not None:
            raise direct.failure

    def subscribe(self, conn: Connection, symbols: list[str]) -> None:
        """Start syncing these symbols on this connection (books reset, frames queued)."""
        for sym in symbols:
            book = self.books[sym]
            if book.state is not BookState.FAILED:
                book.begin_sync()
        live = [s for s in symbols if self.books[s].state is not BookState.FAILED]
        for frame in self.subscribe_frames(live) if live else []:
            conn.send_soon(frame)
        if self.rules.snapshot is SnapshotSource.REST:
            for sym in live:
                self.schedule_snapshot(sym)

    async def _watchdog(self) -> None:
        """Mark books STALE after ``stale_after_s`` without data; reconnect a silent connection.

        A book counts as current while frames keep arriving on its connection (its own updates,
        other symbols', or the exchange's heartbeats) and its parser takes them: a quiet market
        is not a stale feed, but a feed whose every frame fails to parse is (its books would
        otherwise stay LIVE, frozen, on exchanges without sequence numbers).
        """
        limit_ns = int(self.config.stale_after_s * 1e9)
        while True:
            await self.clock.sleep(min(1.0, self.config.stale_after_s / 4, self.config.resync_deadline_s / 4))
            now = self.clock.monotonic_ns()
            for conn in self.connections.values():
                books = self.books
                for sym in conn.symbols:
                    book = books.get(sym)
                    if book is not None and book.state is BookState.LIVE:
                        book.alive_ns = conn.last_parsed_ns
            for book in self.books.values():
                if book.state is BookState.LIVE and book.last_update_ns and now - book.seen_ns() > limit_ns:
                    book.mark_stale(f"no data for {self.config.stale_after_s:g}s")
            await self._heal_books()
            for conn in list(self.connections.values()):
                if now - conn.last_frame_ns > 2 * limit_ns and not conn.closed:
                    self.last_error = f"connection silent for {2 * self.config.stale_after_s:g}s; reconnecting"
                    log.warning("%s[%d]: %s", self.name, conn.index, self.last_error)
                    with anyio.move_on_after(2):
                        await conn.close("stale feed")

    # -- resync ---------------------------------------------------------------------------------------

    def request_resync(self, symbol: str, reason: str) -> None:
        """Called by a book that must be rebuilt: this symbol only, the connection goes on.

        The first request since the book was last LIVE acts at once; repeated ones back off
        (``reconnect_min_s`` doubling up to ``reconnect_max_s``), so a symbol that keeps failing
        never floods the exchange."""
        log.info("%s: resync %s: %s", self.name, symbol, reason)
        heal = self._heal_state(symbol)
        heal.requests += 1
        if heal.requests <= 1:
            self._reask(symbol)
            return
        if heal.retry_scheduled:
            return
        delay = min(self.config.reconnect_min_s * 2 ** (heal.requests - 2), self.config.reconnect_max_s)
        delay *= 0.75 + random.random() * 0.5
        if self._tg is None:
            return
        heal.retry_scheduled = True
        heal.action = "ask again"
        heal.next_at = max(heal.next_at, self.clock.monotonic() + delay)
        self._tg.start_soon(self._reask_later, symbol, delay)

    async def _reask_later(self, symbol: str, delay: float) -> None:
        try:
            await self.clock.sleep(delay)
        finally:
            self._heal_state(symbol).retry_scheduled = False
        book = self.books[symbol]
        if not book.live and not book.failed:
            self._reask(symbol)

    def _reask(self, symbol: str) -> None:
        """Ask the exchange for this book again: a REST snapshot, or an unsubscribe/subscribe (also
        for a REST-snapshot exchange after an exchange error about the subscription)."""
        heal = self._heal_state(symbol)
        resubscribe, heal.resubscribe = heal.resubscribe, False
        if self.rules.snapshot is SnapshotSource.REST:
            if resubscribe:
                self.resubscribe(symbol)
            self.schedule_snapshot(symbol)
        else:
            self.resubscribe(symbol)

    def _heal_state(self, symbol: str) -> _Heal:
        heal = self._heal.get(symbol)
        if heal is None:
            heal = self._heal[symbol] = _Heal()
        return heal

    def healing(self, symbol: str) -> tuple[str | None, float | None]:
        """For health: what a book that is not LIVE waits for, and in how many seconds the engine
        acts next (asks again, reconnects, retries a FAILED book); ``(None, None)`` when LIVE."""
        heal = self._heal.get(symbol)
        book = self.books.get(symbol)
        if heal is None or book is None or book.live or heal.waiting is None:
            return None, None
        text = heal.waiting + (f"; next: {heal.action}" if heal.action else "")
        return text, max(0.0, round(heal.next_at - self.clock.monotonic(), 3)) if heal.action else None

    def _waiting_for(self, book: SymbolBook) -> str:
        if book.failed:
            return f"nothing: FAILED ({book.error})"
        if book.state is BookState.STALE:
            return "data: the book went quiet"
        if self.rules.snapshot is SnapshotSource.REST:
            if book.symbol in self._pending_snapshots:
                return "its REST snapshot"
            if book.awaiting_first:
                return f"the first delta after snapshot {book.snapshot_seq}"
            return "a REST snapshot to be asked for"
        return "a snapshot after (re)subscribing"

    async def _heal_books(self) -> None:
        """Every book heals by itself: a book not LIVE for ``resync_deadline_s`` is asked for again
        (snapshot or resubscribe), then its connection is reconnected, alternately, with the
        interval doubling up to ``reconnect_max_s``, forever. A FAILED book is retried every
        ``failed_retry_s``. Called by the watchdog about once a second."""
        cfg = self.config
        now = self.clock.monotonic()
        to_close: dict[int, str] = {}
        for sym, book in self.books.items():
            heal = self._heal_state(sym)
            if book.state is BookState.LIVE:
                if heal.since is not None or heal.requests:
                    heal.reset()
                continue
            conn = self.connections.get(self.symbol_conn.get(sym, -1))
            if heal.since is None:
                heal.since = now
                heal.next_at = max(heal.next_at, now + cfg.resync_deadline_s)
            if book.failed:
                if heal.failed_at is None:
                    heal.failed_at = now
                    heal.next_at = now + cfg.failed_retry_s
                heal.waiting = self._waiting_for(book)
                heal.action = "retry the FAILED book"
                if now >= heal.next_at and conn is not None and not conn.closed:
                    log.info("%s: retrying FAILED %s (%s)", self.name, sym, book.error)
                    heal.failed_at = None
                    heal.requests = 0
                    heal.resubscribe = True
                    book.revive(f"retrying after: {book.error}")
                    self._reask(sym)
                continue
            heal.failed_at = None
            if conn is None or conn.closed:
                heal.waiting = "its connection (reconnecting)"
                heal.action = None
                heal.next_at = max(heal.next_at, now + cfg.resync_deadline_s)
                continue
            heal.waiting = self._waiting_for(book)
            if self.rules.snapshot is SnapshotSource.REST and sym in self._pending_snapshots:
                # the snapshot task retries by itself with backoff; it may be waiting for the budget
                heal.action = None
                heal.next_at = max(heal.next_at, now + cfg.resync_deadline_s)
                continue
            heal.action = "reconnect its connection" if heal.step % 2 else "ask again"
            if now < heal.next_at or heal.retry_scheduled:
                continue
            heal.step += 1
            waited = now - heal.since
            interval = min(cfg.resync_deadline_s * 2 ** ((heal.step - 1) // 2), max(cfg.reconnect_max_s, cfg.resync_deadline_s))
            heal.next_at = now + interval
            reason = f"not LIVE for {waited:.1f}s (waiting for {heal.waiting})"
            if heal.step % 2:
                log.warning("%s: %s %s; asking again", self.name, sym, reason)
                self.error_counts["deadline"] = self.error_counts.get("deadline", 0) + 1
                heal.requests = 0  # the deadline's own re-ask is not delayed by the request backoff
                book.resync(f"{reason}; asked again", "deadline")
            else:
                to_close.setdefault(conn.index, f"{sym} {reason}; reconnecting")
        for index, why in to_close.items():
            conn = self.connections.get(index)
            if conn is None or conn.closed:
                continue
            self.last_error = why
            self.error_counts["deadline"] = self.error_counts.get("deadline", 0) + 1
            log.warning("%s[%d]: %s", self.name, index, why)
            with anyio.move_on_after(2):
                await conn.close("book deadline")

    def resubscribe(self, symbol: str) -> None:
        conn = self.connections.get(self.symbol_conn.get(symbol, -1))
        if conn is None:
            return  # the reconnect will resubscribe it
        for frame in self.unsubscribe_frames([symbol]):
            conn.send_soon(frame)
        for frame in self.subscribe_frames([symbol]):
            conn.send_soon(frame)

    def schedule_snapshot(self, symbol: str) -> None:
        if symbol in self._pending_snapshots or self._tg is None:
            return
        self._pending_snapshots.add(symbol)
        # stagger snapshot requests so a reconnect of many symbols does not burst the REST budget
        now = self.clock.monotonic()
        self._snapshot_slot = max(self._snapshot_slot, now)
        delay = self._snapshot_slot - now
        self._snapshot_slot += 0.05
        self._tg.start_soon(self._snapshot_task, symbol, delay)

    async def _snapshot_task(self, symbol: str, delay: float) -> None:
        book = self.books[symbol]
        backoff = 0.5
        try:
            if delay > 0:
                await self.clock.sleep(delay)
            while True:
                if book.failed:
                    return
                try:
                    # no overall deadline here: waiting for the REST budget is not a failure (a
                    # reconnect of many symbols queues their snapshots); each HTTP request has its own
                    snap = await self.fetch_snapshot(symbol)
                except ExchangeError as exc:
                    if looks_permanent(exc.message):
                        if not book.failed:  # keep the first reason a book failed for
                            self.report_error(f"snapshot: {exc.message}", symbol=symbol, code=exc.code, permanent=True)
                        return
                    await self._snapshot_retry(book, exc, "exchange", backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                    continue
                except Exception as exc:
                    # a network error, or a body that does not parse (a KeyError in the plugin's
                    # parser is a snapshot error too): this symbol only, retried with backoff
                    kind = "network" if isinstance(exc, (NetworkError, TimeoutError, builtins.TimeoutError)) else "parsing"
                    if not isinstance(exc, (AggregatorError, builtins.TimeoutError)):
                        exc = ParsingError(f"snapshot body of {symbol} did not parse: {_describe(exc)}", exchange=self.name)
                    await self._snapshot_retry(book, exc, kind, backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                    continue
                break
            self._pending_snapshots.discard(symbol)
            if self.symbol_conn.get(symbol) not in self.connections:
                return  # disconnected meanwhile; the reconnect fetches a new one
            try:
                book.snapshot_fetched(snap, self.clock.monotonic_ns())
            except Exception as exc:  # e.g. a plugin checksum over garbage: resync, never crash
                self.errors += 1
                self.error_counts["snapshot_parsing"] = self.error_counts.get("snapshot_parsing", 0) + 1
                book.resync(f"snapshot rejected: {_describe(exc)}", "invalid")
        finally:
            self._pending_snapshots.discard(symbol)

    async def _snapshot_retry(self, book: SymbolBook, exc: BaseException, kind: str, backoff: float) -> None:
        """A snapshot of this symbol failed (transient): count it, say so in health, back off."""
        self.errors += 1
        self.error_counts[f"snapshot_{kind}"] = self.error_counts.get(f"snapshot_{kind}", 0) + 1
        book.error = f"snapshot failed: {_describe(exc)}; retrying in about {backoff:.1f}s"
        self.last_error = f"{book.symbol}: {book.error}"
        log.warning("%s: %s", self.name, self.last_error)
        await self.clock.sleep(backoff * (1 + random.random()))

    # -- reading ---------------------------------------------------------------------------------------

    def iter_books(self) -> Iterable[SymbolBook]:
        return self.books.values()


_PERMANENT = re.compile(
    r"unknown|not found|n[o']t exist|not supported|unsupported|not listed|delisted|not trading|no such"
    r"|invalid (?:symbol|instrument|pair|product|market|stream|channel|topic|currency)",
    re.IGNORECASE,
)


def looks_permanent(message: str) -> bool:
    """Whether an exchange's error says the symbol can never work (unknown, invalid, not found,
    not supported, delisted): such a book is FAILED; anything else is retried with backoff."""
    return _PERMANENT.search(message) is not None


try:  # anyio finds the running library through sniffio when it is installed
    from sniffio import current_async_library_cvar as _SNIFFIO
except ImportError:  # pragma: no cover - anyio then asks asyncio for the running loop, which works here
    _SNIFFIO = None  # type: ignore[assignment]


class _DirectFrames:
    """The receive path of one connection while its reader runs (:meth:`Connector._read`).

    Each read of the socket comes to :meth:`receive`, which splits it into frames. A complete
    text or binary frame that websockets would take as it is (final, no reserved bits, not
    masked, within the size limit), with no earlier frame waiting in ``recv()``'s queue (so
    order is kept), is decoded here and handed straight to the connector: all the frames of a
    read before anything else runs. Any other frame (ping, pong, close, a fragment, text that
    is not UTF-8, anything malformed) is handed whole to websockets' own ``data_received``,
    which does with it what it always did: keepalive, errors and the close handshake are
    websockets', and its parser always waits at a frame boundary. A header over the size limit,
    and all that follows it, goes to websockets as it comes (it fails the connection on the
    header, as before), as does everything once the connection is no longer open
    (:func:`_parser_idle`). The complete data frames websockets parses still skip the queue
    while it is empty (:meth:`process_event`). A frame cut by the end of a read waits here for
    the rest; websockets gets it if the stream ends first.
    """

    __slots__ = ("connector", "conn", "ws", "protocol", "queue", "failure", "frames", "parsed", "clock", "limit", "buffer", "synced")

    def __init__(self, connector: "Connector", conn: Connection, ws: "_ClientConnection", queue: deque[Any]) -> None:
        self.connector = connector
        self.conn = conn
        self.ws = ws
        self.protocol = ws.protocol
        self.queue = queue
        self.failure: BaseException | None = None
        self.frames = 0  # frames handled here, either way (the rest came through recv())
        self.parsed = 0  # of which frames this path parsed itself
        self.clock = connector.clock.monotonic_ns
        limits = [n for n in (self.protocol.max_message_size, self.protocol.max_fragment_size) if n is not None]
        self.limit = min(limits) if limits else math.inf
        self.buffer = bytearray()  # the start of a frame the next read completes
        self.synced = _parser_idle(self.protocol)

    def receive(self, data: bytes) -> None:
        if not self.synced:
            self._to_websockets(data)
            return
        buffer = self.buffer
        view: bytes | bytearray = data
        if buffer:
            buffer += data
            view = buffer
        end = len(view)
        pos = 0
        rest = False  # whether view[pos:] goes to websockets as it is
        protocol = self.protocol
        queue = self.queue
        handle = self.connector._handle
        conn = self.conn
        now = self.clock()  # the frames of one read arrived together
        # a protocol callback runs outside any task: under a bare asyncio.run() (no anyio.run)
        # anyio would find no event loop for what the handler starts (Connector.spawn)
        token = _SNIFFIO.set("asyncio") if _SNIFFIO is not None else None
        try:
            while end - pos >= 2:
                head = view[pos]
                second = view[pos + 1]
                length = second & 0x7F
                start = pos + 2
                if length == 126:
                    if end - pos < 4:
                        break
                    length = (view[pos + 2] << 8) | view[pos + 3]
                    start += 2
                elif length == 127:
                    if end - pos < 10:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                    start += 8
                if length > self.limit:  # websockets fails the connection on this header
                    rest = True
                    break
                if second > 0x7F:  # a masking key (websockets refuses masked frames from a server)
                    start += 4
                stop = start + length
                if stop > end:
                    break
                if (head == 0x81 or head == 0x82) and second < 0x80 and not queue and protocol.current_size is None and self.failure is None:
                    frame: str | bytes | None
                    if head == 0x81:
                        try:
                            frame = view[start:stop].decode()
                        except UnicodeDecodeError:  # websockets closes with 1007, as it always did
                            frame = None
                    else:
                        frame = bytes(view[start:stop])
                    if frame is not None:
                        try:
                            handle(conn, frame, now)
                        except Exception as exc:
                            # what recv()'s loop would have raised: the frame goes to recv()'s
                            # queue, which wakes the reader, and the reader raises it
                            self.failure = exc
                        else:
                            self.frames += 1
                            self.parsed += 1
                            pos = stop
                            continue
                # anything else, whole, to websockets, which does what it always did with it
                self._to_websockets(bytes(view[pos:stop]))
                pos = stop
                if not self.synced:  # the connection is closing or failed
                    rest = True
                    break
        finally:
            if token is not None:
                _SNIFFIO.reset(token)
        chunk = bytes(view[pos:]) if rest and pos < end else None
        if view is buffer:
            del buffer[: end if rest else pos]
        elif pos < end and not rest:
            buffer += view[pos:]
        if chunk is not None:
            self.synced = False
            ClientConnection.data_received(self.ws, chunk)

    def _to_websockets(self, data: bytes) -> None:
        ClientConnection.data_received(self.ws, data)
        self.synced = _parser_idle(self.protocol)

    def flush(self) -> None:
        """Hand a frame cut short to websockets (the stream ends, or this path does)."""
        self.synced = False
        if self.buffer and not self.protocol.reader.eof:
            data = bytes(self.buffer)
            self.buffer.clear()
            self._to_websockets(data)

    def process_event(self, event: Any) -> None:
        """A frame websockets parsed: a complete data frame skips ``recv()`` while its queue is
        empty; anything else takes websockets' path."""
        opcode = event.opcode
        if (opcode is _TEXT or opcode is _BINARY) and event.fin and not self.queue and self.failure is None:
            data = event.data
            if opcode is _TEXT:
                try:
                    frame: str | bytes = data.decode()
                except UnicodeDecodeError:  # recv() raises it, as it always did
                    ClientConnection.process_event(self.ws, event)
                    return
            else:
                frame = bytes(data)
            self.frames += 1
            token = _SNIFFIO.set("asyncio") if _SNIFFIO is not None else None
            try:
                self.connector._handle(self.conn, frame, self.clock())
            except Exception as exc:
                self.failure = exc
                ClientConnection.process_event(self.ws, event)
            finally:
                if token is not None:
                    _SNIFFIO.reset(token)
            return
        ClientConnection.process_event(self.ws, event)


def _parser_idle(protocol: Any) -> bool:
    """Whether websockets' parser has used all it was fed and waits for the first byte of a
    frame, on an open connection. Anything unexpected (another websockets version's
    internals) answers False: websockets then parses every read, as without this path."""
    try:
        if protocol.state is not _OPEN or protocol.parser_exc is not None or protocol.reader.buffer:
            return False
        gen = protocol.parser
        while gen.gi_yieldfrom is not None:
            gen = gen.gi_yieldfrom
        return bool(gen.gi_code.co_name == "at_eof")
    except AttributeError:  # pragma: no cover - a websockets without these internals
        return False


class _ClientConnection(ClientConnection):
    """websockets' asyncio client connection, whose reads go to :class:`_DirectFrames` while a
    reader has one installed (``direct``), and to websockets alone otherwise."""

    direct: _DirectFrames | None = None

    def data_received(self, data: bytes) -> None:
        direct = self.direct
        if direct is None:
            super().data_received(data)
        else:
            direct.receive(data)

    def process_event(self, event: Any) -> None:
        direct = self.direct
        if direct is None:
            super().process_event(event)
        else:
            direct.process_event(event)

    def eof_received(self) -> None:
        if self.direct is not None:
            self.direct.flush()
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.direct is not None:
            self.direct.flush()
        super().connection_lost(exc)

    def install(self, connector: "Connector", conn: Connection) -> _DirectFrames | None:
        queue = getattr(getattr(getattr(self, "recv_messages", None), "frames", None), "queue", None)
        if self.direct is not None or not isinstance(queue, deque):
            return None
        self.direct = _DirectFrames(connector, conn, self, queue)
        return self.direct

    def uninstall(self) -> None:
        direct, self.direct = self.direct, None
        if direct is not None:
            direct.flush()


def _direct_frames(connector: "Connector", conn: Connection) -> _DirectFrames | None:
    """The direct receive path for a connection opened by :func:`ws_connect_default`, else None
    (any other WebSocket object injected through ``ws_connect`` is read with ``recv()`` alone)."""
    ws = conn.ws
    return ws.install(connector, conn) if isinstance(ws, _ClientConnection) else None


def ws_connect_default(url: str, **kwargs: Any) -> AbstractAsyncContextManager[ClientConnection]:
    kwargs.setdefault("create_connection", _ClientConnection)
    return ws_connect(url, **kwargs)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _close_code(exc: BaseException) -> int | None:
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        return exc.rcvd.code
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        if rcvd is not None:
            return f"WebSocket closed by the exchange: code {rcvd.code} {rcvd.reason!r}".strip()
        return "WebSocket connection lost"
    if isinstance(exc, PayloadTooBig):
        return f"WebSocket frame too big: {exc}"
    if isinstance(exc, InvalidHandshake):
        return f"WebSocket handshake failed: {exc}"
    if isinstance(exc, AggregatorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
