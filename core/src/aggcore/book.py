"""L2 books and the per-symbol sync state machine: the hot path.

Everything here is plain synchronous code with no pydantic, no queues and no hooks per
message. A connector's parser turns a frame into :class:`BookUpdate` objects and hands
each one to the :class:`SymbolBook` of its symbol, which checks it against the exchange's
rules (:class:`SyncRules`), applies it and tells its listener (the consolidated view).

Book sides are a ``dict[float, float]`` plus an ascending ``list[float]`` of prices kept
with :mod:`bisect` (see ``perf-anchors.md``). Prices are parsed with ``float()`` from the
exchange's wire strings; where a checksum needs the exact wire strings, the book keeps them
too (``keep_strings``).

States (one machine per (exchange, symbol))::

    SYNCING ──snapshot + continuous delta──▶ LIVE ──gap / checksum / crossed──▶ RESYNCING
       ▲                                      │  ▲                                 │
       │                                      ▼  │ data again                      │
       └──────────────────────────────────── STALE ◀──── no data for stale_after ──┘

A book that is not LIVE is never used downstream (:attr:`SymbolBook.live` is False).
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from .models import BookState

__all__ = [
    "BookListener",
    "BookSide",
    "BookUpdate",
    "InvalidLevel",
    "OrderBook",
    "SequenceMode",
    "SnapshotSource",
    "SymbolBook",
    "SyncRules",
]

Level = Sequence[Any]  # (price, quantity, ...) as the exchange sends it: strings or numbers


class _Sides(msgspec.Struct, gc=False):
    symbol: str
    bids: Sequence[Level]
    asks: Sequence[Level]


class BookUpdate(_Sides, kw_only=True, gc=False):
    """One parsed book message for one symbol: a snapshot or a delta.

    ``BookUpdate(symbol, bids, asks, *, snapshot=False, first=None, last=None, checksum=None,
    exchange_ts=None, numeric=False)``: a ``msgspec.Struct`` (built once per message, so it costs
    about a quarter of a plain class with an ``__init__``; it is not validated).

    ``bids``/``asks`` are sequences of levels whose first two items are price and quantity,
    as wire strings (preferred) or numbers. ``first``/``last`` are the sequence range the
    message covers, normalized so that a delta follows the previous one when
    ``first == previous.last + 1``:

    - Binance ``U``/``u`` -> ``first=U, last=u``; Bybit ``u`` -> ``first=last=u``;
    - OKX ``prevSeqId``/``seqId`` and Crypto.com ``pu``/``u`` -> ``first=prev+1, last=seq``;
    - Bitstamp ``microtimestamp`` -> ``first=last=microtimestamp`` (``SequenceMode.MONOTONIC``).

    ``checksum`` is the exchange's value, ``None`` or ``0`` when not provided. ``exchange_ts``
    is the exchange's event time in seconds since the epoch, when it sends one.

    ``numeric=True`` says every level is exactly a ``(price, quantity)`` pair of numbers, as a
    typed decoder produces (``msgspec`` with ``strict=False`` turns the wire strings into the
    same floats as ``float()``): the engine then skips the conversion of each level. The checks
    stay (finite, price > 0, quantity >= 0; a level of another shape makes the message invalid),
    and a book that keeps wire strings for a checksum (``SyncRules.keep_strings``) ignores it.
    """

    snapshot: bool = False
    first: int | None = None
    last: int | None = None
    checksum: int | None = None
    exchange_ts: float | None = None
    numeric: bool = False

    def __repr__(self) -> str:
        kind = "snapshot" if self.snapshot else "delta"
        return (
            f"BookUpdate({self.symbol!r}, {kind}, first={self.first}, last={self.last}, "
            f"bids={len(self.bids)}, asks={len(self.asks)}, checksum={self.checksum})"
        )


class SnapshotSource(str, enum.Enum):
    """Where a book's snapshot comes from."""

    REST = "rest"  # fetched over REST while deltas are buffered (Binance, Bitstamp, OKX REST mode)
    INBAND = "inband"  # the first message of a subscription (Bybit, OKX, Crypto.com, Coinbase, Kraken)


