"""The ``arbitrage`` analyzer: cross-exchange opportunities after taker fees, sized by depth.

For every ordered pair of venues (buy on A, sell on B) whose books are LIVE and fresher than
``max_leg_age_ms``, it walks A's asks up against B's bids level by level while the next unit
is still profitable after both taker fees. Passes are incremental: only the pairs that involve
a venue whose book changed since the last pass are looked at again, and of those only the ones
where B's best bid after its fee beats A's best ask after its fee and whose last walk read a
level (price or size) that changed are walked again; the others keep their last result, which
is exactly what a walk would find. The result's ``volume`` is the size that stays profitable,
``buy_price``/``sell_price`` are volume-weighted over that size, and ``profit_percentage`` is
net of fees (``gross_spread_percentage`` before them; the fees used are in
``buy_fee``/``sell_fee``). Each opportunity is reported as ``opened``, then
``updated`` when its profit or size moves, then ``closed`` with its duration and peak; the
events of one pass come best first (a venue that jumps away opens several opportunities at
once, one per other venue, all sharing that leg). Prices are rounded to the pair's price
decimals (the most any leg's book has used), sizes to 8 decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, Field

from ...analyzer import Analyzer, AnalyzerConfig
from ...book import BookSide, SymbolBook
from ...consolidated import ConsolidatedView
from ...models import ArbitrageOpportunity, BookState
from ...sink import Event
from ._decimals import places as _places

__all__ = ["ArbitrageAnalyzer", "ArbitrageConfig", "Leg", "walk"]

_LIVE = BookState.LIVE
_INF = float("inf")
_NAN = float("nan")
Version = tuple[int, int, int]  # a venue's book version in its view (ConsolidatedView.version)


class ArbitrageConfig(AnalyzerConfig):
    taker_fees: dict[str, float] = Field(default_factory=dict, description="exchange -> taker fee as a fraction (0.001 = 0.1%)")
    default_taker_fee: float = Field(0.001, ge=0, lt=1)
    min_profit_percentage: float = Field(
        0.05, ge=0, description="report opportunities above this net profit, in percent after fees (0.05 = 5 bp)"
    )
    max_leg_age_ms: float = Field(2000.0, gt=0, description="legs whose book is older are rejected")
    max_levels: int = Field(50, ge=1, description="levels walked per side")
    update_threshold: float = Field(0.05, ge=0, description="relative change of profit or volume that is reported as 'updated'")


@dataclass(slots=True)
class Leg:
    volume: float
    buy_price: float  # volume-weighted
    sell_price: float  # volume-weighted
    profit: float  # quote currency, after fees
    profit_percentage: float


def walk(
    asks: list[tuple[float, float]], bids: list[tuple[float, float]], buy_fee: float, sell_fee: float
) -> Leg | None:
    """Walk asks (ascending) against bids (descending) while the marginal unit is profitable."""
    i = j = 0
    rem_a = asks[0][1] if asks else 0.0
    rem_b = bids[0][1] if bids else 0.0
    volume = cost = proceeds = 0.0
    while i < len(asks) and j < len(bids):
        pa = asks[i][0]
        pb = bids[j][0]
        if pb * (1 - sell_fee) <= pa * (1 + buy_fee):
            break
        q = min(rem_a, rem_b)
        volume += q
        cost += q * pa
        proceeds += q * pb
        rem_a -= q
        rem_b -= q
        if rem_a <= 1e-15:
            i += 1
            if i < len(asks):
                rem_a = asks[i][1]
        if rem_b <= 1e-15:
            j += 1
            if j < len(bids):
                rem_b = bids[j][1]
    if volume <= 0:
        return None
    paid = cost * (1 + buy_fee)
    profit = proceeds * (1 - sell_fee) - paid
    return Leg(volume, cost / volume, proceeds / volume, profit, profit / paid * 100)


def _read_tops(sides: dict[str, tuple[BookSide, BookSide]], books: dict[str, SymbolBook], name: str) -> tuple[list[float], list[float], tuple[float, float]]:
    """A venue's ask and bid prices (its sides kept in ``sides``) and its best (ask, bid), NaN
    for a side with none (the same NaN object: equal tuples when nothing moved)."""
    book = books[name].book
    asks = book.asks
    bids = book.bids
    sides[name] = (asks, bids)
    ak = asks.keys
    bk = bids.keys
    return ak, bk, (ak[0] if ak else _NAN, bk[-1] if bk else _NAN)


def _walk_sides(asks: BookSide, bids: BookSide, buy_fee: float, sell_fee: float, n: int) -> Leg | None:
    """:func:`walk` straight on two book sides (asks ascending from the lowest, bids from the
    highest), at most ``n`` levels each, without building level lists: it usually stops after a
    few levels, and at once when the best bid after the fee cannot beat the best ask."""
    return _walk_read(asks, bids, 1 + buy_fee, 1 - sell_fee, n)[0]


def _walk_read(
    asks: BookSide, bids: BookSide, buy_mult: float, sell_mult: float, n: int
) -> tuple[Leg | None, int, int]:
    """:func:`_walk_sides` with the fee multipliers (``1 + buy_fee``, ``1 - sell_fee``), also
    returning how many levels of each side the result depends on: ``asks.keys[:ia]`` and
    ``bids.keys[-ib:]`` with their sizes (one more than were read when a side ran out below ``n``
    levels, so a side that grows does not match any more)."""
    ak = asks.keys
    bk = bids.keys
    if not ak or not bk:
        return None, 1, 1
    pa = ak[0]
    pb = bk[-1]
    if pb * sell_mult <= pa * buy_mult:
        return None, 1, 1  # early stop: not even the best levels are profitable after fees
    na = len(ak)
    if na > n:
        na = n
    nb = len(bk)
    last = nb - 1  # bids are read from the end
    if nb > n:
        nb = n
    al = asks.levels
    bl = bids.levels
    i = j = 0
    rem_a = al[pa]
    rem_b = bl[pb]
    volume = cost = proceeds = 0.0
    while True:  # one step per level used up: the smaller remainder of the two sides
        if rem_a < rem_b:
            q = rem_a
            volume += q
            cost += q * pa
            proceeds += q * pb
            rem_b -= q
            i += 1
            if i >= na:
                break
            pa = ak[i]
            rem_a = al[pa]
            if rem_b <= 1e-15:
                j += 1
                if j >= nb:
                    break
                pb = bk[last - j]
                rem_b = bl[pb]
        else:
            q = rem_b
            volume += q
            cost += q * pa
            proceeds += q * pb
            rem_a -= q
            if rem_a <= 1e-15:
                i += 1
                if i >= na:
                    break
                pa = ak[i]
                rem_a = al[pa]
            j += 1
            if j >= nb:
                break
            pb = bk[last - j]
            rem_b = bl[pb]
        if pb * sell_mult <= pa * buy_mult:
            break
    i += 1
    j += 1
    if volume <= 0:
        return None, (i if i < n else n), (j if j < n else n)
    paid = cost * buy_mult
    profit = proceeds * sell_mult - paid
    return Leg(volume, cost / volume, proceeds / volume, profit, profit / paid * 100), (i if i < n else n), (j if j < n else n)


def _memo(leg: Leg | None, asks: BookSide, ask_version: Version, ask_n: int,
          bids: BookSide, bid_version: Version, bid_n: int) -> list[Any]:  # fmt: skip
    """One ordered venue pair's last walk, as a list (built on every walk: kept cheap), by index:
    0 the result (``leg``: profitable, else None); 1 the buy venue's book version then, 2 ``n``,
    3 its first ``n`` ask prices, 4 a getter reading their sizes from ``levels`` in one call,
    5 those sizes; 6-10 the same for the sell venue's bids (``keys[-n:]``). The result still
    holds while each side's version is the same or its first ``n`` levels are."""
    ask_prices = asks.keys[:ask_n]
    ask_get = itemgetter(*ask_prices) if ask_prices else _nothing
    bid_prices = bids.keys[-bid_n:]
    bid_get = itemgetter(*bid_prices) if bid_prices else _nothing
    return [leg, ask_version, ask_n, ask_prices, ask_get, ask_get(asks.levels),
            bid_version, bid_n, bid_prices, bid_get, bid_get(bids.levels)]  # fmt: skip


