"""The ``arbitrage`` analyzer: cross-exchange opportunities after taker fees, sized by depth.

For every ordered pair of venues (buy on A, sell on B) whose books are LIVE and fresher than
``max_leg_age_ms``, it walks A's asks up against B's bids level by level while the next unit
is still profitable after both taker fees. Passes are incremental: only the pairs that involve
a venue whose book changed since the last pass are walked again, and a walk stops at once when
B's best bid after its fee cannot beat A's best ask after its fee. The result's ``volume`` is the size that stays
profitable, ``buy_price``/``sell_price`` are volume-weighted over that size, and
``profit_percentage`` is net of fees (``gross_spread_percentage`` before them; the fees used
are in ``buy_fee``/``sell_fee``). Each opportunity is reported as ``opened``, then
``updated`` when its profit or size moves, then ``closed`` with its duration and peak; the
events of one pass come best first (a venue that jumps away opens several opportunities at
once, one per other venue, all sharing that leg). Prices are rounded to the pair's price
decimals (the most any leg's book has used), sizes to 8 decimals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import msgspec
from pydantic import BaseModel, Field

from ...analyzer import Analyzer, AnalyzerConfig
from ...book import BookSide, SymbolBook
from ...consolidated import ConsolidatedView
from ...models import ArbitrageOpportunity, BookState
from ...sink import Event

__all__ = ["ArbitrageAnalyzer", "ArbitrageConfig", "Leg", "walk"]

_LIVE = BookState.LIVE


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


def _places(price: float, limit: int = 10) -> int:
    """Decimal places of a price as the exchange wrote it (60001.5 -> 1, 0.000123 -> 6)."""
    for d in range(limit):
        if abs(round(price, d) - price) <= abs(price) * 1e-12:
            return d
    return limit


def _walk_sides(asks: BookSide, bids: BookSide, buy_fee: float, sell_fee: float, n: int) -> Leg | None:
    """:func:`walk` straight on two book sides (asks ascending from the lowest, bids from the
    highest), at most ``n`` levels each, without building level lists: it usually stops after a
    few levels, and at once when the best bid after the fee cannot beat the best ask."""
    ak = asks.keys
    bk = bids.keys
    if not ak or not bk:
        return None
    buy_mult = 1 + buy_fee
    sell_mult = 1 - sell_fee
    pa = ak[0]
    pb = bk[-1]
    if pb * sell_mult <= pa * buy_mult:
        return None  # early stop: not even the best levels are profitable after fees
    na = len(ak)
    if na > n:
        na = n
    nb = len(bk)
    if nb > n:
        nb = n
    al = asks.levels
    bl = bids.levels
    i = j = 0
    rem_a = al[pa]
    rem_b = bl[pb]
    volume = cost = proceeds = 0.0
    while True:
        q = rem_a if rem_a < rem_b else rem_b
        volume += q
        cost += q * pa
        proceeds += q * pb
        rem_a -= q
        rem_b -= q
        if rem_a <= 1e-15:
            i += 1
            if i >= na:
                break
            pa = ak[i]
            rem_a = al[pa]
        if rem_b <= 1e-15:
            j += 1
            if j >= nb:
                break
            pb = bk[-1 - j]
            rem_b = bl[pb]
        if pb * sell_mult <= pa * buy_mult:
            break
    if volume <= 0:
        return None
    paid = cost * buy_mult
    profit = proceeds * sell_mult - paid
    return Leg(volume, cost / volume, proceeds / volume, profit, profit / paid * 100)


@dataclass(slots=True)
class _Open:
    opened_at: float
    last: ArbitrageOpportunity
    peak_pct: float
    peak_volume: float


@dataclass(slots=True)
class _Walked:
    """What the last pass over one view found: venue versions and the profitable legs."""

    versions: dict[str, tuple[int, int, int]]
    legs: dict[tuple[str, str], Leg]
    recomputed: set[tuple[str, str]]  # legs walked again and found since on_update last reported


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
        self._places: dict[float, int] = {}  # price -> its decimal places (memo)
        self._decimals: dict[str, int] = {}  # pair -> the most price decimals its legs have used
        self.walks = 0  # venue pairs walked (for tests and benchmarks: only changed venues' pairs are)

    def fee(self, venue: str) -> float:
        exchange = venue.partition(":")[0]
        return self.cfg.taker_fees.get(exchange, self.cfg.default_taker_fee)

    def find(self, view: ConsolidatedView, now_ns: int | None = None) -> dict[tuple[str, str, str], Leg]:
        """Every opportunity in this view now (legs fresh and LIVE, above the minimum profit).

        Incremental: only the ordered venue pairs that involve a venue whose book changed (or
        that became fresh) since the last pass over this view are walked again; the others keep
        their last result. A leg whose venue went stale or left LIVE is dropped."""
        legs = self._pass(view, now_ns).legs
        pair = view.pair
        return {(pair, buy, sell): leg for (buy, sell), leg in legs.items()}

    def _pass(self, view: ConsolidatedView, now_ns: int | None = None) -> _Walked:
        now_ns = now_ns or view.clock.monotonic_ns()
        limit_ns = self.cfg.max_leg_age_ms * 1e6
        stamps = view.stamps
        fresh: dict[str, SymbolBook] = {}
        versions: dict[str, tuple[int, int, int]] = {}
        for name, book in view.venues.items():
            if book.state is _LIVE and book.last_update_ns:
                alive = book.alive_ns
                updated = book.last_update_ns
                if now_ns - (alive if alive > updated else updated) <= limit_ns:  # inlined seen_ns()
                    fresh[name] = book
                    versions[name] = (stamps.get(book, 0), book.messages, book.level_updates)
        last = self.walked.get(view.pair)
        if last is None:
            changed = list(fresh)
            legs: dict[tuple[str, str], Leg] = {}
            walked = self.walked[view.pair] = _Walked(versions, legs, set())
        else:
            before = last.versions
            changed = [name for name, v in versions.items() if before.get(name) != v]
            if not changed and len(versions) == len(before):
                return last  # nothing changed, nobody went stale
            legs = {
                k: leg for k, leg in last.legs.items()
                if k[0] in versions and k[1] in versions and versions[k[0]] == before[k[0]] and versions[k[1]] == before[k[1]]
            }  # fmt: skip
            walked = last
            walked.versions = versions
            walked.legs = legs
        if changed:
            n = self.cfg.max_levels
            minimum = self.cfg.min_profit_percentage
            fees = self._fees
            for name in fresh:
                if name not in fees:
                    fees[name] = self.fee(name)
            recomputed = walked.recomputed
            walks = 0
            done: set[str] = set()
            for venue in changed:
                book = fresh[venue]
                asks = book.book.asks
                bids = book.book.bids
                fee = fees[venue]
                for other, o in fresh.items():
                    if other == venue or other in done:
                        continue
                    other_fee = fees[other]
                    walks += 2
                    leg = _walk_sides(asks, o.book.bids, fee, other_fee, n)  # buy here, sell there
                    if leg is not None and leg.profit_percentage > minimum:
                        legs[(venue, other)] = leg
                        recomputed.add((venue, other))
                    leg = _walk_sides(o.book.asks, bids, other_fee, fee, n)  # buy there, sell here
                    if leg is not None and leg.profit_percentage > minimum:
                        legs[(other, venue)] = leg
                        recomputed.add((other, venue))
                done.add(venue)
            self.walks += walks
        return walked

    def on_update(self, view: ConsolidatedView, now: float) -> None:
        pair = view.pair
        self.views[pair] = view
        walked = self._pass(view)
        legs = walked.legs
        ts: datetime | None = None
        out: list[ArbitrageOpportunity] = []
        if walked.recomputed:
            # only the legs walked again since the last report can have opened or moved
            for buy_sell in walked.recomputed:
                leg = legs.get(buy_sell)
                if leg is None:
                    continue
                key = (pair, buy_sell[0], buy_sell[1])
                state = self.open.get(key)
                if state is None:
                    ts = ts or datetime.fromtimestamp(now, timezone.utc)
                    opp = self._opportunity(key, leg, ts, "opened", 0.0, leg.profit_percentage, leg.volume)
                    self.open[key] = _Open(now, opp, leg.profit_percentage, leg.volume)
                    out.append(opp)
                    continue
                if leg.profit_percentage > state.peak_pct:
                    state.peak_pct = leg.profit_percentage
                if leg.volume > state.peak_volume:
                    state.peak_volume = leg.volume
                last = state.last
                th = self.cfg.update_threshold
                moved = abs(leg.profit_percentage - last.profit_percentage) > th * abs(last.profit_percentage) or abs(
                    leg.volume - last.volume
                ) > th * last.volume
                if moved:
                    ts = ts or datetime.fromtimestamp(now, timezone.utc)
                    duration = (now - state.opened_at) * 1000
                    opp = self._opportunity(key, leg, ts, "updated", duration, state.peak_pct, state.peak_volume)
                    state.last = opp
                    out.append(opp)
            walked.recomputed = set()
        if len(out) > 1:  # a burst (one venue against several): best first (then by venues: replays stay identical)
            out.sort(key=lambda o: (-o.profit_percentage, o.buy_exchange, o.sell_exchange))
        for opp in out:
            self.emit(Event("arbitrage", opp, now))
        gone = [k for k in self.open if k[0] == pair and (k[1], k[2]) not in legs]
        if gone:
            ts = ts or datetime.fromtimestamp(now, timezone.utc)
            for key in sorted(gone, key=lambda k: (-self.open[k].last.profit_percentage, k)):
                self._close(key, now, ts)

    def _opportunity(
        self, key: tuple[str, str, str], leg: Leg, ts: datetime, event: Literal["opened", "updated"],
        duration_ms: float, peak_pct: float, peak_volume: float,
    ) -> ArbitrageOpportunity:  # fmt: skip
        pair, buy, sell = key
        d = self._price_decimals(pair, buy, sell)
        buy_fee = self._fees.get(buy, self.fee(buy))
        sell_fee = self._fees.get(sell, self.fee(sell))
        return ArbitrageOpportunity(
            buy_exchange=buy,
            sell_exchange=sell,
            symbol=pair,
            buy_price=round(leg.buy_price, d),
            sell_price=round(leg.sell_price, d),
            profit_percentage=leg.profit_percentage,
            volume=round(leg.volume, 8),
            profit=round(leg.profit, max(d, 2)),
            timestamp=ts,
            event=event,
            duration_ms=round(duration_ms, 1),
            peak_profit_percentage=peak_pct,
            peak_volume=round(peak_volume, 8),
            gross_spread_percentage=(leg.sell_price / leg.buy_price - 1) * 100,
            buy_fee=buy_fee,
            sell_fee=sell_fee,
        )

    def _price_decimals(self, pair: str, buy: str, sell: str) -> int:
        """The pair's price decimals: the most the legs' best prices have needed so far (book
        prices sit on the venues' ticks; the volume-weighted prices do not). Read from the two
        venues of the leg being reported, each price's places computed once."""
        d = self._decimals.get(pair, 0)
        view = self.views.get(pair)
        if view is not None:
            places = self._places
            for venue, price in ((buy, "ask"), (sell, "bid")):
                book = view.venues.get(venue)
                if book is None:
                    continue
                best = book.book.asks.best() if price == "ask" else book.book.bids.best()
                if best is None:
                    continue
                p = places.get(best)
                if p is None:
                    if len(places) > 4096:
                        places.clear()
                    p = places[best] = _places(best)
                if p > d:
                    d = p
        self._decimals[pair] = d
        return d

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
