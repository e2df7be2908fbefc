"""The fake-exchange server base: WebSocket and REST on one 127.0.0.1 port, fault injection.

An exchange plugin's ``fake.py`` subclasses :class:`FakeExchange` and implements its
protocol; the base class runs the server (websockets' own server, which answers plain
HTTP requests for the REST routes too), steps one :class:`~aggcore.testing.market.GenBook`
per symbol, and applies faults on demand::

    async with FakeBinance(symbols=["BTCUSDT"], seed=1) as fake:
        config = {"ws_url": fake.ws_url, "rest_url": fake.rest_url, ...}
        fake.inject(Fault.GAP, "BTCUSDT")

What a subclass implements (all synchronous, return frames as ``str``):

==================================  ======================================================
``instruments()``                   the instrument list: ``{native: InstrumentSpec}``
``rest(path, query)``               REST routes -> ``(status, json-able body)`` or
                                    ``(status, body, headers)`` to add response headers
                                    (e.g. a used-weight header); a ``str`` body goes as is
``accept_websocket(path)``          ``None`` to accept a WebSocket upgrade to ``path`` (the
                                    default), or ``(status, body)`` to refuse it with that
                                    HTTP response
``on_message(session, text)``       a client frame (subscribe, ping, ...); use
                                    ``session.send``/``self.subscribe``
``snapshot_frames(session, sym)``   in-band snapshot frames (or ``[]`` for REST-snapshot
                                    exchanges)
``delta_frames(session, sym, chs)`` frames for one step of changes
``error_frame(session, sym, msg)``  the exchange's error reply
``corrupt(frame)``                  the frame with a wrong checksum (checksum exchanges)
``heartbeat_frames(session)``       periodic server heartbeats, if any
==================================  ======================================================

Helpers a subclass may call: ``subscribe``/``unsubscribe``, ``sessions_for(symbol)`` (the
sessions subscribed to a symbol, all for ``None``), ``deliver(session, sym, frames)`` (delta
frames through the pending faults), ``take_fault``, ``snapshot_levels``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import http
import logging
import random
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import mutate
from .market import Change, GenBook, Market

__all__ = ["Fault", "FakeExchange", "InstrumentSpec", "Session", "iso_now"]

log = logging.getLogger("aggcore.testing")


_SECOND: tuple[int, str] = (-1, "")


def iso_now() -> str:
    """The time now in UTC as ISO 8601 with microseconds, ``2026-12-02T08:06:26.123456Z`` (how
    Coinbase and Kraken stamp their messages). The date and time of day are formatted once a
    second: a fake stamps every frame it sends."""
    global _SECOND
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    if seconds != _SECOND[0]:
        _SECOND = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_SECOND[1]}.{micros:06d}Z"


class Fault(str, enum.Enum):
    """Faults a fake exchange injects on demand (``FakeExchange.inject``)."""

    GAP = "gap"  # drop one delta frame: the client sees a sequence gap
    REORDER = "reorder"  # swap the next two delta frames
    DUPLICATE = "duplicate"  # send the next delta frame twice
    BAD_CHECKSUM = "bad_checksum"  # corrupt the checksum of the next delta
    DISCONNECT = "disconnect"  # close the connection
    STALL = "stall"  # stop sending anything for ``seconds``
    MALFORMED = "malformed"  # send a frame that is not JSON
    ERROR_REPLY = "error_reply"  # send the exchange's error frame for a symbol
    REST_429 = "rest_429"  # the next REST call gets 429 with Retry-After
    REST_418 = "rest_418"  # the next REST call gets 418 with Retry-After
    SNAPSHOT = "snapshot"  # a fresh in-band snapshot mid-stream
    OVERSIZE_SNAPSHOT = "oversize_snapshot"  # the next snapshot carries thousands of extra levels
    # adversarial faults (issue 16): generic, applied to the frames and bodies each fake produces
    IMPOSSIBLE_LEVEL = "impossible_level"  # the next delta with levels also carries one no book may hold
    LOST_SNAPSHOT = "lost_snapshot"  # the next in-band snapshot of a (re)subscription is never sent
    ABSURD_SNAPSHOT = "absurd_snapshot"  # the next REST snapshot's sequence is far in the future
    MALFORMED_REST = "malformed_rest"  # the next REST body with levels comes without them (HTTP 200)
    FAR_LEVELS = "far_levels"  # the next delta with levels also lists ``levels`` far-away levels per side
    FUZZ = "fuzz"  # each of the next ``count`` deltas is preceded by a seeded mutated copy of it


@dataclass
class InstrumentSpec:
    """One instrument of a fake exchange (what its instrument list will say)."""

    base: str
    quote: str
    mid: float = 30000.0
    tick: float = 0.01
    price_precision: int = 2
    qty_precision: int = 6
    kind: str = "spot"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    fault: Fault
    symbol: str | None
    params: dict[str, Any]


class Session:
    """One client connection to the fake: its subscriptions and its per-connection state."""

    def __init__(self, fake: "FakeExchange", ws: ServerConnection) -> None:
        self.fake = fake
        self.ws = ws
        self.path = ws.request.path if ws.request is not None else "/"
        self.subscribed: dict[str, dict[str, Any]] = {}  # symbol -> per-subscription state
        self.state: dict[str, Any] = {}
        self.held: dict[str, str] = {}  # symbol -> a delta held back for REORDER
        self.received: list[str] = []  # every client frame, for assertions
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue()

    async def send(self, frame: str | bytes) -> None:
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            pass

    def send_soon(self, frame: str | bytes) -> None:
        """Queue a frame; frames go out in order from the session's writer. While the exchange is
        stalled (``Fault.STALL``) nothing goes out: replies wait until the stall ends."""
        self.queue.put_nowait(frame)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.queue.get()
            stalled = self.fake.stalled_until - loop.time()
            if stalled > 0:
                await asyncio.sleep(stalled)
            await self.send(frame)


class FakeExchange:
    """Base of every plugin's fake exchange server. See the module docstring."""

    name: ClassVar[str] = "fake"
    #: faults this exchange's protocol can express (the conformance suite tries each one)
    #: (the adversarial ones rewrite the fake's own frames and bodies, so every fake supports them)
    supported_faults: ClassVar[frozenset[Fault]] = frozenset(
        {Fault.GAP, Fault.DUPLICATE, Fault.REORDER, Fault.DISCONNECT, Fault.STALL, Fault.MALFORMED, Fault.ERROR_REPLY}
        | {
            Fault.IMPOSSIBLE_LEVEL,
            Fault.LOST_SNAPSHOT,
            Fault.ABSURD_SNAPSHOT,
            Fault.MALFORMED_REST,
            Fault.FAR_LEVELS,
            Fault.FUZZ,
        }
    )
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {}
    ws_path: ClassVar[str] = "/ws"
    rest_path: ClassVar[str] = ""
    max_size: ClassVar[int | None] = 1 << 20  # the largest client frame accepted

    def __init__(
        self,
        symbols: Iterable[str] | dict[str, InstrumentSpec] | None = None,
        *,
        seed: int = 0,
        rate_hz: float = 20.0,
        depth: int = 50,
        drift: float = 0.0,
        autostart: bool = True,
        market: Market | None = None,
    ) -> None:
        specs = self.instruments()
        if isinstance(symbols, dict):
            specs = {**specs, **symbols}
            active = list(symbols)
        elif symbols is not None:
            active = list(symbols)
        else:
            active = list(specs)
        self.specs = specs
        self.seed = seed
        self.rate_hz = rate_hz
        self.depth = depth
        self.books: dict[str, GenBook] = {}
        for i, sym in enumerate(active):
            spec = specs[sym]
            if market is not None:  # follow the market's latent price, quote as this venue would
                book = market.book(
                    self.name, spec.base, spec.quote, mid=spec.mid, qty_precision=spec.qty_precision, depth=depth, seed=seed * 1000 + i
                )
                self.books[sym] = book
                specs[sym] = dataclasses.replace(spec, mid=book.mid, tick=book.tick, price_precision=book.pp)
                continue
            self.books[sym] = GenBook(
                mid=spec.mid,
                tick=spec.tick,
                price_precision=spec.price_precision,
                qty_precision=spec.qty_precision,
                depth=depth,
                seed=seed * 1000 + i,
                drift=drift,
            )
        self.sessions: list[Session] = []
        self.faults: deque[_Pending] = deque()
        self.rest_log: list[str] = []
        self.fuzz_log: list[str] = []  # the kind of every fuzzed frame sent (Fault.FUZZ)
        self.running = autostart
        self.stalled_until = 0.0
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        self.rng = random.Random(seed)

    # -- to implement -----------------------------------------------------------------------------------
    def instruments(self) -> dict[str, InstrumentSpec]:
        return dict(self.default_symbols)

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
        """A REST route: ``(status, body)``, or ``(status, body, headers)`` to add response headers."""
        return 404, {"error": f"no route {path}"}

    def accept_websocket(self, path: str) -> tuple[int, Any] | None:
        """Whether to accept a WebSocket upgrade to ``path`` (the request path, query included):
        ``None`` accepts; ``(status, body)`` refuses the handshake with that HTTP response."""
        return None

    def on_message(self, session: Session, text: str) -> None:
        raise NotImplementedError

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        return []

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        raise NotImplementedError

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        return orjson.dumps({"error": message, "symbol": symbol}).decode()

    def corrupt(self, frame: str) -> str:
        return frame

    def heartbeat_frames(self, session: Session) -> list[str]:
        return []

    heartbeat_interval_s: float | None = None  # a class default; an instance may set its own

    # -- a simulated market: any pair a config asks for -------------------------------------------------
    @classmethod
    def simulated_instrument(cls, text: str) -> tuple[str, InstrumentSpec]:
        """The instrument this exchange would list for what a user wrote (``SOL/USDT``, the
        exchange's own ``SOLUSDT``, a derivative ``BTC/USDT:USDT``), shaped like the fake's own
        instruments of that kind (``default_symbols`` are the templates): ``(key, spec)``.

        ``aggcore run --simulate`` serves every configured pair this way. Raises ``LookupError``
        saying why the simulator cannot (an asset it has no price for, a shape it does not know).
        """
        from .market import REFERENCE_USD

        templates = dict(cls.default_symbols)
        text = text.strip()
        for key, spec in templates.items():  # one of the fake's own instruments
            if key == text or key.upper() == text.upper():
                return key, spec
        if "/" in text:
            base, _, rest = text.partition("/")
            quote, _, settle = rest.partition(":")
            kinds = [k for k in dict.fromkeys(s.kind for s in templates.values()) if (k == "spot") != bool(settle)]
            if not kinds:
                what = "derivatives" if settle else "spot pairs"
                raise LookupError(f"the simulated {cls.name} lists no {what}")
            key_spec = None
            for key, spec in templates.items():
                if spec.kind == kinds[0]:
                    key_spec = (key, spec)
                    break
            assert key_spec is not None
            template_key, template = key_spec
            pattern = _symbol_pattern(template_key, template)
            if pattern is None:
                raise LookupError(f"the simulated {cls.name} cannot name {text!r}")
            base, quote = base.strip().upper(), quote.strip().upper()
        else:
            for template_key, template in templates.items():
                pattern = _symbol_pattern(template_key, template)
                if pattern is None:
                    continue
                match = _pattern_regex(pattern).fullmatch(text)
                if match is not None:
                    base, quote = match["b"].upper(), match["q"].upper()
                    break
            else:
                raise LookupError(f"the simulated {cls.name} does not recognise the symbol {text!r}")
        for asset in (base, quote):
            if _normal(asset) not in REFERENCE_USD:
                known = ", ".join(sorted(k for k in REFERENCE_USD if k not in _FIAT))
                raise LookupError(f"the simulator has no market price for {asset} (it simulates {known})")
        at = template_key.upper().find(template.base.upper())
        lower = template_key[at : at + len(template.base)].islower()  # bitstamp's btcusd
        key = pattern.format(b=base.lower() if lower else base, q=quote.lower() if lower else quote)
        extra = dict(template.extra)
        if "settle" in extra:
            extra["settle"] = quote
        return key, dataclasses.replace(template, base=base, quote=quote, extra=extra)

    # -- urls -------------------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.rest_path}"

    def connector_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``exchanges.<name>`` section that points the plugin's connector at this fake."""
        config: dict[str, Any] = {"ws_url": self.ws_url, "rest_url": self.rest_url, "trading_pairs": list(self.books)}
        config.update(overrides)
        return config

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> "FakeExchange":
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            max_size=self.max_size,
            compression=None,
            ping_interval=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except (asyncio.CancelledError, Exception):
                pass
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> "FakeExchange":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- control -------------------------------------------------------------------------------------------
    def inject(self, fault: Fault | str, symbol: str | None = None, **params: Any) -> None:
        """Queue a fault; it applies at the next opportunity (next delta of ``symbol``, next REST call...)."""
        fault = Fault(fault)
        if fault is Fault.DISCONNECT:
            for s in self.sessions_for(symbol):
                asyncio.get_running_loop().create_task(s.ws.close(1011, "fault injected"))
            return
        if fault is Fault.STALL:
            self.stalled_until = asyncio.get_running_loop().time() + float(params.get("seconds", 5))
            return
        if fault is Fault.MALFORMED:
            for s in self.sessions_for(symbol):
                s.send_soon('{"this is": not json')
            return
        if fault is Fault.ERROR_REPLY:
            for s in self.sessions_for(symbol):
                s.send_soon(self.error_frame(s, symbol, params.get("message", "fault injected")))
            return
        if fault is Fault.SNAPSHOT:
            for s in self.sessions_for(symbol):
                assert symbol is not None
                for frame in self.snapshot_frames(s, symbol):
                    s.send_soon(frame)
            return
        self.faults.append(_Pending(fault, symbol, params))

    def pause(self) -> None:
        """Stop the order flow (books freeze; heartbeats go on)."""
        self.running = False

    def resume(self) -> None:
        self.running = True

    def step(self, n: int = 1) -> None:
        """Advance every book ``n`` steps now and send the deltas (also while paused)."""
        for _ in range(n):
            self._step_all()

    def subscribe(self, session: Session, symbol: str, **state: Any) -> None:
        """Record a subscription and send the in-band snapshot, if the exchange has one."""
        session.subscribed[symbol] = dict(state)
        frames = self.snapshot_frames(session, symbol)
        if frames and self.take_fault(Fault.LOST_SNAPSHOT, symbol) is not None:
            return  # subscribed, but the snapshot never comes: deltas follow alone
        for frame in frames:
            session.send_soon(frame)

    def unsubscribe(self, session: Session, symbol: str) -> None:
        session.subscribed.pop(symbol, None)
        session.held.pop(symbol, None)

    def take_fault(self, kind: Fault, symbol: str | None = None) -> _Pending | None:
        pending = self.peek_fault(kind, symbol)
        if pending is not None:
            self.faults.remove(pending)
        return pending

    def peek_fault(self, kind: Fault, symbol: str | None = None) -> _Pending | None:
        """The first pending fault of this kind for ``symbol``, left pending."""
        for pending in self.faults:
            if pending.fault is kind and (pending.symbol is None or symbol is None or pending.symbol == symbol):
                return pending
        return None

    # -- adversarial rewrites (see aggcore.testing.mutate); a fake whose messages hold their levels
    # in a shape mutate.levels_of does not recognize overrides mutate_levels -------------------------
    def mutate_levels(self, kind: Fault, frame: str, params: dict[str, Any]) -> str | None:
        """``frame`` rewritten for ``Fault.IMPOSSIBLE_LEVEL`` (one more level no book may hold) or
        ``Fault.FAR_LEVELS`` (``levels`` far-away levels more per side); ``None`` when the frame
        carries no levels (the fault then waits for the next frame)."""
        if kind is Fault.IMPOSSIBLE_LEVEL:
            return mutate.impossible_level(frame, int(params.get("which", 0)))
        return mutate.far_levels(frame, int(params.get("levels", 5000)))

    def mutate_rest(self, kind: Fault, body: Any) -> Any | None:
        """A REST body rewritten for ``Fault.MALFORMED_REST`` (its levels removed) or
        ``Fault.ABSURD_SNAPSHOT`` (its sequence numbers far ahead); ``None`` when it has no levels."""
        if kind is Fault.MALFORMED_REST:
            return mutate.strip_levels(body)
        return mutate.absurd_sequence(body, int(self.peek_param(kind, "ahead", 10**9)))

    def peek_param(self, kind: Fault, name: str, default: Any) -> Any:
        pending = self.peek_fault(kind)
        return default if pending is None else pending.params.get(name, default)

    def snapshot_levels(self, symbol: str, depth: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The current book as wire strings for a snapshot, best first; padded with thousands of
        far levels when an ``OVERSIZE_SNAPSHOT`` fault is pending."""
        book = self.books[symbol]
        pending = self.take_fault(Fault.OVERSIZE_SNAPSHOT, symbol)
        if pending is not None:
            return book.deep_snapshot(int(pending.params.get("levels", 20000)))
        return book.top(depth or book.depth)

    def sessions_for(self, symbol: str | None) -> list[Session]:
        """The connected sessions subscribed to ``symbol`` (every session for ``None``)."""
        return [s for s in self.sessions if symbol is None or symbol in s.subscribed]

    # -- server ----------------------------------------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            refusal = self.accept_websocket(request.path)
            return None if refusal is None else self._response(*refusal)
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if self.rest_path and path.startswith(self.rest_path):
            path = path[len(self.rest_path) :] or "/"
        self.rest_log.append(request.path)
        for kind, status in ((Fault.REST_429, 429), (Fault.REST_418, 418)):
            pending = self.take_fault(kind)
            if pending is not None:
                return self._response(status, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": str(pending.params.get("retry_after", 1))})
        headers: dict[str, str] = {}
        try:
            reply = self.rest(path, query)
            status, body = reply[0], reply[1]
            if len(reply) == 3:
                headers = reply[2]
        except Exception as exc:  # a fake's bug shows as a 500 with the error
            log.exception("fake %s REST %s failed", self.name, path)
            status, body = 500, {"error": repr(exc)}
        if status == 200 and not isinstance(body, str):
            for kind in (Fault.MALFORMED_REST, Fault.ABSURD_SNAPSHOT):
                pending = self.peek_fault(kind)
                if pending is None or (pending.symbol is not None and pending.symbol.lower() not in request.path.lower()):
                    continue
                changed = self.mutate_rest(kind, orjson.loads(orjson.dumps(body)))
                if changed is not None:
                    self.faults.remove(pending)
                    body = changed
        return self._response(status, body, headers)

    @staticmethod
    def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        data = body.encode() if isinstance(body, str) else orjson.dumps(body)
        h = Headers()
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(data))
        h["Connection"] = "close"
        for k, v in (headers or {}).items():
            h[k] = v
        return Response(status, http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "Error", h, data)

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(self, ws)
        self.sessions.append(session)
        hb: asyncio.Task[None] | None = None
        writer = asyncio.get_running_loop().create_task(session._writer())
        if self.heartbeat_interval_s:
            hb = asyncio.get_running_loop().create_task(self._heartbeats(session))
        try:
            self.on_connect(session)
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                session.received.append(text)
                try:
                    self.on_message(session, text)
                except Exception:
                    log.exception("fake %s: handling %r failed", self.name, text[:200])
        except ConnectionClosed:
            pass
        finally:
            if hb is not None:
                hb.cancel()
            writer.cancel()
            self.sessions.remove(session)

    def on_connect(self, session: Session) -> None:
        """A client connected (URL-subscribed exchanges subscribe here from ``session.path``)."""

    async def _heartbeats(self, session: Session) -> None:
        assert self.heartbeat_interval_s
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if asyncio.get_running_loop().time() < self.stalled_until:
                continue  # a stalled exchange sends nothing at all
            for frame in self.heartbeat_frames(session):
                session.send_soon(frame)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.05
        while True:
            await asyncio.sleep(interval)
            if not self.running or loop.time() < self.stalled_until:
                continue
            self._step_all()

    def _step_all(self) -> None:
        for symbol, book in self.books.items():
            changes = book.step()
            self.on_step(symbol, changes)
            for session in self.sessions:
                if symbol not in session.subscribed:
                    continue
                self.deliver(session, symbol, self.delta_frames(session, symbol, changes))

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        """Called once per book step before delivery (REST-snapshot fakes keep history here)."""

    def deliver(self, session: Session, symbol: str, frames: list[str]) -> None:
        """Send ``symbol``'s delta frames to ``session`` through the pending faults (GAP,
        BAD_CHECKSUM, DUPLICATE, REORDER) and STALL, as the order flow does; for frames a fake
        sends outside a book step (e.g. idle updates)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self.stalled_until:
            return
        if not self.faults and not session.held:  # the usual case: nothing to inject
            for frame in frames:
                session.send_soon(frame)
            return
        for frame in frames:
            if self.take_fault(Fault.GAP, symbol) is not None:
                continue
            for kind in (Fault.IMPOSSIBLE_LEVEL, Fault.FAR_LEVELS):
                pending = self.peek_fault(kind, symbol)
                if pending is not None:
                    changed = self.mutate_levels(kind, frame, pending.params)
                    if changed is not None:
                        self.faults.remove(pending)
                        frame = changed
            fuzz = self.peek_fault(Fault.FUZZ, symbol)
            if fuzz is not None:
                rng = fuzz.params.setdefault("rng", random.Random(int(fuzz.params.get("seed", 0))))
                kind_name, bad = mutate.fuzz(frame, rng)
                self.fuzz_log.append(kind_name)
                session.send_soon(bad)  # the mutated copy first, then the real frame
                fuzz.params["count"] = int(fuzz.params.get("count", 1)) - 1
                if fuzz.params["count"] <= 0:
                    self.faults.remove(fuzz)
            if self.take_fault(Fault.BAD_CHECKSUM, symbol) is not None:
                frame = self.corrupt(frame)
            if self.take_fault(Fault.DUPLICATE, symbol) is not None:
                session.send_soon(frame)
            if symbol in session.held:
                session.send_soon(frame)
                session.send_soon(session.held.pop(symbol))
                continue
            if self.take_fault(Fault.REORDER, symbol) is not None:
                session.held[symbol] = frame
                continue
            session.send_soon(frame)


_QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "DAI", "BTC", "ETH")
_FIAT = ("USDT", "USDC", "USD", "EUR", "GBP", "DAI")
_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}


def _normal(asset: str) -> str:
    return _ALIASES.get(asset.upper(), asset.upper())


def _symbol_pattern(key: str, spec: InstrumentSpec) -> str | None:
    """A template key with its base and quote replaced by ``{b}``/``{q}`` (``BTC-USDT-SWAP`` ->
    ``{b}-{q}-SWAP``), or ``None`` when they do not appear in it in that order."""
    folded = key.upper()
    i = folded.find(spec.base.upper())
    if i < 0:
        return None
    j = folded.find(spec.quote.upper(), i + len(spec.base))
    if j < 0:
        return None
    literal = (key[:i], key[i + len(spec.base) : j], key[j + len(spec.quote) :])
    if any("{" in part or "}" in part for part in literal):
        return None
    return f"{literal[0]}{{b}}{literal[1]}{{q}}{literal[2]}"


def _pattern_regex(pattern: str) -> "re.Pattern[str]":
    head, _, rest = pattern.partition("{b}")
    mid, _, tail = rest.partition("{q}")
    quotes = "|".join(_QUOTES)
    return re.compile(f"{re.escape(head)}(?P<b>[A-Za-z0-9]+?){re.escape(mid)}(?P<q>{quotes})(?i:{re.escape(tail)})", re.IGNORECASE)