def _nothing(levels: dict[float, float]) -> object:
    return None


@dataclass(slots=True)
class _Open:
    opened_at: float
    last: ArbitrageOpportunity
    peak_pct: float
    peak_volume: float


@dataclass(slots=True)
class _Walked:
    """One view's state between passes.

    ``versions``: the fresh venues' book versions at the last pass. Per venue: ``sides``, its
    asks and bids; ``bests``, its best ask and bid (the same NaN object when a side is empty);
    ``tops``, those after its taker fee (ask x (1 + fee), bid x (1 - fee); +inf/-inf when
    empty); ``places``, their decimal places; ``crossing``, its ordered pairs whose tops cross
    (the only ones that can be profitable). Per ordered pair: ``legs``, the profitable ones now;
    ``memos``, the last walk (:func:`_memo`). ``recomputed``/``dropped``: legs walked again and
    found, legs gone, since ``on_update`` last reported."""

    versions: dict[str, Version] = field(default_factory=dict)
    sides: dict[str, tuple[BookSide, BookSide]] = field(default_factory=dict)
    bests: dict[str, tuple[float, float]] = field(default_factory=dict)
    tops: dict[str, tuple[float, float]] = field(default_factory=dict)
    places: dict[str, tuple[int, int]] = field(default_factory=dict)
    crossing: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    legs: dict[tuple[str, str], Leg] = field(default_factory=dict)
    memos: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # see _memo
    recomputed: set[tuple[str, str]] = field(default_factory=set)
    dropped: set[tuple[str, str]] = field(default_factory=set)


