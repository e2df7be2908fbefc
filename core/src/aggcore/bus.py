"""Scale-out: feed and consolidator processes over a message bus (``aggcore run --role``).

A **feed** process (``--role feed``) runs its connectors and, for every book that changed,
publishes one self-contained :class:`BookMessage` (conflated per book every
``aggregation.book_interval_ms``), plus a :class:`Heartbeat` per venue every
``bus.heartbeat_ms``. A **consolidator** (``--role consolidate``) runs no connectors: a
:class:`RemoteBooks` turns the messages it receives into ordinary
:class:`~aggcore.book.SymbolBook` objects attached to the consolidated view, so analyzers and
sinks run exactly as in a single process.

The same :class:`BookMessage` is the payload of the ``book`` event kind, so any sink can ask
for per-venue books (``events: [book]``) in any role.

The transport is a plugin (hook ``aggcore_register_buses``, base class :class:`Bus`, config
section ``bus.<name>``); core imports no client library. What every bus needs lives here:
the message types, conflation (:class:`FeedOutbox`), and the consolidator's rules
(:class:`RemoteBooks`): a remote book is used only while its last message says LIVE and is
younger than ``aggregation.max_age_ms``; older versions and duplicates are ignored; a venue
whose feed sends no heartbeat for ``bus.silent_after_ms`` is excluded with the reason
``feed silent``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from .book import SequenceMode, SnapshotSource, SymbolBook, SyncRules
from .models import BookState

__all__ = [
    "ROLES",
    "BookMessage",
    "Bus",
    "BusConfig",
    "BusSection",
    "FeedOutbox",
    "Heartbeat",
    "RemoteBooks",
    "Role",
    "book_message",
]

log = logging.getLogger("aggcore.bus")

Role = Literal["feed", "consolidate"]
ROLES: tuple[Role, ...] = ("feed", "consolidate")

_STATES = {s.value: s for s in BookState}


class BookMessage(msgspec.Struct, kw_only=True):
    """One venue's book at one instant: the bus message and the ``book`` event payload.

    Self-contained: a reader needs no earlier message. ``bids``/``asks`` are the top levels
    ``[price, quantity]``, best first (empty unless ``state`` is ``LIVE``). ``epoch`` is new
    at every (re)sync of the book at its feed (the feed's wall clock in ns when the book
    became LIVE) and ``version`` counts messages within an epoch, so ``(epoch, version)``
    orders every message of a book, across feed restarts. Times are seconds since the epoch
    (UTC) on the feed's clock.
    """

    venue: str  # the exchange (connector name)
    symbol: str  # the exchange's own symbol
    pair: str  # the normalized pair, BASE/QUOTE
    state: str  # a BookState value
    reason: str | None = None  # why the book is not LIVE
    epoch: int
    version: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    exchange_ts: float | None = None  # the exchange's time of the last update, when it sends one
    receipt_ts: float  # when the feed received the last update applied to this book
    seen_ts: float  # when the feed last knew the book current (its connection's last frame)
    published_ts: float  # when the message was built

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)


class Heartbeat(msgspec.Struct, kw_only=True):
    """A feed process's sign of life for one venue, with its books' states and last
    ``(epoch, version)``. ``books`` items are ``[symbol, state, epoch, version, seen_ts]``.
    ``feed`` names the process (``host-pid``): one venue may be split over several feeds by
    pair, and each heartbeat vouches only for the books it lists.
    """

    venue: str
    ts: float
    interval_ms: float
    books: list[tuple[str, str, int, int, float]]
    feed: str = ""


class _BookKeeper:
    """Epoch and version of one book at its feed."""

    __slots__ = ("epoch", "version", "key", "resyncs")

    def __init__(self) -> None:
        self.epoch = 0
        self.version = 0
        self.key: tuple[object, ...] | None = None
        self.resyncs = -1


def book_message(book: SymbolBook, levels: int, epoch: int, version: int, now: float, now_ns: int) -> BookMessage:
    """The message for ``book`` now (wall ``now`` and monotonic ``now_ns`` read together)."""
    live = book.state is BookState.LIVE

    def wall(ns: int) -> float:
        return now - (now_ns - ns) / 1e9 if ns else 0.0

    return BookMessage(
        venue=book.exchange,
        symbol=book.symbol,
        pair=book.pair,
        state=book.state.value,
        reason=None if live else book.error,
        epoch=epoch,
        version=version,
        bids=book.book.bids.top(levels) if live else [],
        asks=book.book.asks.top(levels) if live else [],
        exchange_ts=book.last_exchange_ts,
        receipt_ts=wall(book.last_update_ns),
        seen_ts=wall(book.seen_ns()),
        published_ts=now,
    )


class FeedOutbox:
    """A feed's books, conflated: at most one pending message per book, the latest.

    The aggregator calls :meth:`scan` every ``book_interval_ms`` over its books (comparing
    counters; nothing runs per message) and :meth:`beat` every ``heartbeat_ms``. The bus
    plugin awaits :meth:`take` and publishes what it returns; after a reconnect it
    republishes :meth:`current` (every book's latest message). Memory is bounded by the
    number of books.
    """

    def __init__(self, levels: int, feed_id: str | None = None) -> None:
        self.levels = levels
        self.feed_id = feed_id or f"{socket.gethostname()}-{os.getpid()}"
        self.latest: dict[tuple[str, str], BookMessage] = {}
        self.pending: dict[tuple[str, str], BookMessage] = {}
        self.beats: dict[str, Heartbeat] = {}
        self.conflated = 0  # messages replaced before the bus took them
        self.scans = 0
        self._keepers: dict[tuple[str, str], _BookKeeper] = {}
        self._wake: anyio.Event | None = None  # made by take(), inside the event loop
        self.on_message: Callable[[BookMessage], None] | None = None  # the `book` event kind

    def scan(self, books: Iterable[SymbolBook]) -> int:
        """Build a message for every book that changed since the last scan; returns how many."""
        now = time.time()
        now_ns = time.monotonic_ns()
        self.scans += 1
        n = 0
        for book in books:
            k = (book.exchange, book.symbol)
            keeper = self._keepers.get(k)
            if keeper is None:
                keeper = self._keepers[k] = _BookKeeper()
            state = book.state
            key = (state, book.level_updates, book.resyncs, book.error)
            if key == keeper.key:
                continue
            if state is BookState.LIVE and (keeper.key is None or keeper.key[0] is not BookState.LIVE or book.resyncs != keeper.resyncs):
                keeper.epoch = max(time.time_ns(), keeper.epoch + 1)  # a new sync: a new epoch
                keeper.version = 0
            elif keeper.epoch == 0:
                keeper.epoch = time.time_ns()
            keeper.key = key
            keeper.resyncs = book.resyncs
            keeper.version += 1
            msg = book_message(book, self.levels, keeper.epoch, keeper.version, now, now_ns)
            self.put(msg)
            n += 1
        return n

    def put(self, msg: BookMessage) -> None:
        k = (msg.venue, msg.symbol)
        self.latest[k] = msg
        if k in self.pending:
            self.conflated += 1
        self.pending[k] = msg
        if self.on_message is not None:
            self.on_message(msg)
        if self._wake is not None:
            self._wake.set()

    def beat(self, books: Iterable[SymbolBook], interval_ms: float) -> None:
        """Queue a heartbeat per venue (the latest replaces an untaken one)."""
        now = time.time()
        now_ns = time.monotonic_ns()
        per_venue: dict[str, list[tuple[str, str, int, int, float]]] = {}
        for book in books:
            keeper = self._keepers.get((book.exchange, book.symbol))
            epoch, version = (keeper.epoch, keeper.version) if keeper is not None else (0, 0)
            seen = book.seen_ns()
            per_venue.setdefault(book.exchange, []).append(
                (book.symbol, book.state.value, epoch, version, now - (now_ns - seen) / 1e9 if seen else 0.0)
            )
        for venue, items in per_venue.items():
            self.beats[venue] = Heartbeat(venue=venue, ts=now, interval_ms=interval_ms, books=items, feed=self.feed_id)
        if per_venue and self._wake is not None:
            self._wake.set()

    async def take(self) -> tuple[list[BookMessage], list[Heartbeat]]:
        """Wait until something is pending; return (and clear) it."""
        while not self.pending and not self.beats:
            self._wake = anyio.Event()
            await self._wake.wait()
        books = list(self.pending.values())
        beats = list(self.beats.values())
        self.pending.clear()
        self.beats.clear()
        return books, beats

    def current(self) -> list[BookMessage]:
        """Every book's latest message (to republish after the bus was away)."""
        return list(self.latest.values())


_REMOTE_RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE, check_crossed=False)


