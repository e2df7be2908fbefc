"""A generative order book: seeded random-walk order flow with realistic depth, and its truth.

:class:`GenBook` alone is one venue's book around a mid of its own (what the conformance
suite and the benchmark use). A :class:`Market` adds what a simulated market needs to look
like one: every pair has one latent price (a seeded geometric random walk with a realistic
volatility), and each venue's book follows it with its own tick size, typical spread, depth
profile, a small lag and a little noise of its own (:class:`VenueProfile`). Venues then
agree: crossings across venues are rare, short and small, and a venue's spread stays within
a few ticks. A configured dislocation (``dislocation_every_s``) now and then moves one
venue's price away by ``dislocation_bp`` and lets it decay, a real and sizeable opportunity.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..symbols import normalize_asset

__all__ = ["Change", "GenBook", "LatentPrice", "Market", "VenueProfile", "reference_price"]


class _Prices(dict[str, float]):
    """A price string's float, converted once (the fakes sort their books on every step)."""

    def __missing__(self, price: str) -> float:
        value = self[price] = float(price)
        return value


_PRICES = _Prices()
_log = math.log
_INV_6 = 1 / 6  # the level draw's rate: rng.expovariate(1 / 6) is -log(1 - random()) / _INV_6


@dataclass(frozen=True, slots=True)
class Change:
    """One level change as an exchange would send it: ``qty == "0"`` style zero deletes."""

    side: str  # "bid" | "ask"
    price: str
    qty: str