class ArbitrageAnalyzer(Analyzer):
    name = "arbitrage"
    Config = ArbitrageConfig

    def __init__(self, config: AnalyzerConfig, emit: Callable[[Event], None], settings: BaseModel) -> None:
        super().__init__(config, emit, settings)
        assert isinstance(config, ArbitrageConfig)
        self.cfg: ArbitrageConfig = config
        self.open: dict[tuple[str, str, str], _Open] = {}
        self.views: dict[str, ConsolidatedView] = {}
        self.walked: dict[str, _Walked] = {}
        self._fees: dict[str, float] = {}
        self._decimals: dict[str, int] = {}  # pair -> the most price decimals its legs have used
        limit_ns = config.max_leg_age_ms * 1e6
        # ages are whole nanoseconds: "age <= limit" is "age <= floor(limit)", compared exactly as ints
        self._limit_ns: float = int(limit_ns) if limit_ns < _INF else limit_ns
        self._max_levels = config.max_levels
        self._minimum = config.min_profit_percentage
        self.walks = 0  # ordered venue pairs looked at again (only the pairs of changed venues are)
        self.deep_walks = 0  # of those, walked level by level (see find())

    def fee(self, venue: str) -> float:
        exchange = venue.partition(":")[0]
        return self.cfg.taker_fees.get(exchange, self.cfg.default_taker_fee)

    def find(self, view: ConsolidatedView, now_ns: int | None = None) -> dict[tuple[str, str, str], Leg]:
        """Every opportunity in this view now (legs fresh and LIVE, above the minimum profit).

        Incremental: only the ordered venue pairs that involve a venue whose book changed (or
        that became fresh) since the last pass over this view are looked at again; the others
        keep their last result. Of those, a pair is walked level by level only when its best
        prices cross after the fees and the levels its last walk read (prices and sizes) are
        not all the same any more. A leg whose venue went stale or left LIVE is dropped."""
        legs = self._pass(view, now_ns).legs
        pair = view.pair
        return {(pair, buy, sell): leg for (buy, sell), leg in legs.items()}

    def _pass(self, view: ConsolidatedView, now_ns: int | None = None) -> _Walked:
        now_ns = now_ns or view.clock.monotonic_ns()
        since = now_ns - self._limit_ns  # fresh: seen at or after this
        stamp_of = view.stamps.get
        walked = self.walked.get(view.pair)
        if walked is None:
            walked = self.walked[view.pair] = _Walked()
        versions = walked.versions
        changed: list[str] = []
        joined: list[str] = []
        left: list[str] = []
        fresh = 0
        for name, book in view.venues.items():
            if book.state is _LIVE:
                updated = book.last_update_ns
                if updated and (updated >= since or book.alive_ns >= since):  # seen_ns() within max_leg_age_ms
                    fresh += 1
                    version = (stamp_of(book, 0), book.messages, book.level_updates)  # view.version(book), inlined
                    old = versions.get(name)
                    if old != version:
                        versions[name] = version
                        changed.append(name)
                        if old is None:
                            joined.append(name)
                    continue
            if name in versions:
                left.append(name)
        if len(versions) - len(left) != fresh:  # a venue left the view
            left += [name for name in versions if name not in view.venues]
        if left:  # stale, not LIVE or gone: its legs go
            for name in left:
                del versions[name]
            legs = walked.legs
            dropped = walked.dropped
            for key in [k for k in legs if k[0] not in versions or k[1] not in versions]:
                del legs[key]
                dropped.add(key)
        if changed:
            self._walk_changed(walked, view.venues, changed, joined)
        return walked

    def _walk_changed(self, walked: _Walked, books: dict[str, SymbolBook], changed: list[str], joined: list[str]) -> None:
        """Look again at every ordered pair with a venue in ``changed``: first the venues whose
        best prices moved (or that just became fresh) against every other venue, then the
        others, whose pairs can only be profitable where their tops crossed before."""
        sides = walked.sides
        bests = walked.bests
        crossing = walked.crossing
        versions = walked.versions
        if not joined and len(changed) == 1:  # the usual pass: one venue changed below its best prices
            venue = changed[0]
            if _read_tops(sides, books, venue)[2] == bests[venue]:
                self.walks += 2 * (len(versions) - 1)
                self.deep_walks += self._look_crossed(walked, venue, ())
                return
        fees = self._fees
        tops = walked.tops
        for name in joined:
            if name not in crossing:
                crossing[name] = set()
        moved: list[str] = []
        still: list[str] = []
        for name in changed:
            ak, bk, best = _read_tops(sides, books, name)
            if best != bests.get(name) or name in joined:
                bests[name] = best
                fee = fees.get(name)
                if fee is None:
                    fee = fees[name] = self.fee(name)
                tops[name] = (ak[0] * (1 + fee) if ak else _INF, bk[-1] * (1 - fee) if bk else -_INF)
                walked.places[name] = (_places(ak[0]) if ak else 0, _places(bk[-1]) if bk else 0)
                moved.append(name)
            else:
                still.append(name)
        recheck = self._recheck
        deep = 0
        done: set[str] = set()
        for venue in moved:
            ask_top, bid_top = tops[venue]
            mine = crossing[venue]
            for other in versions:
                if other == venue or other in done:
                    continue
                other_ask, other_bid = tops[other]
                theirs = crossing[other]
                deep += recheck(walked, (venue, other), other_bid > ask_top, mine, theirs)  # buy here, sell there
                deep += recheck(walked, (other, venue), bid_top > other_ask, mine, theirs)  # buy there, sell here
            done.add(venue)
        for venue in still:  # its tops did not move: only the pairs that crossed can be profitable
            deep += self._look_crossed(walked, venue, done)
            done.add(venue)
        k = len(changed)
        self.walks += k * (2 * (len(versions) - 1) - (k - 1))  # each ordered pair with a changed venue, once
        self.deep_walks += deep

    def _recheck(self, walked: _Walked, key: tuple[str, str], crosses: bool, mine: set[tuple[str, str]], theirs: set[tuple[str, str]]) -> int:
        """One ordered pair (buy, sell) of a venue whose tops moved: walked when its tops cross
        after fees (``crosses``), else where a walk would stop at once: its leg goes."""
        if crosses:
            if key not in mine:
                mine.add(key)
                theirs.add(key)
            return self._look(walked, key, key[0], key[1])
        if key in mine:
            mine.discard(key)
            theirs.discard(key)
        legs = walked.legs
        if key in legs:
            del legs[key]
            walked.dropped.add(key)
        return 0

    def _look_crossed(self, walked: _Walked, venue: str, skip: Collection[str]) -> int:
        """The pairs of a venue whose tops did not move that crossed before (the only ones that
        can be profitable), with fresh venues not in ``skip``."""
        versions = walked.versions
        look = self._look
        deep = 0
        for key in walked.crossing[venue]:
            buy, sell = key
            other = sell if buy == venue else buy
            if other in versions and other not in skip:
                deep += look(walked, key, buy, sell)
        return deep

    def _look(self, walked: _Walked, key: tuple[str, str], buy: str, sell: str) -> int:
        """One ordered pair whose tops cross: keep its last walk if the levels it read did not
        change, else walk it again. Returns 1 when it walked."""
        asks = walked.sides[buy][0]
        bids = walked.sides[sell][1]
        versions = walked.versions
        ask_version = versions[buy]
        bid_version = versions[sell]
        memo = walked.memos.get(key)
        if memo is not None:
            if ask_version == memo[1] or (asks.keys[: memo[2]] == memo[3] and memo[4](asks.levels) == memo[5]):
                memo[1] = ask_version
                if bid_version == memo[6] or (bids.keys[-memo[7] :] == memo[8] and memo[9](bids.levels) == memo[10]):
                    memo[6] = bid_version
                    leg = memo[0]
                    if leg is not None and key not in walked.legs:  # back after a venue was stale or the tops uncrossed
                        walked.legs[key] = leg
                        walked.recomputed.add(key)
                    return 0
        fees = self._fees
        leg, ia, ib = _walk_read(asks, bids, 1 + fees[buy], 1 - fees[sell], self._max_levels)
        if leg is not None and not leg.profit_percentage > self._minimum:
            leg = None
        walked.memos[key] = _memo(leg, asks, ask_version, ia, bids, bid_version, ib)
        if leg is not None:
            walked.legs[key] = leg
            walked.recomputed.add(key)
        elif key in walked.legs:
            del walked.legs[key]
            walked.dropped.add(key)
        return 1

    def on_update(self, view: ConsolidatedView, now: float) -> None:
        pair = view.pair
        self.views[pair] = view
        walked = self._pass(view)
        recomputed = walked.recomputed
        dropped = walked.dropped
        if not recomputed and not dropped:
            return
        legs = walked.legs
        opened = self.open
        ts: datetime | None = None
        if recomputed:
            # only the legs walked again since the last report can have opened or moved
            out: list[ArbitrageOpportunity] = []
            th = self.cfg.update_threshold
            for buy_sell in recomputed:
                leg = legs.get(buy_sell)
                if leg is None:
                    continue
                key = (pair, buy_sell[0], buy_sell[1])
                state = opened.get(key)
                if state is None:
                    ts = ts or datetime.fromtimestamp(now, timezone.utc)
                    opp = self._opportunity(walked, key, leg, ts, "opened", 0.0, leg.profit_percentage, leg.volume)
                    opened[key] = _Open(now, opp, leg.profit_percentage, leg.volume)
                    out.append(opp)
                    continue
                pct = leg.profit_percentage
                volume = leg.volume
                if pct > state.peak_pct:
                    state.peak_pct = pct
                if volume > state.peak_volume:
                    state.peak_volume = volume
                last = state.last
                if abs(pct - last.profit_percentage) > th * abs(last.profit_percentage) or abs(volume - last.volume) > th * last.volume:
                    ts = ts or datetime.fromtimestamp(now, timezone.utc)
                    duration = (now - state.opened_at) * 1000
                    opp = self._opportunity(walked, key, leg, ts, "updated", duration, state.peak_pct, state.peak_volume, last)
                    state.last = opp
                    out.append(opp)
            recomputed.clear()
            if len(out) > 1:  # a burst (one venue against several): best first (then by venues: replays stay identical)
                out.sort(key=lambda o: (-o.profit_percentage, o.buy_exchange, o.sell_exchange))
            emit = self.emit
            for opp in out:
                emit(Event("arbitrage", opp, now))
        if dropped:
            # only a dropped leg can close an opportunity (every open one has its leg in ``legs``)
            gone = [k for k in ((pair, b, s) for b, s in dropped) if k in opened and (k[1], k[2]) not in legs]
            dropped.clear()
            if gone:
                ts = ts or datetime.fromtimestamp(now, timezone.utc)
                for key in sorted(gone, key=lambda k: (-opened[k].last.profit_percentage, k)):
                    self._close(key, now, ts)

    def _opportunity(
        self, walked: _Walked, key: tuple[str, str, str], leg: Leg, ts: datetime, event: Literal["opened", "updated"],
        duration_ms: float, peak_pct: float, peak_volume: float, last: ArbitrageOpportunity | None = None,
    ) -> ArbitrageOpportunity:  # fmt: skip
        """The event for ``leg``. Prices are rounded to the pair's price decimals: the most the
        best prices of the legs reported so far have needed (book prices sit on the venues' ticks;
        the volume-weighted prices do not): the buy venue's best ask and the sell venue's best bid
        now, their places computed when they moved. ``last``: this opportunity's last event, whose
        venues, pair and fees an update keeps: copied with the rest replaced, a third of the cost
        of building one."""
        pair, buy, sell = key
        decimals = self._decimals
        d = decimals.get(pair, 0)
        places = walked.places
        p = places[buy][0]
        if p > d:
            d = p
        p = places[sell][1]
        if p > d:
            d = p
        decimals[pair] = d
        if last is None:  # what stays for the opportunity's life (its later events copy it)
            fees = self._fees
            last = ArbitrageOpportunity(
                buy_exchange=buy, sell_exchange=sell, symbol=pair, buy_price=0.0, sell_price=0.0, profit_percentage=0.0,
                volume=0.0, timestamp=ts, buy_fee=fees[buy], sell_fee=fees[sell],
            )  # fmt: skip
        volume = round(leg.volume, 8)
        return msgspec.structs.replace(
            last,
            buy_price=round(leg.buy_price, d),
            sell_price=round(leg.sell_price, d),
            profit_percentage=leg.profit_percentage,
            volume=volume,
            profit=round(leg.profit, d if d > 2 else 2),
            timestamp=ts,
            event=event,
            duration_ms=round(duration_ms, 1) if duration_ms else 0.0,
            peak_profit_percentage=peak_pct,
            peak_volume=volume if peak_volume == leg.volume else round(peak_volume, 8),
            gross_spread_percentage=(leg.sell_price / leg.buy_price - 1) * 100,
        )

    def _close(self, key: tuple[str, str, str], now: float, ts: datetime) -> None:
        state = self.open.pop(key)
        closed = msgspec.structs.replace(
            state.last,
            event="closed",
            timestamp=ts,
            duration_ms=round((now - state.opened_at) * 1000, 1),
            peak_profit_percentage=state.peak_pct,
            peak_volume=round(state.peak_volume, 8),
        )
        self.emit(Event("arbitrage", closed, now))

    def on_tick(self, views: dict[str, ConsolidatedView], now: float) -> None:
        # legs age out even when nothing changes: re-check views with open opportunities
        for pair in dict.fromkeys(k[0] for k in self.open):  # ordered: replays stay byte-identical
            view = views.get(pair) or self.views.get(pair)
            if view is not None:
                self.on_update(view, now)
