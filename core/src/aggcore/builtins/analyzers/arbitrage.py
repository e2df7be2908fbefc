"""The ``arbitrage`` analyzer: cross-exchange opportunities after taker fees, sized by depth.

For every ordered pair of venues (buy on A, sell on B) whose books are LIVE and fresher than
``max_leg_age_ms``, it walks A's asks up against B's bids level by level while the next unit
is still profitable after both taker fees. The result's ``volume`` is the size that stays
profitable, ``buy_price``/``sell_price`` are volume-weighted over that size, and
``profit_percentage`` is net of fees. Each opportunity is reported as ``opened``, then
``updated`` when its profit or size moves, then ``closed`` with its duration and peak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from ...analyzer import Analyzer, AnalyzerConfig
from ...book import SymbolBook
from ...consolidated import ConsolidatedView
from ...models import ArbitrageOpportunity, BookState
from ...sink import Event

__all__ = ["ArbitrageAnalyzer", "ArbitrageConfig", "Leg", "walk"]


class ArbitrageConfig(AnalyzerConfig):
    taker_fees: dict[str, float] = Field(default_factory=dict, description="exchange -> taker fee as a fraction (0.001 = 0.1%)")
    default_taker_fee: float = Field(0.001, ge=0, lt=1)
    min_profit_percentage: float = Field(0.0, ge=0, description="after fees")
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


@dataclass(slots=True)
class _Open:
    opened_at: float
    last: ArbitrageOpportunity
    peak_pct: float
    peak_volume: float


class ArbitrageAnalyzer(Analyzer):
    name = "arbitrage"
    Config = ArbitrageConfig

    def __init__(self, config: AnalyzerConfig, emit: Callable[[Event], None], settings: BaseModel) -> None:
        super().__init__(config, emit, settings)
        assert isinstance(config, ArbitrageConfig)
        self.cfg: ArbitrageConfig = config
        self.open: dict[tuple[str, str, str], _Open] = {}
        self.views: dict[str, ConsolidatedView] = {}

    def fee(self, venue: str) -> float:
        exchange = venue.partition(":")[0]
        return self.cfg.taker_fees.get(exchange, self.cfg.default_taker_fee)

    def find(self, view: ConsolidatedView, now_ns: int | None = None) -> dict[tuple[str, str, str], Leg]:
        """Every opportunity in this view now (legs fresh and LIVE, above the minimum profit)."""
        now_ns = now_ns or view.clock.monotonic_ns()
        limit_ns = self.cfg.max_leg_age_ms * 1e6
        fresh: dict[str, SymbolBook] = {}
        for name, book in view.venues.items():
            if book.state is BookState.LIVE and book.last_update_ns and now_ns - book.seen_ns() <= limit_ns:
                fresh[name] = book
        found: dict[tuple[str, str, str], Leg] = {}
        n = self.cfg.max_levels
        for buy, a in fresh.items():
            best_ask = a.book.asks.best()
            if best_ask is None:
                continue
            for sell, b in fresh.items():
                if sell == buy:
                    continue
                best_bid = b.book.bids.best()
                if best_bid is None or best_bid <= best_ask:
                    continue
                leg = walk(a.book.asks.top(n), b.book.bids.top(n), self.fee(buy), self.fee(sell))
                if leg is not None and leg.profit_percentage > self.cfg.min_profit_percentage:
                    found[(view.pair, buy, sell)] = leg
        return found

    def on_update(self, view: ConsolidatedView, now: float) -> None:
        self.views[view.pair] = view
        found = self.find(view)
        ts = datetime.fromtimestamp(now, timezone.utc)
        for key, leg in found.items():
            pair, buy, sell = key
            opp = ArbitrageOpportunity(
                buy_exchange=buy,
                sell_exchange=sell,
                symbol=pair,
                buy_price=leg.buy_price,
                sell_price=leg.sell_price,
                profit_percentage=leg.profit_percentage,
                volume=leg.volume,
                profit=leg.profit,
                timestamp=ts,
            )
            state = self.open.get(key)
            if state is None:
                self.open[key] = _Open(now, opp, leg.profit_percentage, leg.volume)
                opp.event = "opened"
                opp.peak_profit_percentage = leg.profit_percentage
                opp.peak_volume = leg.volume
                self.emit(Event("arbitrage", opp, now))
                continue
            state.peak_pct = max(state.peak_pct, leg.profit_percentage)
            state.peak_volume = max(state.peak_volume, leg.volume)
            last = state.last
            th = self.cfg.update_threshold
            moved = abs(leg.profit_percentage - last.profit_percentage) > th * abs(last.profit_percentage) or abs(
                leg.volume - last.volume
            ) > th * last.volume
            if moved:
                opp.event = "updated"
                opp.duration_ms = (now - state.opened_at) * 1000
                opp.peak_profit_percentage = state.peak_pct
                opp.peak_volume = state.peak_volume
                state.last = opp
                self.emit(Event("arbitrage", opp, now))
        for key in [k for k in self.open if k[0] == view.pair and k not in found]:
            self._close(key, now, ts)

    def _close(self, key: tuple[str, str, str], now: float, ts: datetime) -> None:
        state = self.open.pop(key)
        closed = state.last.model_copy(
            update={
                "event": "closed",
                "timestamp": ts,
                "duration_ms": (now - state.opened_at) * 1000,
                "peak_profit_percentage": state.peak_pct,
                "peak_volume": state.peak_volume,
            }
        )
        self.emit(Event("arbitrage", closed, now))

    def on_tick(self, views: dict[str, ConsolidatedView], now: float) -> None:
        # legs age out even when nothing changes: re-check views with open opportunities
        for pair in {k[0] for k in self.open}:
            view = views.get(pair) or self.views.get(pair)
            if view is not None:
                self.on_update(view, now)
