"""The consolidated view: one merged book per normalized pair, across exchanges.

The hot path only *marks* a view dirty (:meth:`Router.book_changed`); the merged top-N,
venue attribution, spread and ages are built off the hot path by the analysis task (at most
every ``aggregation.analyze_interval_ms``) or when a reader asks. A venue whose book is not
LIVE, or whose last update is older than ``max_age_ms``, is left out, and the view says why.

Optional quote groups merge pairs that differ only by quote currency: with
``quote_groups: {USD: [USD, USDT, USDC]}`` the books of ``BTC/USD``, ``BTC/USDT`` and
``BTC/USDC`` all feed the view ``BTC/USD``; each level still names its exchange (and the
exchange's pair, where it differs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

from .book import SymbolBook
from .clock import SYSTEM_CLOCK, Clock
from .models import BookState

__all__ = ["ConsolidatedView", "Merged", "Router", "view_key"]

_first = itemgetter(0)


def view_key(pair: str, quote_groups: dict[str, list[str]]) -> str:
    """The view a pair feeds: the pair itself, or ``BASE/GROUP`` when its quote is grouped."""
    if not quote_groups:
        return pair
    base, _, rest = pair.partition("/")
    quote, colon, settle = rest.partition(":")
    for group, members in quote_groups.items():
        if quote in members:
            return f"{base}/{group}{colon}{settle}"
    return pair


@dataclass(slots=True)
class Merged:
    """A merged top-N at one instant. Levels are ``(price, quantity, exchange)``, best first."""

    pair: str
    bids: list[tuple[float, float, str]]
    asks: list[tuple[float, float, str]]
    venues: list[str]
    excluded: dict[str, str]
    ages_ms: dict[str, float]
    built_ns: int
    books: dict[str, SymbolBook] = field(default_factory=dict)  # the venues used

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    @property
    def spread(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return self.asks[0][0] - self.bids[0][0]

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.asks[0][0] + self.bids[0][0]) / 2

    def key(self) -> tuple[object, ...]:
        """What a summary shows; equal keys mean nothing a reader sees changed."""
        return (tuple(self.bids), tuple(self.asks), tuple(self.venues))


class ConsolidatedView:
    """All venues' books of one pair (or quote group)."""

    __slots__ = ("pair", "venues", "dirty", "first_dirty_ns", "changes", "_notify", "last_merged", "clock")

    def __init__(self, pair: str, notify: Callable[["ConsolidatedView"], None], clock: Clock = SYSTEM_CLOCK) -> None:
        self.pair = pair
        self.clock = clock
        self.venues: dict[str, SymbolBook] = {}  # "exchange" (or "exchange:SYMBOL" when grouped twice)
        self.dirty = False
        self.first_dirty_ns = 0
        self.changes = 0
        self._notify = notify
        self.last_merged: Merged | None = None

    def add(self, book: SymbolBook) -> None:
        key = book.exchange if book.exchange not in self.venues or self.venues[book.exchange] is book else f"{book.exchange}:{book.symbol}"
        self.venues[key] = book

    # BookListener: called from the hot path --------------------------------------------------------
    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.changes += 1
        if not self.dirty:
            self.dirty = True
            self.first_dirty_ns = receipt_ns
            self._notify(self)

    def book_state_changed(self, book: SymbolBook) -> None:
        self.touch()

    def touch(self) -> None:
        """Something other than a book message changed what the view shows (state, age)."""
        if not self.dirty:
            self.dirty = True
            self.first_dirty_ns = self.clock.monotonic_ns()
            self._notify(self)

    # reading -------------------------------------------------------------------------------------------
    def merge(self, depth: int, max_age_ms: float, now_ns: int | None = None) -> Merged:
        """Merged top-``depth`` of the LIVE, fresh venues, with the reasons others are left out."""
        now_ns = now_ns or self.clock.monotonic_ns()
        bids: list[tuple[float, float, str]] = []
        asks: list[tuple[float, float, str]] = []
        used: list[str] = []
        excluded: dict[str, str] = {}
        ages: dict[str, float] = {}
        books: dict[str, SymbolBook] = {}
        for name, book in self.venues.items():
            if book.last_update_ns:
                ages[name] = round((now_ns - book.seen_ns()) / 1e6, 3)
            if book.state is not BookState.LIVE:
                excluded[name] = f"book {book.state.value}" + (f": {book.error}" if book.error else "")
                continue
            age = ages.get(name, 0.0)
            if age > max_age_ms:
                excluded[name] = f"stale: last update {age:.0f} ms ago (max_age_ms {max_age_ms:g})"
                continue
            used.append(name)
            books[name] = book
            side = book.book.bids
            levels = side.levels
            bids.extend([(p, levels[p], name) for p in side.prices(depth)])
            side = book.book.asks
            levels = side.levels
            asks.extend([(p, levels[p], name) for p in side.prices(depth)])
        bids.sort(key=_first, reverse=True)
        asks.sort(key=_first)
        merged = Merged(self.pair, bids[:depth], asks[:depth], used, excluded, ages, now_ns, books)
        self.last_merged = merged
        return merged


class Router:
    """Routes book changes to views. It is every book's first listener: on the first change
    it rebinds the book straight to its view, so later messages skip the routing entirely."""

    def __init__(self, quote_groups: dict[str, list[str]] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.quote_groups = quote_groups or {}
        self.views: dict[str, ConsolidatedView] = {}
        self.dirty: dict[ConsolidatedView, None] = {}  # ordered: views are analysed in the order they changed
        self.on_dirty: Callable[[], None] | None = None

    def _notify(self, view: ConsolidatedView) -> None:
        first = not self.dirty
        self.dirty[view] = None
        if first and self.on_dirty is not None:
            self.on_dirty()

    def view_for(self, pair: str) -> ConsolidatedView:
        key = view_key(pair, self.quote_groups)
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = ConsolidatedView(key, self._notify, self.clock)
        return view

    def attach(self, book: SymbolBook) -> ConsolidatedView:
        view = self.view_for(book.pair)
        view.add(book)
        book.listener = view
        return view

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.attach(book).book_changed(book, receipt_ns)

    def book_state_changed(self, book: SymbolBook) -> None:
        self.attach(book).book_state_changed(book)

    def take_dirty(self) -> list[ConsolidatedView]:
        views = list(self.dirty)
        self.dirty.clear()
        for view in views:
            view.dirty = False
        return views