class SequenceMode(str, enum.Enum):
    """How consecutive updates are checked."""

    CONTIGUOUS = "contiguous"  # each delta: first == previous last + 1; else gap
    MONOTONIC = "monotonic"  # deltas at or before the snapshot's id are dropped; no gap detection
    NONE = "none"  # no sequence at all (checksum only, e.g. Kraken)


# enum members as module globals: ``BookState.LIVE`` is an attribute lookup on every message
_LIVE, _STALE, _FAILED = BookState.LIVE, BookState.STALE, BookState.FAILED
_CONTIGUOUS, _MONOTONIC = SequenceMode.CONTIGUOUS, SequenceMode.MONOTONIC


@dataclass(frozen=True)
class SyncRules:
    """The exchange facts a connector declares; the engine does the rest.

    ``checksum`` computes the exchange's checksum from a book (it is called only when an
    update carries a non-zero checksum). ``keep_strings`` keeps each level's wire strings in
    ``OrderBook.bids.raw`` / ``asks.raw`` for checksums over exact strings: the pair
    ``(price, size)``, or what ``level_text(price, size)`` makes of them once, when the level
    is applied (a checksum then reads one value per level, e.g. its digits already joined).
    ``check_crossed`` resyncs a LIVE book whose best bid reaches its best ask.
    """

    snapshot: SnapshotSource
    sequence: SequenceMode
    checksum: Callable[["OrderBook"], int] | None = None
    keep_strings: bool = False
    level_text: Callable[[str, str], object] | None = None
    check_crossed: bool = True
    max_buffer: int = 50_000


_INF = float("inf")
_NO_CAP = 1 << 62
#: a LIVE book that drops this many messages in a row as older than itself resyncs
STALE_RUN_LIMIT = 50


class InvalidLevel(ValueError):
    """A level that no book may hold: not a number, not finite, price <= 0 or quantity < 0."""


def _show(level: object) -> str:
    text = repr(level)
    return text if len(text) <= 80 else text[:77] + "..."


def _why(price: float, qty: float) -> str:
    if not 0.0 < price < _INF:
        return f"price {price!r} is not a finite number > 0"
    return f"quantity {qty!r} is not a finite number >= 0"