class GenBook:
    """A deterministic (seeded) L2 book that drifts.

    ``step()`` applies 1..``max_changes`` changes (size changes near the top, inserts,
    deletes, and a slow random walk of the mid) and returns them with wire-string prices and
    quantities formatted to ``price_precision``/``qty_precision``. ``bids``/``asks`` are the
    truth (price string -> quantity string) after every step; ``seq`` counts steps. Each side's
    prices are kept sorted beside them, so a step, ``top`` and the best prices do not sort or
    scan the book: a fake that puts a level into the truth itself does so with :meth:`add_level`.
    """

    def __init__(
        self,
        *,
        mid: float = 30000.0,
        tick: float = 0.01,
        price_precision: int = 2,
        qty_precision: int = 6,
        depth: int = 50,
        seed: int = 0,
        max_changes: int = 8,
        drift: float = 0.0,
        source: Callable[[], float] | None = None,
        spread_ticks: int = 2,
        size_unit: float = 1.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.tick = tick
        self.pp = price_precision
        self.qp = qty_precision
        self.depth = depth
        self.max_changes = max_changes
        self.mid = mid
        self.drift = drift  # mean relative move of the mid per step (demo venues drift apart)
        # following a market: the mid is read from ``source`` at every step, the best bid and
        # ask are kept ``spread_ticks`` apart around it (give or take a tick or two), far
        # levels are trimmed; ``size_unit`` scales every size (base units per level)
        self.source = source
        self.spread_ticks = max(1, spread_ticks)
        self.size_unit = size_unit
        if source is not None:
            self.mid = source()
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        #: each side's (price, price string), lowest first, always the keys of ``bids``/``asks``
        self._sorted: dict[str, list[tuple[float, str]]] = {"bid": [], "ask": []}
        self._zero = self.fmt_qty(0)  # every deletion's quantity (a level's is never below 10**-qp)
        self._min_qty = 10.0**-self.qp
        self.seq = 0
        self.recorded: set[tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]] = set()
        self._record_n = 0
        self._fill()

    # -- formatting ---------------------------------------------------------------------------
    def fmt_price(self, ticks: int) -> str:
        return "%.*f" % (self.pp, ticks * self.tick)

    def fmt_qty(self, qty: float) -> str:
        return "%.*f" % (self.qp, qty)

    def _qty(self, level: int) -> float:
        # rng.expovariate(1.0), inlined: the same draw and the same float
        base = (0.05 + -_log(1.0 - self.rng.random()) * (1 + level / 10)) * self.size_unit
        return max(base, self._min_qty)

    def _mid_ticks(self) -> int:
        return int(round(self.mid / self.tick))

    def _tops(self) -> tuple[int, int, int]:
        """(mid, best bid, best ask) in ticks where this book quotes now."""
        if self.source is None:
            m = self._mid_ticks()
            return m, m - 1, m + 1
        x = self.mid / self.tick
        bid_top = int(math.floor(x - self.spread_ticks / 2 + 0.5))
        return int(round(x)), bid_top, bid_top + self.spread_ticks

    def _fill(self) -> None:
        _, bid_top, ask_top = self._tops()
        for i in range(1, self.depth + 1):
            self.bids[self.fmt_price(bid_top + 1 - i)] = self.fmt_qty(self._qty(i))
            self.asks[self.fmt_price(ask_top - 1 + i)] = self.fmt_qty(self._qty(i))
        value = _PRICES.__getitem__
        self._sorted = {"bid": sorted((value(p), p) for p in self.bids), "ask": sorted((value(p), p) for p in self.asks)}

    def add_level(self, side: str, price: str, qty: str) -> bool:
        """Put a level into the truth outside a step (a fake whose snapshot gave clients levels
        the book did not have); one the side already has is left as it is. True if added."""
        book = self.bids if side == "bid" else self.asks
        if price in book:
            return False
        book[price] = qty
        insort(self._sorted[side], (_PRICES[price], price))
        return True

    # -- reading --------------------------------------------------------------------------------
    def best_bid(self) -> float:
        levels = self._sorted["bid"]
        if not levels:
            raise ValueError("the book has no bids")
        return levels[-1][0]

    def best_ask(self) -> float:
        levels = self._sorted["ask"]
        if not levels:
            raise ValueError("the book has no asks")
        return levels[0][0]

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Best ``n`` levels of each side as wire strings, best first."""
        bids, asks = self.bids, self.asks
        return (
            [(p, bids[p]) for _, p in self._sorted["bid"][-1 : -n - 1 : -1]] if n > 0 else [],
            [(p, asks[p]) for _, p in self._sorted["ask"][:n]] if n > 0 else [],
        )

    def truth(self, n: int | None = None) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The book as floats, best first (what a correct client book holds)."""
        bids, asks = self.top(n or max(len(self.bids), len(self.asks)))
        return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]

    def record(self, n: int) -> None:
        """From now on remember the top-``n`` of every state the book passes through, so a test
        can check that a client's book, whenever it changed, equalled one of them (``was_state``)."""
        self._record_n = n
        self._remember()

    def _remember(self) -> None:
        bids, asks = self.truth(self._record_n)
        self.recorded.add((tuple(bids), tuple(asks)))

    def was_state(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> bool:
        """Whether the book's top-n (``n`` as given to :meth:`record`) was ever the truth."""
        return (tuple(bids), tuple(asks)) in self.recorded

    # -- flow -------------------------------------------------------------------------------------
    def step(self) -> list[Change]:
        if len(_PRICES) > 200_000:
            _PRICES.clear()
        rng = self.rng
        self.seq += 1
        changes: dict[tuple[str, str], Change] = {}
        if self.drift:
            self.mid *= 1 + self.drift * rng.gauss(0, 1)
        if self.source is not None:
            self.mid = self.source()
        m, bid_top, ask_top = self._tops()
        # a bid at or above ``bid_limit`` (an ask at or below ``ask_limit``) is on the wrong side
        if self.source is None:
            bid_limit = (bid_top + 1) * self.tick
            ask_limit = (ask_top - 1) * self.tick
        else:  # half a tick: a price string's float may sit a hair either side of ticks * tick
            bid_limit = (bid_top + 0.5) * self.tick
            ask_limit = (ask_top - 0.5) * self.tick
        srt = self._sorted
        bids, asks = self.bids, self.asks
        depth = self.depth
        zero = self._zero
        fmt_qty, qty_of = self.fmt_qty, self._qty
        random_ = rng.random
        for _ in range(rng.randint(1, self.max_changes)):
            side = "bid" if random_() < 0.5 else "ask"
            book = bids if side == "bid" else asks
            r = random_()
            level = min(int(-_log(1.0 - random_()) / _INV_6), depth - 1) + 1  # rng.expovariate(1 / 6)
            if (r < 0.6 and book) or (r < 0.8 and len(book) > depth // 2):
                # r < 0.6: a size change at an existing level near the top; else a deletion there.
                # The level-th best price before this step (the books change after this loop).
                levels = srt[side]
                i = min(level - 1, len(levels) - 1)
                price = levels[-1 - i][1] if side == "bid" else levels[i][1]
                qty = fmt_qty(qty_of(level)) if r < 0.6 else zero
            else:
                ticks = bid_top + 1 - level if side == "bid" else ask_top - 1 + level
                price = self.fmt_price(ticks)
                qty = fmt_qty(qty_of(level))
            changes[(side, price)] = Change(side, price, qty)
        # keep the book uncrossed after a mid move: remove levels on the wrong side of the mid
        # (in the books' own order, as they were before the sorted sides were kept)
        value = _PRICES.__getitem__
        if srt["bid"] and srt["bid"][-1][0] >= bid_limit:
            for price in [p for p in bids if value(p) >= bid_limit]:
                changes[("bid", price)] = Change("bid", price, zero)
        if srt["ask"] and srt["ask"][0][0] <= ask_limit:
            for price in [p for p in asks if value(p) <= ask_limit]:
                changes[("ask", price)] = Change("ask", price, zero)
        if self.source is not None:
            self._quote_top(changes, bid_top, ask_top)
        out = []
        for ch in changes.values():
            side, price = ch.side, ch.price
            book = bids if side == "bid" else asks
            if ch.qty == zero:
                if price not in book:
                    continue
                del book[price]
                levels = srt[side]
                del levels[bisect_left(levels, (value(price), price))]
            else:
                if side == "bid" and value(price) >= bid_limit:
                    continue
                if side == "ask" and value(price) <= ask_limit:
                    continue
                if price not in book:
                    insort(srt[side], (value(price), price))
                book[price] = ch.qty
            out.append(ch)
        if self.source is not None:
            out.extend(self._trim())
        # refill so the book never empties
        tick = self.tick
        for side, book, sign in (("bid", bids, -1), ("ask", asks, 1)):
            while len(book) < max(2, depth // 2):
                levels = srt[side]  # the level furthest from the mid is at one end of its side
                far = max(abs(round(levels[0][0] / tick) - m), abs(round(levels[-1][0] / tick) - m)) if levels else 0
                ticks = m + sign * (far + 1)
                price = self.fmt_price(ticks)
                qty = fmt_qty(qty_of(depth))
                book[price] = qty
                insort(levels, (value(price), price))
                out.append(Change(side, price, qty))
        if self._record_n:
            self._remember()
        return out

    def _quote_top(self, changes: dict[tuple[str, str], Change], bid_top: int, ask_top: int) -> None:
        """A market maker's quotes: when the best bid (ask) after this step's changes would be
        more than a tick away from where the venue quotes, add levels from the quote outwards
        (at most a few) so the venue's spread stays within a few ticks and its book has no hole
        at the top after the price moved."""
        tick = self.tick
        zero = self._zero
        value = _PRICES.__getitem__
        for side, book, top, sign in (("bid", self.bids, bid_top, -1), ("ask", self.asks, ask_top, 1)):
            # first, cheaply, the best price this side will have (at or inside where the venue
            # quotes): the book's best that this step does not delete, or a change's if better.
            # Close enough to the quote, nothing is added; else the whole side is read below.
            best = None
            for v, p in reversed(self._sorted[side]) if side == "bid" else self._sorted[side]:
                t = round(v / tick)
                if t > bid_top if side == "bid" else t < ask_top:
                    continue
                ch = changes.get((side, p))
                if ch is None or ch.qty != zero:
                    best = t
                    break
            for (sd, _), ch in changes.items():
                if sd == side and ch.qty != zero:
                    t = round(value(ch.price) / tick)
                    if side == "bid" and t <= bid_top and (best is None or t > best):
                        best = t
                    elif side == "ask" and t >= ask_top and (best is None or t < best):
                        best = t
            if best is not None and abs(best - top) <= 1:
                continue
            live = {
                round(float(p) / self.tick)
                for p in book
                if (changes.get((side, p)) is None or float(changes[(side, p)].qty) != 0)
            }
            live.update(round(float(ch.price) / self.tick) for (sd, _), ch in changes.items() if sd == side and float(ch.qty) != 0)
            live = {t for t in live if (t <= bid_top if side == "bid" else t >= ask_top)}
            best = max(live, default=None) if side == "bid" else min(live, default=None)
            if best is not None and abs(best - top) <= 1:
                continue
            for i in range(4):
                ticks = top + sign * i
                if ticks in live:
                    break
                price = self.fmt_price(ticks)
                changes[(side, price)] = Change(side, price, self.fmt_qty(self._qty(i + 1)))

    def _trim(self) -> list[Change]:
        """Drop the levels furthest from the mid beyond twice the depth (a trending market would
        otherwise leave an ever longer tail behind)."""
        out = []
        for side, book in (("bid", self.bids), ("ask", self.asks)):
            extra = len(book) - 2 * self.depth
            if extra <= 0:
                continue
            levels = self._sorted[side]
            if side == "bid":  # furthest first
                gone = levels[:extra]
                del levels[:extra]
            else:
                gone = levels[: -extra - 1 : -1]
                del levels[-extra:]
            for _, price in gone:
                del book[price]
                out.append(Change(side, price, self._zero))
        return out

    def deep_snapshot(self, levels: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """A snapshot padded far beyond the live depth (for oversize-frame faults): extra levels
        are far from the mid and carry the real book at the top."""
        bids, asks = self.top(self.depth)
        m = self._mid_ticks()
        # start beyond every existing level: a padded price must never repeat a real one
        far = max([self.depth + 10] + [abs(round(float(p) / self.tick) - m) + 1 for p in (*self.bids, *self.asks)])
        extra_b = [(self.fmt_price(m - far - i), self.fmt_qty(1)) for i in range(levels)]
        extra_a = [(self.fmt_price(m + far + i), self.fmt_qty(1)) for i in range(levels)]
        return bids + extra_b, asks + extra_a



# -- a market: one latent price per pair, venues that follow it -----------------------------------

#: plausible prices in USD by base asset (a simulated market starts there)
REFERENCE_USD: dict[str, float] = {
    "BTC": 60000.0, "ETH": 3000.0, "SOL": 150.0, "BNB": 580.0, "XRP": 0.6, "DOGE": 0.15, "ADA": 0.45,
    "AVAX": 35.0, "DOT": 7.0, "LINK": 15.0, "LTC": 80.0, "BCH": 450.0, "TRX": 0.12, "MATIC": 0.7,
    "POL": 0.7, "ATOM": 8.0, "UNI": 8.0, "XLM": 0.11, "ETC": 25.0, "FIL": 5.0, "APT": 9.0, "ARB": 1.0,
    "OP": 2.0, "NEAR": 5.0, "SHIB": 0.00002, "PEPE": 0.00001, "TON": 6.0, "SUI": 1.5,
    "USD": 1.0, "USDT": 1.0, "USDC": 1.0, "DAI": 1.0, "EUR": 1.08, "GBP": 1.27,
}
_USD_LIKE = frozenset({"USD", "USDT", "USDC", "DAI"})
_YEAR_S = 365.25 * 24 * 3600


def reference_price(base: str, quote: str) -> float | None:
    """A plausible price of ``base`` in ``quote`` (``None`` when either is unknown)."""
    b = REFERENCE_USD.get(base.upper())
    q = REFERENCE_USD.get(quote.upper())
    if b is None or q is None:
        return None
    return b / q


def nice_tick(x: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``x``."""
    e = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10.0**e <= x * (1 + 1e-9):
            return m * 10.0**e
    return 10.0**e  # pragma: no cover


def digits(tick: float) -> int:
    return max(0, -int(math.floor(math.log10(tick) + 1e-9)))


class LatentPrice:
    """One pair's fair price: a seeded geometric random walk sampled every ``step_s`` of
    ``clock`` time (``volatility`` is annualised, 0.5 = 50 % a year, about BTC's)."""

    def __init__(
        self,
        start: float,
        *,
        volatility: float = 0.5,
        step_s: float = 0.05,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        history_s: float = 2.0,
    ) -> None:
        self.clock = clock
        self.step_s = step_s
        self.sigma = volatility * math.sqrt(step_s / _YEAR_S)
        self.rng = random.Random(seed)
        self.t0 = clock()
        self.n = 0
        self.path: deque[float] = deque([start], maxlen=max(2, int(history_s / step_s) + 2))

    def at(self, t: float) -> float:
        """The price at time ``t`` (for the recent past: a lagging venue's view)."""
        n = int((t - self.t0) / self.step_s)
        while self.n < n:
            last = self.path[-1]
            self.path.append(last * math.exp(self.sigma * self.rng.gauss(0, 1) - self.sigma**2 / 2))
            self.n += 1
        back = self.n - max(n, self.n - len(self.path) + 1)
        return self.path[-1 - back]

    def now(self) -> float:
        return self.at(self.clock())


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """How one venue quotes a latent price.

    ``tick_bp``: its tick size in basis points of the price (rounded down to 1, 2 or 5 times
    a power of ten); ``spread_bp``: its typical best bid/ask distance (whole ticks, at least
    one); ``size``: multiplier of level sizes (deeper or thinner books); ``lag_s``: how far
    behind the latent price it quotes; ``noise_bp``: the standard deviation of its own slowly
    mean-reverting deviation from the latent price.
    """

    tick_bp: float = 0.5
    spread_bp: float = 2.0
    size: float = 1.0
    lag_s: float = 0.0
    noise_bp: float = 0.05

    @classmethod
    def for_venue(cls, venue: str, seed: int = 0) -> "VenueProfile":
        """A stable, plausible profile per venue name (seeded: the same every run)."""
        digest = hashlib.sha256(f"{seed}:{venue}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        return cls(
            tick_bp=rng.choice((0.2, 0.5, 0.5, 1.0)),
            spread_bp=rng.uniform(0.8, 2.0),
            size=rng.choice((0.5, 1.0, 1.0, 2.0, 3.0)),
            lag_s=rng.choice((0.0, 0.0, 0.02, 0.05)),
            noise_bp=rng.uniform(0.02, 0.06),
        )


@dataclass(slots=True)
class _Dislocation:
    start: float
    venue: str
    pair: str
    bp: float


class Market:
    """Latent prices per pair and the venues that quote them (see the module docstring).

    ``book(venue, base, quote, ...)`` builds a :class:`GenBook` that follows the pair's
    latent price the way ``venue`` would; its tick and precision are in ``book.tick``/
    ``book.pp``. USD, USDT, USDC and DAI quotes share one latent price per base asset (so
    merged quote groups agree); a pair without a reference price starts at ``mid``.

    ``dislocation_every_s`` (mean seconds between dislocations, ``None``: never) moves one
    random venue of one pair by about ``dislocation_bp`` (either way), fading linearly to
    nothing over ``dislocation_duration_s``: a cross-venue opportunity larger than typical
    taker fees for about half of that time.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        volatility: float = 0.4,
        step_s: float = 0.05,
        dislocation_every_s: float | None = None,
        dislocation_bp: float = 40.0,
        dislocation_duration_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seed = seed
        self.volatility = volatility
        self.step_s = step_s
        self.clock = clock
        self.dislocation_every_s = dislocation_every_s
        self.dislocation_bp = dislocation_bp
        self.dislocation_duration_s = dislocation_duration_s
        self.latent: dict[str, LatentPrice] = {}
        self.profiles: dict[str, VenueProfile] = {}
        self.dislocations: list[_Dislocation] = []
        self._followers: list[tuple[str, str]] = []  # (venue, pair key)
        self._rng = random.Random(seed * 7919 + 1)
        self._next_dislocation = self._schedule(clock())

    @staticmethod
    def pair_key(base: str, quote: str) -> str:
        base, quote = normalize_asset(base), normalize_asset(quote)
        return f"{base}/USD" if quote in _USD_LIKE else f"{base}/{quote}"

    def profile(self, venue: str) -> VenueProfile:
        if venue not in self.profiles:
            self.profiles[venue] = VenueProfile.for_venue(venue, self.seed)
        return self.profiles[venue]

    def price(self, base: str, quote: str, *, mid: float | None = None) -> LatentPrice:
        """The latent price of a pair (created at its reference price, else at ``mid``)."""
        key = self.pair_key(base, quote)
        lp = self.latent.get(key)
        if lp is None:
            base, quote = normalize_asset(base), normalize_asset(quote)
            start = reference_price(base, "USD" if quote in _USD_LIKE else quote) or mid
            if start is None:
                raise KeyError(f"no reference price for {base}/{quote}")
            digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
            lp = LatentPrice(
                start,
                volatility=self.volatility,
                step_s=self.step_s,
                seed=int.from_bytes(digest[:8], "big"),
                clock=self.clock,
            )
            self.latent[key] = lp
        return lp

    def book(
        self,
        venue: str,
        base: str,
        quote: str,
        *,
        mid: float | None = None,
        qty_precision: int = 8,
        depth: int = 50,
        seed: int = 0,
        max_changes: int = 8,
    ) -> GenBook:
        """A book of ``base/quote`` on ``venue`` that follows the pair's latent price."""
        lp = self.price(base, quote, mid=mid)
        prof = self.profile(venue)
        start = lp.now()
        tick = nice_tick(start * prof.tick_bp / 1e4)
        spread_ticks = max(1, round(start * prof.spread_bp / 1e4 / tick))
        key = self.pair_key(base, quote)
        self._followers.append((venue, key))
        noise_rng = random.Random(seed * 31 + 17)
        state = {"x": 0.0, "n": -1}
        phi = 0.98  # the venue's own deviation reverts within a few seconds

        def source() -> float:
            now = self.clock()
            n = int((now - lp.t0) / self.step_s)
            while state["n"] < n:  # AR(1) noise in bp, one step per latent step
                state["x"] = phi * state["x"] + prof.noise_bp * math.sqrt(1 - phi * phi) * noise_rng.gauss(0, 1)
                state["n"] = n if state["n"] < n - 1000 else state["n"] + 1
            return lp.at(now - prof.lag_s) * (1 + (state["x"] + self._dislocation_bp(venue, key, now)) / 1e4)

        return GenBook(
            mid=start,
            tick=tick,
            price_precision=digits(tick),
            qty_precision=qty_precision,
            depth=depth,
            seed=seed,
            max_changes=max_changes,
            source=source,
            spread_ticks=spread_ticks,
            size_unit=prof.size * min(1e9, 30000.0 / start),
        )

    # -- dislocations ------------------------------------------------------------------------------
    def _schedule(self, after: float) -> float:
        if not self.dislocation_every_s:
            return math.inf
        return after + self._rng.expovariate(1 / self.dislocation_every_s)

    def dislocate(self, venue: str, base: str, quote: str, bp: float, *, at: float | None = None) -> None:
        """Move ``venue``'s price of the pair by ``bp`` basis points now; it decays by itself."""
        self.dislocations.append(_Dislocation(self.clock() if at is None else at, venue, self.pair_key(base, quote), bp))

    def _dislocation_bp(self, venue: str, key: str, now: float) -> float:
        while now >= self._next_dislocation and self._followers:
            venue_, key_ = self._rng.choice(self._followers)
            bp = self._rng.choice((-1, 1)) * self.dislocation_bp * self._rng.uniform(0.8, 1.25)
            self.dislocations.append(_Dislocation(self._next_dislocation, venue_, key_, bp))
            self._next_dislocation = self._schedule(self._next_dislocation)
        if not self.dislocations:
            return 0.0
        total = 0.0
        duration = self.dislocation_duration_s
        self.dislocations = [d for d in self.dislocations if now - d.start < duration]
        for d in self.dislocations:
            if d.venue == venue and d.pair == key and now >= d.start:
                total += d.bp * (1 - (now - d.start) / duration)  # arbitraged away within the duration
        return total