class _Remote:
    __slots__ = ("book", "epoch", "version", "state", "reason", "silent", "beat_ns")

    def __init__(self, book: SymbolBook) -> None:
        self.book = book
        self.beat_ns = 0  # the last heartbeat (or fresh message) of its feed that named this book
        self.epoch = 0
        self.version = 0
        self.state = BookState.SYNCING  # what the feed last said
        self.reason: str | None = None
        self.silent: str | None = None  # why its feed counts as gone


class RemoteBooks:
    """A consolidator's view of the feeds' books.

    The bus plugin calls :meth:`on_book` with every decoded book message, :meth:`on_heartbeat`
    with every heartbeat and :meth:`bad` with anything it could not decode. Each remote book
    is a :class:`~aggcore.book.SymbolBook` attached through ``attach`` (the consolidated
    view's router), LIVE only while the feed says so. :meth:`check_silent` (called by the
    aggregator's ticker) excludes the venues whose feed went quiet; a heartbeat or a fresh
    message brings them back.
    """

    def __init__(
        self,
        attach: Callable[[SymbolBook], object],
        *,
        silent_after_ms: float,
        pairs: Sequence[str] | None = None,
    ) -> None:
        self._attach = attach
        self.silent_after_ms = silent_after_ms
        self.pairs = set(pairs) if pairs else None
        self.books: dict[tuple[str, str], _Remote] = {}
        self.received = 0
        self.ignored = 0  # older versions and duplicates
        self.bad_messages = 0
        self.last_bad: str | None = None
        self._last_log = 0.0

    def wants(self, pair: str) -> bool:
        return self.pairs is None or pair in self.pairs

    def on_book(self, msg: BookMessage) -> bool:
        """Apply one message; returns False when it was ignored (older, duplicate, other pair)."""
        if not self.wants(msg.pair):
            return False
        state = _STATES.get(msg.state)
        if state is None:
            self.bad(f"{msg.venue}.{msg.pair}", f"unknown book state {msg.state!r}")
            return False
        self.received += 1
        k = (msg.venue, msg.symbol)
        r = self.books.get(k)
        if r is None:
            book = SymbolBook(msg.venue, msg.symbol, msg.pair, _REMOTE_RULES)
            r = self.books[k] = _Remote(book)
            self._attach(book)
        if (msg.epoch, msg.version) <= (r.epoch, r.version):
            self.ignored += 1
            return False
        if msg.epoch > time.time_ns() + _FUTURE_NS:
            # it would shadow every real message of this book: not from a feed with a sane clock
            self.received -= 1
            self.bad(f"{msg.venue}.{msg.pair}", f"epoch {msg.epoch} is in the future")
            return False
        if state is BookState.LIVE:
            problem = _check_levels(msg.bids, msg.asks)
            if problem is not None:
                self.received -= 1
                self.bad(f"{msg.venue}.{msg.pair}", problem)
                return False
        now_ns = time.monotonic_ns()
        now = time.time()
        if now - msg.published_ts <= self.silent_after_ms / 1000:
            # a fresh message is a sign of life of its feed, as good as a heartbeat
            r.beat_ns = max(r.beat_ns, _mono(msg.published_ts, now, now_ns))
        if r.silent is not None and self._fresh(r, now_ns):
            r.silent = None
        r.epoch, r.version, r.state, r.reason = msg.epoch, msg.version, state, msg.reason
        book = r.book
        book.last_exchange_ts = msg.exchange_ts
        book.alive_ns = _mono(msg.seen_ts, now, now_ns)
        receipt_ns = _mono(msg.receipt_ts, now, now_ns) or now_ns
        if state is BookState.LIVE:
            _replace_levels(book, msg.bids, msg.asks)
            book.messages += 1
            book.last_update_ns = receipt_ns
            if r.silent is not None:
                _set_state(book, BookState.STALE, r.silent)
            else:
                _set_state(book, BookState.LIVE, None)
                if book.listener is not None:
                    book.listener.book_changed(book, receipt_ns)
        else:
            book.book.clear()
            book.last_update_ns = receipt_ns
            _set_state(book, state, r.silent or msg.reason)
        return True

    def _fresh(self, r: _Remote, now_ns: int) -> bool:
        return r.beat_ns > 0 and now_ns - r.beat_ns <= self.silent_after_ms * 1e6

    def venue_alive(self, venue: str, now_ns: int | None = None) -> bool:
        """Some feed vouched for some book of ``venue`` within ``silent_after_ms``."""
        now_ns = now_ns or time.monotonic_ns()
        return any(self._fresh(r, now_ns) for r in self.books.values() if r.book.exchange == venue)

    def on_heartbeat(self, beat: Heartbeat) -> None:
        now_ns = time.monotonic_ns()
        now = time.time()
        if now - beat.ts > self.silent_after_ms / 1000:
            return  # an old heartbeat (kept by the bus from a feed that is gone) proves nothing
        beat_ns = _mono(beat.ts, now, now_ns)
        for symbol, state, epoch, version, seen_ts in beat.books:
            r = self.books.get((beat.venue, symbol))
            if r is None:
                continue
            r.beat_ns = max(r.beat_ns, beat_ns)
            if (epoch, version) != (r.epoch, r.version):
                continue  # a newer message is on its way; until then the book stays as it is
            r.book.alive_ns = max(r.book.alive_ns, _mono(seen_ts, now, now_ns))
            if r.silent is not None:
                r.silent = None
                if r.state is BookState.LIVE and state == BookState.LIVE.value:
                    _set_state(r.book, BookState.LIVE, None)  # the feed is back; this book did not change
                else:
                    r.book.error = r.reason

    def check_silent(self) -> list[str]:
        """Exclude every book whose feed sent no heartbeat naming it (nor a fresh message of it)
        for ``silent_after_ms``; returns the venues with books that went silent now."""
        now_ns = time.monotonic_ns()
        went: set[str] = set()
        for r in self.books.values():
            venue = r.book.exchange
            if r.silent is not None or self._fresh(r, now_ns):
                continue
            if not r.beat_ns:
                why = f"feed silent: no heartbeat from the {venue} feed"
            else:
                why = f"feed silent: no heartbeat from the {venue} feed for {(now_ns - r.beat_ns) / 1e6:.0f} ms"
            r.silent = why
            if r.book.state is BookState.LIVE:
                _set_state(r.book, BookState.STALE, why)
            else:
                r.book.error = why
            went.add(venue)
        return sorted(went)

    def bad(self, where: str, reason: str) -> None:
        """A message that could not be used: counted, logged (at most once a second), ignored."""
        self.bad_messages += 1
        self.last_bad = f"{where}: {reason}"
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            self._last_log = now
            log.warning("bus: bad message ignored (%d so far): %s", self.bad_messages, self.last_bad)

    def venues(self) -> dict[str, list[SymbolBook]]:
        out: dict[str, list[SymbolBook]] = {}
        for r in self.books.values():
            out.setdefault(r.book.exchange, []).append(r.book)
        return out