class BookSide:
    """One side of a book: ``levels`` maps price -> quantity; ``keys`` are the prices ascending.

    ``lo``/``hi`` bound the prices this side keeps (exclusive): a side capped at ``max_levels``
    (:meth:`cap`) drops its far levels and from then on ignores every level at or beyond the
    best price it dropped, so the levels it keeps are exactly the exchange's best ones.
    ``floor`` is the size under which a capped side is too thin to trust and the book resyncs.
    ``levels`` and ``keys`` are changed in place, never rebound (readers such as the
    consolidated view hold on to them).
    """

    __slots__ = ("levels", "keys", "bids", "raw", "text", "lo", "hi", "floor")

    def __init__(self, bids: bool, keep_strings: bool = False, level_text: Callable[[str, str], object] | None = None) -> None:
        self.levels: dict[float, float] = {}
        self.keys: list[float] = []
        self.bids = bids
        #: per price, its wire strings (price, size), or what ``text`` made of them
        self.raw: dict[float, Any] | None = {} if keep_strings else None
        self.text = level_text
        self.lo = 0.0
        self.hi = _INF
        self.floor = 0

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()
        if self.raw is not None:
            self.raw.clear()
        self.lo = 0.0
        self.hi = _INF
        self.floor = 0

    def apply(self, levels: Sequence[Level]) -> int:
        """Apply ``(price, quantity, ...)`` levels; quantity zero (any spelling) deletes.

        Every level is checked before it touches the side: price and quantity must be finite
        numbers, price > 0 and quantity >= 0. Anything else raises :class:`InvalidLevel`; the
        caller (:class:`SymbolBook`) then throws the whole book away and resyncs it, so a
        message with a bad level never reaches a LIVE book.
        """
        book = self.levels
        keys = self.keys
        raw = self.raw
        text = self.text
        lo = self.lo
        hi = self.hi
        inf = _INF
        for level in levels:
            try:
                p = level[0]
                q = level[1]
                price = float(p)
                qty = float(q)
            except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
                raise InvalidLevel(f"{'bid' if self.bids else 'ask'} level {_show(level)}: {exc}") from None
            # one chained comparison each: also false for NaN; rejects inf, <= 0 prices, < 0 sizes
            # (lo >= 0 and hi <= inf: the kept range of a capped side is checked at no extra cost)
            if not (lo < price < hi and 0.0 <= qty < inf):
                if not (0.0 < price < inf and 0.0 <= qty < inf):
                    raise InvalidLevel(f"{'bid' if self.bids else 'ask'} level {_show(level)}: {_why(price, qty)}")
                continue  # beyond the levels a capped side keeps
            if qty == 0.0:
                if book.pop(price, None) is not None:
                    del keys[bisect_left(keys, price)]
                    if raw is not None:
                        raw.pop(price, None)
                continue
            if price not in book:
                insort(keys, price)
            book[price] = qty
            if raw is not None:
                p = p if isinstance(p, str) else repr(p)
                q = q if isinstance(q, str) else repr(q)
                raw[price] = (p, q) if text is None else text(p, q)
        return len(levels)

    def apply_numbers(self, levels: Sequence[Level]) -> int:
        """:meth:`apply` for levels that are exactly ``(price, quantity)`` pairs of numbers
        (``BookUpdate.numeric``): the same checks and the same result, without converting each
        level. A level of another shape raises ``ValueError``/``TypeError`` (the message is
        invalid); a side that keeps wire strings takes :meth:`apply`."""
        if self.raw is not None:
            return self.apply(levels)
        book = self.levels
        keys = self.keys
        lo = self.lo
        hi = self.hi
        inf = _INF
        for price, qty in levels:
            if lo < price < hi:  # also false for NaN
                if 0.0 < qty < inf:
                    if price not in book:
                        insort(keys, price)
                    book[price] = qty
                elif qty == 0.0:
                    if book.pop(price, None) is not None:
                        del keys[bisect_left(keys, price)]
                else:
                    raise InvalidLevel(f"{'bid' if self.bids else 'ask'} level {_show((price, qty))}: {_why(price, qty)}")
            elif not (0.0 < price < inf and 0.0 <= qty < inf):
                raise InvalidLevel(f"{'bid' if self.bids else 'ask'} level {_show((price, qty))}: {_why(price, qty)}")
            # else: beyond the levels a capped side keeps
        return len(levels)

    def best(self) -> float | None:
        keys = self.keys
        if not keys:
            return None
        return keys[-1] if self.bids else keys[0]

    def prices(self, n: int) -> list[float]:
        """The best ``n`` prices, best first."""
        keys = self.keys
        if self.bids:
            return keys[: -n - 1 : -1] if n < len(keys) else keys[::-1]
        return keys[:n]

    def top(self, n: int) -> list[tuple[float, float]]:
        """The best ``n`` levels as ``(price, quantity)``, best first."""
        levels = self.levels
        return [(p, levels[p]) for p in self.prices(n)]

    def cap(self, max_levels: int) -> None:
        """Keep the best ``max_levels`` levels and ignore, from now on, every level at or beyond
        the best one dropped (a full-depth feed: the book stays exact within what it keeps)."""
        keys = self.keys
        extra = len(keys) - max_levels
        if extra <= 0:
            return
        if self.bids:
            self.lo = keys[extra - 1]
        else:
            self.hi = keys[max_levels]
        self.truncate(max_levels)
        self.floor = max_levels // 2

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels (for exchanges that send no delete out of range)."""
        keys = self.keys
        extra = len(keys) - depth
        if extra <= 0:
            return
        if self.bids:
            dropped = keys[:extra]
            del keys[:extra]
        else:
            dropped = keys[depth:]
            del keys[depth:]
        levels = self.levels
        raw = self.raw
        for price in dropped:
            del levels[price]
            if raw is not None:
                raw.pop(price, None)


class OrderBook:
    __slots__ = ("bids", "asks")

    def __init__(self, keep_strings: bool = False, level_text: Callable[[str, str], object] | None = None) -> None:
        self.bids = BookSide(True, keep_strings, level_text)
        self.asks = BookSide(False, keep_strings, level_text)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def keep_strings(self) -> None:
        """Keep each level's wire strings from now on, as a book made with
        ``SyncRules.keep_strings`` does (for a feed found to send checksums). Empties the book:
        call it right before a snapshot, or with a resync."""
        self.clear()
        self.bids.raw = {}
        self.asks.raw = {}

    def crossed(self) -> bool:
        bid = self.bids.best()
        ask = self.asks.best()
        return bid is not None and ask is not None and bid >= ask


def _apply_sides(book: OrderBook, update: BookUpdate) -> int:
    if update.numeric:
        return book.bids.apply_numbers(update.bids) + book.asks.apply_numbers(update.asks)
    return book.bids.apply(update.bids) + book.asks.apply(update.asks)


class BookListener(Protocol):
    """Told when a book changes while LIVE, and when it leaves or enters LIVE.

    ``book_changed`` comes after every applied message while the book's ``notify`` is True (it
    is True unless a listener turns it off). A listener that only needs the first change since
    it last looked (the consolidated view: its readers re-read the book's counters) sets
    ``book.notify = False`` in ``book_changed`` and back to True when it looks again, which
    spares the hot path a call per message. Snapshots and state changes always notify.
    """

    def book_changed(self, book: "SymbolBook", receipt_ns: int) -> None: ...

    def book_state_changed(self, book: "SymbolBook") -> None: ...


class SymbolBook:
    """The book of one (exchange, symbol) and its sync state machine.

    The connector calls :meth:`apply` with every parsed update, :meth:`snapshot_fetched`
    with a REST snapshot, and :meth:`begin_sync` when it (re)subscribes. When the book must
    be rebuilt, the book calls ``request_resync(symbol, reason)`` which the connector
    implements (fetch a fresh REST snapshot, or resubscribe that symbol only).

    ``depth`` (levels the feed keeps per side: deeper ones are dropped) and ``max_levels``
    (the cap of a full-depth feed) are fixed when the book is made.
    """

    __slots__ = (
        "exchange",
        "symbol",
        "pair",
        "rules",
        "depth",
        "book",
        "state",
        "last_seq",
        "buffer",
        "awaiting_first",
        "listener",
        "request_resync",
        "last_update_ns",
        "alive_ns",
        "last_exchange_ts",
        "messages",
        "level_updates",
        "gaps",
        "resyncs",
        "checksum_failures",
        "crossed_books",
        "dropped_stale",
        "invalid_messages",
        "error",
        "snapshot_seq",
        "on_event",
        "max_levels",
        "_stale_at",
        "_stale_run",
        "_sequence",
        "_most",
        "notify",
    )

    def __init__(
        self,
        exchange: str,
        symbol: str,
        pair: str,
        rules: SyncRules,
        *,
        depth: int | None = None,
        max_levels: int | None = None,
        listener: BookListener | None = None,
        request_resync: Callable[[str, str], None] | None = None,
        on_event: Callable[[str, "SymbolBook", str], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.pair = pair
        self.rules = rules
        self._sequence = rules.sequence  # read on every message
        self.depth = depth
        #: levels kept per side (full-depth feeds); beyond it the far levels are dropped
        self.max_levels = max_levels if max_levels is not None else _NO_CAP
        self._most = min(self.max_levels, depth if depth is not None else _NO_CAP)  # read on every message
        self.book = OrderBook(rules.keep_strings, rules.level_text)
        self.state = BookState.SYNCING
        self.last_seq: int | None = None
        self.snapshot_seq: int | None = None
        self.buffer: deque[BookUpdate] = deque()
        self.awaiting_first = False
        self.listener = listener
        self.notify = True  # tell the listener of each applied message (see BookListener)
        self.request_resync = request_resync
        self.on_event = on_event
        self.last_update_ns = 0
        self.alive_ns = 0  # the connection's last frame, refreshed by the connector's watchdog
        self.last_exchange_ts: float | None = None
        self.messages = 0
        self.level_updates = 0
        self.gaps = 0
        self.resyncs = 0
        self.checksum_failures = 0
        self.crossed_books = 0
        self.dropped_stale = 0
        self.invalid_messages = 0
        self._stale_at = -2
        self._stale_run = 0
        self.error: str | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self.state is BookState.LIVE

    @property
    def failed(self) -> bool:
        """An exchange error stopped this book (unknown symbol, rejected subscription)."""
        return self.state is BookState.FAILED

    def _set_state(self, state: BookState) -> None:
        if state is not self.state:
            self.state = state
            if self.listener is not None:
                self.listener.book_state_changed(self)

    def begin_sync(self) -> None:
        """A (re)subscription starts: forget the book and wait for a snapshot."""
        self.book.clear()
        self.buffer.clear()
        self.last_seq = None
        self.snapshot_seq = None
        self.awaiting_first = False
        self._set_state(BookState.SYNCING if self.state is not BookState.RESYNCING else BookState.RESYNCING)

    def fail(self, reason: str) -> None:
        """An exchange error for this symbol (unknown symbol, rejected subscription)."""
        self.error = reason
        self.book.clear()
        self.buffer.clear()
        self._set_state(BookState.FAILED)

    def revive(self, reason: str) -> None:
        """Retry a FAILED book: it waits for a fresh snapshot again (RESYNCING)."""
        if self.state is BookState.FAILED:
            self.error = reason
            self.book.clear()
            self.buffer.clear()
            self.last_seq = None
            self.snapshot_seq = None
            self.awaiting_first = False
            self._set_state(BookState.RESYNCING)

    def mark_stale(self, reason: str) -> None:
        if self.state is BookState.LIVE:
            self.error = reason
            self._set_state(BookState.STALE)

    def resync(self, reason: str, kind: str = "gap") -> None:
        """Throw the book away and ask the connector for a fresh one (this symbol only)."""
        self.resyncs += 1
        self.error = reason
        self.book.clear()
        self.buffer.clear()
        self.last_seq = None
        self.snapshot_seq = None
        self.awaiting_first = False
        self._set_state(BookState.RESYNCING)
        if self.on_event is not None:
            self.on_event(kind, self, reason)
        if self.request_resync is not None:
            self.request_resync(self.symbol, reason)

    # -- the hot path ----------------------------------------------------------------------

    def apply(self, update: BookUpdate, receipt_ns: int = 0) -> bool:
        """Check and apply one update. Returns True when a LIVE book changed."""
        self.messages += 1
        self.last_update_ns = receipt_ns or time.monotonic_ns()
        ts = update.exchange_ts
        if ts is not None:
            self.last_exchange_ts = ts
        if self.state is _LIVE and not update.snapshot:
            # nearly every message: a delta on a LIVE book, in sequence
            last = self.last_seq
            if last is not None:
                if self._sequence is _CONTIGUOUS:
                    first = update.first
                    if first is not None and first != last + 1:
                        return self._out_of_sequence(update, last)
                elif self._sequence is _MONOTONIC:
                    seq = update.last
                    if seq is not None and seq <= last:
                        return self._stale(last)
            return self._apply_delta(update, receipt_ns)
        return self._apply_other(update, receipt_ns)

    def _out_of_sequence(self, update: BookUpdate, last: int) -> bool:
        if update.last is not None and update.last <= last:
            return self._stale(last)  # a duplicate or an old message: nothing new in it
        self.gaps += 1
        self.resync(f"sequence gap: expected {last + 1}, got {update.first}", "gap")
        return False

    def _apply_other(self, update: BookUpdate, receipt_ns: int) -> bool:
        """:meth:`apply` for a snapshot, or a delta on a book that is not LIVE."""
        state = self.state
        if state is _FAILED:
            return False  # an exchange error stopped this book; only a new subscription revives it
        if update.snapshot:
            return self._apply_snapshot(update, receipt_ns)
        if state is _STALE:
            last = self.last_seq
            if last is not None:
                mode = self._sequence
                if mode is _CONTIGUOUS and update.first is not None and update.first != last + 1:
                    return self._out_of_sequence(update, last)
                if mode is _MONOTONIC and update.last is not None and update.last <= last:
                    return self._stale(last)
            self.error = None
            self._set_state(BookState.LIVE)
            return self._apply_delta(update, receipt_ns)
        if self.rules.snapshot is SnapshotSource.REST:
            if self.snapshot_seq is None:
                if len(self.buffer) >= self.rules.max_buffer:
                    self.buffer.popleft()
                    self.gaps += 1
                    self.resync("buffer overflow while waiting for the REST snapshot", "gap")
                    return False
                self.buffer.append(update)
                return False
            return self._first_after_snapshot(update, receipt_ns)
        # in-band snapshot expected first: deltas before it carry nothing we can use
        return False

    def _apply_delta(self, update: BookUpdate, receipt_ns: int) -> bool:
        book = self.book
        bids = book.bids
        asks = book.asks
        last = update.last
        if last is not None and last.__class__ is not int:
            return self._invalid(update, InvalidLevel(f"sequence {last!r} is not an integer"))
        try:
            if update.numeric and bids.raw is None:
                # typed decoding: lists of number pairs (often one side is empty). This is
                # BookSide.apply_numbers written out for each side, which spares two calls per
                # message; a side's size is checked only when a level came or went (``resize``).
                # Keep the three loops the same.
                resize = False
                most = self._most
                inf = _INF
                levels = update.bids
                if levels:
                    book_levels = bids.levels
                    keys = bids.keys
                    lo = bids.lo
                    hi = bids.hi
                    for price, qty in levels:
                        if lo < price and price < hi:  # also false for NaN
                            if 0.0 < qty and qty < inf:
                                if price not in book_levels:
                                    insort(keys, price)
                                    if len(keys) > most:
                                        resize = True
                                book_levels[price] = qty
                            elif qty == 0.0:
                                if book_levels.pop(price, None) is not None:
                                    del keys[bisect_left(keys, price)]
                                    if len(keys) < bids.floor:
                                        resize = True
                            else:
                                raise InvalidLevel(f"bid level {_show((price, qty))}: {_why(price, qty)}")
                        elif not (0.0 < price < inf and 0.0 <= qty < inf):
                            raise InvalidLevel(f"bid level {_show((price, qty))}: {_why(price, qty)}")
                    self.level_updates += len(levels)
                levels = update.asks
                if levels:
                    book_levels = asks.levels
                    keys = asks.keys
                    lo = asks.lo
                    hi = asks.hi
                    for price, qty in levels:
                        if lo < price and price < hi:
                            if 0.0 < qty and qty < inf:
                                if price not in book_levels:
                                    insort(keys, price)
                                    if len(keys) > most:
                                        resize = True
                                book_levels[price] = qty
                            elif qty == 0.0:
                                if book_levels.pop(price, None) is not None:
                                    del keys[bisect_left(keys, price)]
                                    if len(keys) < asks.floor:
                                        resize = True
                            else:
                                raise InvalidLevel(f"ask level {_show((price, qty))}: {_why(price, qty)}")
                        elif not (0.0 < price < inf and 0.0 <= qty < inf):
                            raise InvalidLevel(f"ask level {_show((price, qty))}: {_why(price, qty)}")
                    self.level_updates += len(levels)
            else:
                self.level_updates += bids.apply(update.bids) + asks.apply(update.asks)
                resize = True  # _resize() checks both sides' sizes
        except (ValueError, TypeError) as exc:  # InvalidLevel, levels of the wrong shape, sides that are not lists
            return self._invalid(update, exc)
        if last is not None:
            self.last_seq = last
        if resize and not self._resize(len(bids.keys), len(asks.keys)):
            return False
        if update.checksum and not self._checksum_ok(update):
            return False
        # inlined OrderBook.crossed(): this runs on every message (an empty side: IndexError)
        try:
            crossed = bids.keys[-1] >= asks.keys[0]
        except IndexError:
            crossed = False
        if crossed and self.rules.check_crossed:
            return self._crossed()
        if self.notify:
            listener = self.listener
            if listener is not None:
                listener.book_changed(self, receipt_ns)
        return True

    def _stale(self, last: int) -> bool:
        """A LIVE book dropped a message older than itself. A long unbroken run of them means the
        book is ahead of the exchange (a snapshot from the future): it would never change again."""
        self.dropped_stale += 1
        n = self.messages
        if self._stale_at != n - 1:
            self._stale_run = 0
        self._stale_at = n
        self._stale_run += 1
        if self._stale_run >= STALE_RUN_LIMIT:
            self.resync(f"{self._stale_run} messages in a row older than the book (sequence {last}): it is ahead of the exchange", "gap")
        return False

    def _resize(self, nb: int, na: int) -> bool:
        """A side is beyond ``depth`` (truncate it) or ``max_levels`` (cap it), or a capped side
        thinned below its floor. False when the book resynced."""
        depth = self.depth
        if depth is not None and (nb > depth or na > depth):
            book = self.book
            book.bids.truncate(depth)
            book.asks.truncate(depth)
            nb = len(book.bids)
            na = len(book.asks)
        return self._capped(nb, na)

    def _capped(self, nb: int, na: int) -> bool:
        """A side grew past ``max_levels`` (cap it) or a capped side thinned below its floor (the
        levels it dropped may now be among the best: resync). False when the book resynced."""
        book = self.book
        for side, n in ((book.bids, nb), (book.asks, na)):
            if n > self.max_levels:
                side.cap(self.max_levels)
            elif n < side.floor:
                self.resync(
                    f"{'bid' if side.bids else 'ask'} side thinned to {n} levels after far levels were dropped "
                    f"(max_book_levels {self.max_levels}): fresh snapshot",
                    "depth",
                )
                return False
        return True

    def _invalid(self, update: BookUpdate, exc: BaseException) -> bool:
        """A message with a level no book may hold: nothing of it is ever emitted (the book, maybe
        half-applied, is thrown away) and the symbol resyncs."""
        self.invalid_messages += 1
        kind = "snapshot" if update.snapshot else "delta"
        self.resync(f"invalid {kind} (sequence {update.last}): {exc}", "invalid")
        return False

    def _checksum_ok(self, update: BookUpdate) -> bool:
        """The exchange's checksum (when the update carries one) against the book's; a mismatch resyncs."""
        compute = self.rules.checksum
        if update.checksum and compute is not None:
            ours = compute(self.book)
            if ours != update.checksum:
                self.checksum_failures += 1
                self.resync(f"checksum mismatch: exchange {update.checksum}, book {ours}", "checksum")
                return False
        return True

    def _crossed(self) -> bool:
        self.crossed_books += 1
        self.resync(f"crossed book: best bid {self.book.bids.best()} >= best ask {self.book.asks.best()}", "crossed")
        return False

    def _verify(self, update: BookUpdate) -> bool:
        if not self._checksum_ok(update):
            return False
        if self.rules.check_crossed and self.book.crossed():
            return self._crossed()
        return True

    def _apply_snapshot(self, update: BookUpdate, receipt_ns: int) -> bool:
        """A snapshot replaces the book, whenever it comes (first or mid-stream)."""
        book = self.book
        book.clear()
        self.buffer.clear()
        if update.last is not None and update.last.__class__ is not int:
            return self._invalid(update, InvalidLevel(f"sequence {update.last!r} is not an integer"))
        try:
            n = _apply_sides(book, update)
        except (ValueError, TypeError) as exc:
            return self._invalid(update, exc)
        self.level_updates += n
        self.last_seq = update.last
        self.snapshot_seq = update.last
        self.awaiting_first = False
        if self.depth is not None:
            book.bids.truncate(self.depth)
            book.asks.truncate(self.depth)
        book.bids.cap(self.max_levels)
        book.asks.cap(self.max_levels)
        if not self._verify(update):
            return False
        self.error = None
        self._set_state(BookState.LIVE)
        if self.listener is not None:
            self.listener.book_changed(self, receipt_ns)
        return True

    # -- REST snapshot + buffered deltas ---------------------------------------------------

    def snapshot_fetched(self, snapshot: BookUpdate, receipt_ns: int = 0) -> bool:
        """A REST snapshot arrived: seed the book and replay the buffered deltas.

        Buffered deltas that end at or before the snapshot are dropped; the first one applied
        must cover ``snapshot.last + 1`` (CONTIGUOUS) or simply be newer (MONOTONIC). The book
        turns LIVE once that first delta applied, or at once when there is no sequence rule.
        """
        if self.state is BookState.FAILED:
            return False
        book = self.book
        book.clear()
        if snapshot.last is not None and snapshot.last.__class__ is not int:
            self.buffer.clear()
            return self._invalid(snapshot, InvalidLevel(f"sequence {snapshot.last!r} is not an integer"))
        try:
            _apply_sides(book, snapshot)
        except (ValueError, TypeError) as exc:
            self.buffer.clear()
            return self._invalid(snapshot, exc)
        if self.depth is not None:
            book.bids.truncate(self.depth)
            book.asks.truncate(self.depth)
        book.bids.cap(self.max_levels)
        book.asks.cap(self.max_levels)
        self.snapshot_seq = snapshot.last
        self.last_seq = snapshot.last
        self.awaiting_first = True
        buffered = list(self.buffer)
        self.buffer.clear()
        if self.rules.sequence is not SequenceMode.CONTIGUOUS:
            # no continuity to prove: the snapshot itself is the book; deltas it already holds are
            # dropped here (not counted as a run of old messages on a LIVE book)
            snap_last = snapshot.last
            if snap_last is not None:
                kept = [u for u in buffered if u.last is not None and u.last > snap_last]
                self.dropped_stale += len(buffered) - len(kept)
                buffered = kept
            self.awaiting_first = False
            self.error = None
            self._set_state(BookState.LIVE)
            changed = False
            for update in buffered:
                changed = self.apply(update, receipt_ns) or changed
                if not self.live:
                    return False
            if self.listener is not None and self.live:
                self.listener.book_changed(self, receipt_ns)
            return self.live
        for update in buffered:
            if self.state is BookState.LIVE:
                self.apply(update, receipt_ns)
            else:
                self._first_after_snapshot(update, receipt_ns)
            if self.snapshot_seq is None and not self.live:
                return False  # resync requested
        return self.live

    def _first_after_snapshot(self, update: BookUpdate, receipt_ns: int) -> bool:
        snap = self.snapshot_seq
        assert snap is not None
        last = update.last
        if last is None or last <= snap:
            # older than the snapshot, or without a sequence to tell (its content may be older
            # than the snapshot's: applying it would take the book back in time)
            self.dropped_stale += 1
            return False
        mode = self.rules.sequence
        if mode is SequenceMode.CONTIGUOUS and update.first is not None and update.first > snap + 1:
            self.gaps += 1
            self.resync(f"first delta after snapshot {snap} starts at {update.first}", "gap")
            return False
        self.awaiting_first = False
        self.error = None
        self._set_state(BookState.LIVE)
        return self._apply_delta(update, receipt_ns)

    # -- reading -----------------------------------------------------------------------------

    def seen_ns(self) -> int:
        """When this book was last known to be current: its last update, or its connection's last
        frame when that is later (a quiet market sends no updates; frames still arriving on the
        connection mean nothing was missed)."""
        alive = self.alive_ns
        updated = self.last_update_ns
        return alive if alive > updated else updated

    def age_ms(self, now_ns: int | None = None) -> float | None:
        if not self.last_update_ns:
            return None
        return ((now_ns or time.monotonic_ns()) - self.last_update_ns) / 1e6
