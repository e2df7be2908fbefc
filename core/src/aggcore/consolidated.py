"""The consolidated view: one merged book per normalized pair, across exchanges.

The hot path only *marks* a view dirty (:meth:`Router.book_changed`); the merged top-N,
venue attribution, spread and ages are built off the hot path by the analysis task (at most
every ``aggregation.analyze_interval_ms``) or when a reader asks. A venue whose book is not
LIVE, or whose last update is older than ``max_age_ms``, is left out, and the view says why.

Optional quote groups merge pairs that differ only by quote currency: with
``quote_groups: {USD: [USD, USDT, USDC]}`` the books of ``BTC/USD``, ``BTC/USDT`` and
``BTC/USDC`` all feed the view ``BTC/USD``; each level still names its exchange (and the
exchange's pair, where it differs).

The merged rows are :class:`~aggcore.models.PriceLevel` objects, built when their venue is
re-read and reused while a level's price and quantity stay the same, so a summary is little
more than a copy of the merged lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import attrgetter, itemgetter, ne

from .book import BookSide, SymbolBook
from .clock import SYSTEM_CLOCK, Clock
from .models import BookState, PriceLevel

__all__ = ["ConsolidatedView", "Merged", "Router", "Row", "view_key"]

_price = attrgetter("price")
_LIVE = BookState.LIVE
_INF = float("inf")
_UTC = timezone.utc

Row = tuple[float, float, str]  # (price, quantity, venue): what top_of_book() returns
_Venue = tuple[str, SymbolBook, BookSide, BookSide]  # name, book, its bids, its asks
# the one venue of a view: name, book, its bid prices and levels, its ask prices and levels (a
# side's ``keys`` list and ``levels`` dict are the same objects for the side's whole life)
_OneVenue = tuple[str, SymbolBook, list[float], dict[float, float], list[float], dict[float, float]]


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
    """A merged top-N at one instant: :class:`PriceLevel` rows, best first, each naming its venue
    (``exchange``) and when that level last changed (``timestamp``). The lists and the levels are
    never changed after the merge that made them (copy them before changing them)."""

    pair: str
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    venues: list[str]
    excluded: dict[str, str]
    ages_ms: dict[str, float]
    built_ns: int
    books: dict[str, SymbolBook] = field(default_factory=dict)  # the venues used

    @property
    def best_bid(self) -> float | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0].price if self.asks else None

    @property
    def spread(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return self.asks[0].price - self.bids[0].price

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.asks[0].price + self.bids[0].price) / 2

    def key(self) -> tuple[object, ...]:
        """What a summary shows; equal keys mean nothing a reader sees changed. Cheap to compare:
        an unchanged level is the same object from merge to merge, an unchanged side often the
        same list."""
        return (self.bids, self.asks, self.venues)


class _VenueCache:
    """One venue's top levels as merged rows, valid while the venue's version is unchanged, and
    the levels read before by price (to reuse a level whose quantity did not change)."""

    __slots__ = ("version", "depth", "bids", "asks", "complete", "bid_index", "ask_index", "bid_key", "ask_key", "merged")

    def __init__(self) -> None:
        self.version = (-1, -1, -1)
        self.depth = 0
        self.bids: list[PriceLevel] = []
        self.asks: list[PriceLevel] = []
        self.complete = False  # the book has no levels beyond these (fewer than depth per side)
        self.bid_index: dict[float, PriceLevel] = {}  # price -> the level last read there
        self.ask_index: dict[float, PriceLevel] = {}
        self.bid_key: tuple[list[float], tuple[float, ...]] = ([], ())  # (prices, quantities) of ``bids``
        self.ask_key: tuple[list[float], tuple[float, ...]] = ([], ())
        # the lists this venue's last fold used (None after a merge from scratch, which reads the books)
        self.merged: tuple[list[PriceLevel], list[PriceLevel]] | None = None


class ConsolidatedView:
    """All venues' books of one pair (or quote group).

    Consolidation is incremental: every venue's top levels are cached with the venue's version
    (bumped when its book notifies a change; cross-checked with the book's message and level
    counters), so a merge re-reads only the venues that changed since the last merge and folds
    their new levels into the previous merged top-N (a side the venue did not change, or changed
    only beyond the cut-off, is the previous list; a change of quantities only keeps the rows'
    places). A merge starts from scratch when the venues used or the depth changed, when several
    venues changed since the last merge, or when the changed venue gave up places that levels
    beyond the old cut-off may take; from scratch, only the venues' best prices are read and
    sorted, and rows are read or built only for the ``depth`` levels kept.
    """

    __slots__ = (
        "pair",
        "venues",
        "dirty",
        "first_dirty_ns",
        "changes",
        "stamps",
        "_notify",
        "last_merged",
        "_cache",
        "_merged_depth",
        "_merged_used",
        "_merged_versions",
        "_rank",
        "_sides",
        "_one",
        "clock",
    )

    def __init__(self, pair: str, notify: Callable[["ConsolidatedView"], None], clock: Clock = SYSTEM_CLOCK) -> None:
        self.pair = pair
        self.clock = clock
        # "exchange" (or "exchange:SYMBOL" when grouped twice); add venues with add() only
        self.venues: dict[str, SymbolBook] = {}
        self.dirty = False
        self.first_dirty_ns = 0
        self.changes = 0  # book changes and state changes seen
        self.stamps: dict[SymbolBook, int] = {}  # book -> ``changes`` at its last change
        self._notify = notify
        self.last_merged: Merged | None = None
        self._cache: dict[str, _VenueCache] = {}
        self._merged_depth = 0
        self._merged_used: list[str] = []
        self._merged_versions: dict[str, tuple[int, int, int]] = {}
        self._rank: dict[str, int] = {}  # venue -> its place in the last merge's venues
        # (name, book, bids, asks) per venue in order, for top_of_book(): no dict or attribute walk
        self._sides: tuple[_Venue, ...] = ()
        self._one: _OneVenue | None = None  # the venue when there is one

    def add(self, book: SymbolBook) -> None:
        key = book.exchange if book.exchange not in self.venues or self.venues[book.exchange] is book else f"{book.exchange}:{book.symbol}"
        self.venues[key] = book
        self._sides = tuple((name, b, b.book.bids, b.book.asks) for name, b in self.venues.items())
        self._one = None
        if len(self._sides) == 1:
            name, b, bids, asks = self._sides[0]
            self._one = (name, b, bids.keys, bids.levels, asks.keys, asks.levels)
        self.changes += 1
        self.stamps[book] = self.changes

    # BookListener: called from the hot path --------------------------------------------------------
    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.changes = changes = self.changes + 1
        self.stamps[book] = changes
        # the book's next messages need not tell this view again until it is looked at
        # (take_dirty): readers see them through the book's counters (:meth:`version`)
        book.notify = False
        if not self.dirty:
            self.dirty = True
            self.first_dirty_ns = receipt_ns
            self._notify(self)

    def book_state_changed(self, book: SymbolBook) -> None:
        self.changes += 1
        self.stamps[book] = self.changes
        self.touch()

    def touch(self) -> None:
        """Something other than a book message changed what the view shows (state, age)."""
        if not self.dirty:
            self.dirty = True
            self.first_dirty_ns = self.clock.monotonic_ns()
            self._notify(self)

    def version(self, book: SymbolBook) -> tuple[int, int, int]:
        """Changes whenever ``book``'s levels or state may have changed (cheap; for readers' caches)."""
        return (self.stamps.get(book, 0), book.messages, book.level_updates)

    # reading -------------------------------------------------------------------------------------------
    def top_of_book(self) -> tuple[Row | None, Row | None]:
        """The consolidated best bid and best ask now, as ``(price, quantity, venue)`` rows (None
        when no LIVE venue has that side; equal prices: the first venue in order). Reads only each
        LIVE venue's best level, so it is cheap enough to call after every message; freshness
        (``max_age_ms``) is applied by :meth:`merge`."""
        one = self._one
        if one is not None:  # one venue: its best levels, no comparing
            name, book, keys, levels, ask_keys, ask_levels = one
            if book.state is not _LIVE:
                return None, None
            try:  # an empty side raises IndexError
                price = keys[-1]
                bid: Row | None = (price, levels[price], name)
            except IndexError:
                bid = None
            try:
                price = ask_keys[0]
                return bid, (price, ask_levels[price], name)
            except IndexError:
                return bid, None
        # prices are finite and > 0 (checked when applied): 0 and inf are below and above them all
        best_bid = 0.0
        best_ask = _INF
        bid_at: _Venue | None = None
        ask_at: _Venue | None = None
        for venue in self._sides:
            if venue[1].state is not _LIVE:
                continue
            keys = venue[2].keys
            if keys and keys[-1] > best_bid:  # strictly better: the first venue keeps a tie
                best_bid = keys[-1]
                bid_at = venue
            keys = venue[3].keys
            if keys and keys[0] < best_ask:
                best_ask = keys[0]
                ask_at = venue
        return (
            None if bid_at is None else (best_bid, bid_at[2].levels[best_bid], bid_at[0]),
            None if ask_at is None else (best_ask, ask_at[3].levels[best_ask], ask_at[0]),
        )

    def levels(
        self, name: str, book: SymbolBook, depth: int, version: tuple[int, int, int] | None = None, now_ns: int = 0
    ) -> _VenueCache:
        """The venue's best ``depth`` levels per side as merged rows, re-read only when it changed.

        A re-read builds a :class:`PriceLevel` only for a level whose price or quantity is new,
        stamped with the book's last update in wall time (one ``datetime`` per re-read); the
        others are the objects read before, and a side with no new level is the previous list."""
        if version is None:
            version = self.version(book)
        cached = self._cache.get(name)
        if cached is None:
            cached = self._cache[name] = _VenueCache()
        elif cached.version == version and (cached.depth >= depth or cached.complete):
            return cached
        # each side: its best prices and their quantities (the key), re-read only when they differ
        stamp = None
        sides = book.book
        side = sides.bids
        prices = side.prices(depth)
        quantities = _quantities(side.levels, prices)
        key = cached.bid_key
        if quantities != key[1] or prices != key[0]:
            cached.bids, stamp = _side_rows(prices, quantities, key, cached.bid_index, cached.bids, name, stamp, self, book, now_ns)
            cached.bid_key = (prices, quantities)
            if len(cached.bid_index) > 2 * depth + 8:  # forget levels no longer read (bounded by the depth)
                cached.bid_index = dict(zip(prices, cached.bids))
        side = sides.asks
        prices = side.prices(depth)
        quantities = _quantities(side.levels, prices)
        key = cached.ask_key
        if quantities != key[1] or prices != key[0]:
            cached.asks, stamp = _side_rows(prices, quantities, key, cached.ask_index, cached.asks, name, stamp, self, book, now_ns)
            cached.ask_key = (prices, quantities)
            if len(cached.ask_index) > 2 * depth + 8:
                cached.ask_index = dict(zip(prices, cached.asks))
        cached.version = version
        cached.depth = depth
        cached.complete = len(cached.bids) < depth and len(cached.asks) < depth
        return cached

    def _rebuild(
        self, books: dict[str, SymbolBook], depth: int, now_ns: int, bids: bool, stamps: dict[str, datetime]
    ) -> list[PriceLevel]:
        """One side's merged top-``depth`` of ``books`` from scratch: each venue's best ``depth``
        prices, sorted together and cut, then a row for each price kept, from the venues that
        quote it in venue order (only those rows are read or built; a venue quoting a kept price
        has it among its best ``depth``: its better prices are all kept before it). The rows are
        the venues' indexed levels (:meth:`levels` reads the same), so an unchanged level is the
        same object; a new one is stamped with ``stamps[venue]`` (made once per merge)."""
        cache = self._cache
        venues: list[tuple[str, SymbolBook, BookSide, _VenueCache]] = []
        prices: list[float] = []
        for name, book in books.items():
            c = cache.get(name)
            if c is None:
                c = cache[name] = _VenueCache()
            side = book.book.bids if bids else book.book.asks
            prices += side.prices(depth)
            venues.append((name, book, side, c))
        prices.sort(reverse=bids)
        del prices[depth:]
        rows: list[PriceLevel] = []
        last = -1.0
        for p in prices:
            if p == last:
                continue  # a price several venues quote: all its rows came with its first
            last = p
            for name, book, side, c in venues:
                q = side.levels.get(p)
                if q is None:
                    continue
                index = c.bid_index if bids else c.ask_index
                level = index.get(p)
                if level is None or level.quantity != q:
                    stamp = stamps.get(name)
                    if stamp is None:
                        stamp = stamps[name] = self.stamp(book, now_ns)
                    level = index[p] = PriceLevel(p, q, name, stamp)
                    if len(index) > 4 * depth + 8:  # forget levels no longer among the best (bounded)
                        kept = {k: index[k] for k in side.prices(depth) if k in index}
                        if bids:
                            c.bid_index = kept
                        else:
                            c.ask_index = kept
                rows.append(level)
        del rows[depth:]
        return rows

    def stamp(self, book: SymbolBook, now_ns: int = 0) -> datetime:
        """When ``book`` last changed, in wall time (UTC; now when it never did). ``now_ns``:
        the view clock's monotonic time now, when the caller has read it."""
        clock = self.clock
        wall_ns = clock.time_ns()
        updated = book.last_update_ns
        if updated:
            wall_ns -= (now_ns or clock.monotonic_ns()) - updated
        return datetime.fromtimestamp(wall_ns / 1e9, _UTC)

    def merge(self, depth: int, max_age_ms: float, now_ns: int | None = None) -> Merged:
        """Merged top-``depth`` of the LIVE, fresh venues, with the reasons others are left out."""
        now_ns = now_ns or self.clock.monotonic_ns()
        venues = self.venues
        last = self.last_merged
        if len(venues) == 1 and last is not None and self._merged_depth == depth and len(self._merged_used) == 1:
            # one venue, which the last merge (at this depth) used: what the general path below
            # gives while it stays LIVE and fresh, without its lists and dicts
            for name, book in venues.items():
                if book.state is _LIVE and self._merged_used[0] == name:
                    updated = book.last_update_ns
                    waited = 0
                    if updated:
                        alive = book.alive_ns
                        waited = now_ns - (alive if alive > updated else updated)  # since seen_ns()
                    if waited <= max_age_ms * 1e6:
                        version = self.version(book)
                        if self._merged_versions.get(name) == version:
                            top_bids, top_asks = last.bids, last.asks
                        else:
                            rows = self.levels(name, book, depth, version, now_ns)
                            top_bids, top_asks = rows.bids, rows.asks
                            if len(top_bids) > depth:
                                top_bids = top_bids[:depth]
                            if len(top_asks) > depth:
                                top_asks = top_asks[:depth]
                        one = [name]
                        age = {name: waited // 1000 / 1000} if updated else {}
                        merged = Merged(self.pair, top_bids, top_asks, one, {}, age, now_ns, last.books)
                        self.last_merged = merged
                        self._merged_used = one
                        self._merged_versions = {name: version}
                        return merged
        limit_ns = max_age_ms * 1e6
        used: list[str] = []
        excluded: dict[str, str] = {}
        ages: dict[str, float] = {}
        versions: dict[str, tuple[int, int, int]] = {}
        previous = self._merged_versions
        changed: list[str] = []
        version_of = self.version
        for name, book in venues.items():
            updated = book.last_update_ns
            if updated:
                alive = book.alive_ns
                waited = now_ns - (alive if alive > updated else updated)  # since seen_ns()
                ages[name] = waited // 1000 / 1000  # ms, to the microsecond
                if book.state is _LIVE and waited <= limit_ns:
                    used.append(name)
                    versions[name] = version = version_of(book)
                    if previous.get(name) != version:
                        changed.append(name)
                    continue
            elif book.state is _LIVE:
                used.append(name)
                versions[name] = version = version_of(book)
                if previous.get(name) != version:
                    changed.append(name)
                continue
            if book.state is not _LIVE:
                excluded[name] = f"book {book.state.value}" + (f": {book.error}" if book.error else "")
                self._cache.pop(name, None)  # a book that comes back is read afresh (new timestamps)
            else:
                excluded[name] = f"stale: last update {waited / 1e6:.0f} ms ago (max_age_ms {max_age_ms:g})"
        if last is not None and self._merged_used == used:
            books = last.books
        else:
            books = {name: venues[name] for name in used}
        bids: list[PriceLevel] | None = None
        asks: list[PriceLevel] | None = None
        if last is not None and self._merged_depth == depth and self._merged_used == used:
            if not changed:
                bids, asks = last.bids, last.asks
            elif len(used) == 1:
                rows = self.levels(used[0], books[used[0]], depth, versions[used[0]], now_ns)
                bids, asks = rows.bids, rows.asks
                if len(bids) > depth:
                    bids = bids[:depth]
                if len(asks) > depth:
                    asks = asks[:depth]
            elif len(changed) == 1:
                # one venue changed: its fresh rows folded into the previous merge (exact, the
                # others' rows being the same); a side whose fold cannot tell (the venue gave up
                # places that levels beyond the old cut-off may take) is merged from scratch, as
                # are both sides when several venues changed (about as cheap as folding each)
                venue = changed[0]
                rows = self.levels(venue, books[venue], depth, versions[venue], now_ns)
                seen = rows.merged or ([], [])
                rank = self._rank
                stamps: dict[str, datetime] = {}
                bids = last.bids if rows.bids is seen[0] else _fold(last.bids, venue, rank, rows.bids, depth, True)
                if bids is None:
                    bids = self._rebuild(books, depth, now_ns, True, stamps)
                asks = last.asks if rows.asks is seen[1] else _fold(last.asks, venue, rank, rows.asks, depth, False)
                if asks is None:
                    asks = self._rebuild(books, depth, now_ns, False, stamps)
                # what this merge used of the venue (the others' rows, unchanged, are those of
                # their last fold or of none)
                rows.merged = (rows.bids, rows.asks)
        if bids is None or asks is None:
            # from scratch, reading books that changed since their rows were last read: the
            # folds' shortcut holds again for each venue from its next fold on
            for name in books:
                c = self._cache.get(name)
                if c is not None:
                    c.merged = None
            stamps = {}
            bids = self._rebuild(books, depth, now_ns, True, stamps)
            asks = self._rebuild(books, depth, now_ns, False, stamps)
            if self._merged_used != used:
                self._rank = {name: i for i, name in enumerate(used)}
        merged = Merged(self.pair, bids, asks, used, excluded, ages, now_ns, books)
        self.last_merged = merged
        self._merged_depth = depth
        self._merged_used = used
        self._merged_versions = versions
        return merged


def _quantities(levels: dict[float, float], prices: list[float]) -> tuple[float, ...]:
    """``levels``' quantities at ``prices`` (one C call for two or more)."""
    if len(prices) > 1:
        found: tuple[float, ...] = itemgetter(*prices)(levels)
        return found
    return tuple([levels[p] for p in prices])


def _side_rows(
    prices: list[float],
    quantities: tuple[float, ...],
    key: tuple[list[float], tuple[float, ...]],
    index: dict[float, PriceLevel],
    previous: list[PriceLevel],
    name: str,
    stamp: datetime | None,
    view: ConsolidatedView,
    book: SymbolBook,
    now_ns: int,
) -> tuple[list[PriceLevel], datetime | None]:
    """One side's new rows when its best ``prices`` and their ``quantities`` are no longer the
    ``key`` (prices, quantities) of its ``previous`` rows: the level read before at a price when
    its quantity is the same (``index``, updated here), else a new one (``stamp``, made once when
    first needed)."""
    if prices == key[0]:  # only quantities changed: the previous rows, other levels where they differ
        rows = previous[:]
        differs = list(map(ne, quantities, key[1]))
        i = -1
        for _ in range(differs.count(True)):
            i = differs.index(True, i + 1)
            p = prices[i]
            q = quantities[i]
            level = index.get(p)  # a merge from scratch may have read it already
            if level is None or level.quantity != q:
                if stamp is None:
                    stamp = view.stamp(book, now_ns)
                level = index[p] = PriceLevel(p, q, name, stamp)
            rows[i] = level
        return rows, stamp
    rows = []
    get = index.get
    for p, q in zip(prices, quantities):
        level = get(p)
        if level is None or level.quantity != q:
            if stamp is None:
                stamp = view.stamp(book, now_ns)
            level = index[p] = PriceLevel(p, q, name, stamp)
        rows.append(level)
    return rows, stamp


def _fold(
    previous: list[PriceLevel], venue: str, rank: dict[str, int], fresh: list[PriceLevel], depth: int, bids: bool
) -> list[PriceLevel] | None:
    """The new merged top-``depth`` of one side from the previous one when only ``venue``
    changed: its old rows out, its fresh ones in. The result is exactly what a merge from scratch
    gives (equal prices of different venues in venue order), or None when that cannot be told
    without the other venues' rows beyond the previous cut-off (the caller rebuilds)."""
    r = rank[venue]
    # the venue's rows in the previous top-depth are the best of its rows then: when its best
    # rows now are the same and its next one still falls after the cut-off, nothing changed
    mine = [row for row in previous if row.exchange == venue]
    k = len(mine)
    stays = len(fresh) == k  # the venue's rows in the top-depth stay as many
    if len(fresh) > k and len(previous) >= depth:
        cut = previous[-1]
        price = fresh[k].price
        stays = ((price < cut.price) if bids else (price > cut.price)) or (price == cut.price and r > rank[cut.exchange])
    if stays:
        head = fresh[:k]
        if head == mine:
            return previous
        if [row.price for row in head] == [row.price for row in mine]:  # only quantities changed
            it = iter(head)
            return [next(it) if row.exchange == venue else row for row in previous]
    # equal prices in venue order without a key on rank: the rows of venues before this one,
    # then its fresh rows, then the rows of the venues after it, and a stable sort on price
    rows = [row for row in previous if rank[row.exchange] < r]
    rows += fresh
    rows += [row for row in previous if rank[row.exchange] > r]
    rows.sort(key=_price, reverse=bids)
    if len(previous) >= depth:
        # rows are ordered by (price, venue rank); the other venues' rows left out before all
        # come after the old cut-off row, so the new top-depth is exact when its last row is at
        # or before the old cut-off row
        if len(rows) < depth:
            return None
        last = rows[depth - 1]
        cut = previous[-1]
        if last is not cut:
            price = last.price
            if price != cut.price:
                if (price < cut.price) if bids else (price > cut.price):
                    return None
            elif rank[last.exchange] > rank[cut.exchange]:
                return None  # a left-out row at the cut-off price of a venue ranked between could belong
    del rows[depth:]
    return rows


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
        book.notify = True
        return view

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.attach(book).book_changed(book, receipt_ns)

    def book_state_changed(self, book: SymbolBook) -> None:
        self.attach(book).book_state_changed(book)

    def take_dirty(self) -> list[ConsolidatedView]:
        """The views changed since the last call, in the order they changed; each is clean
        again and its books tell it of their next change."""
        views = list(self.dirty)
        self.dirty.clear()
        for view in views:
            view.dirty = False
            for venue in view._sides:
                venue[1].notify = True
        return views