_INF = float("inf")
_FUTURE_NS = 300 * 10**9  # clocks of feeds and consolidators may differ, but not by 5 minutes


def _check_levels(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> str | None:
    """Why these levels cannot be a book (None when they can): bids strictly descending, asks
    strictly ascending, prices and quantities finite and > 0, best bid below best ask."""
    prev = _INF
    for p, q in bids:
        if not (0 < p < prev) or not (0 < q < _INF):
            return f"bids not a book at price {p!r} quantity {q!r} (strictly descending, finite, > 0)"
        prev = p
    prev = 0.0
    for p, q in asks:
        if not (prev < p < _INF) or not (0 < q < _INF):
            return f"asks not a book at price {p!r} quantity {q!r} (strictly ascending, finite, > 0)"
        prev = p
    if bids and asks and bids[0][0] >= asks[0][0]:
        return f"crossed: best bid {bids[0][0]} >= best ask {asks[0][0]}"
    return None


def _replace_levels(book: SymbolBook, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
    """Replace both sides with checked levels (best first) without re-sorting them."""
    side = book.book.bids
    side.levels = dict(bids)
    side.keys = [p for p, _ in reversed(bids)]
    side = book.book.asks
    side.levels = dict(asks)
    side.keys = [p for p, _ in asks]
    book.level_updates += len(bids) + len(asks)


def _set_state(book: SymbolBook, state: BookState, reason: str | None) -> None:
    book.error = reason
    if state is not book.state:
        book.state = state
        if book.listener is not None:
            book.listener.book_state_changed(book)


def _mono(wall_ts: float, now: float, now_ns: int) -> int:
    """A wall time (possibly another machine's) as this process's monotonic ns, never in the future."""
    if not wall_ts:
        return 0
    return now_ns - max(0, int((now - wall_ts) * 1e9))


class BusConfig(BaseModel):
    """Settings of a bus plugin (``bus.<name>``); subclass it and keep ``extra="forbid"``."""

    model_config = ConfigDict(extra="forbid")


class BusSection(BaseModel):
    """The validated ``bus`` section: the chosen bus plugin and what every bus needs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the bus plugin (the one key of the section that names a plugin)")
    settings: SerializeAsAny[BusConfig] = Field(default_factory=BusConfig)
    pairs: list[str] | None = Field(None, description="consolidate only these pairs (shard consolidators by pair)")
    heartbeat_ms: float = Field(1000, gt=0, description="a feed's heartbeat per venue")
    silent_after_ms: float = Field(3000, gt=0, description="a venue whose feed sent no heartbeat this long is excluded")


class Bus:
    """Base class of bus plugins: the transport between feed and consolidator processes.

    The runtime runs :meth:`run_feed` in a feed process and :meth:`run_consolidate` in a
    consolidator, each in its own task, restarted with backoff when it raises. Both call
    ``task_status.started()`` once set up (even when the server is not reachable yet: keep
    retrying inside), and run until cancelled. Keep :attr:`connected`,
    :attr:`connection_losses` and :attr:`last_error` current: they are shown in health
    (``bus:<name>``) and metrics.
    """

    name: ClassVar[str]
    Config: ClassVar[type[BusConfig]] = BusConfig

    def __init__(self, config: BusConfig, section: BusSection) -> None:
        self.config = config
        self.section = section
        self.connected = False
        self.connection_losses = 0
        self.published = 0
        self.last_error: str | None = None

    async def run_feed(self, outbox: FeedOutbox, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Publish what ``outbox.take()`` returns; after a reconnect, republish ``outbox.current()``."""
        raise NotImplementedError

    async def run_consolidate(
        self, inbox: RemoteBooks, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Feed every book message and heartbeat (of ``inbox.pairs``, all when None) to ``inbox``;
        on start and after a reconnect, first every book's latest message."""
        raise NotImplementedError
