"""The ``summary`` analyzer: a :class:`~aggcore.models.Summary` per pair when its top-N changes.

With ``aggregation.summary_interval_ms`` set, a pair's summary is emitted at most that often
(the latest state wins); unset, every change of what a reader would see is emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from pydantic import BaseModel, Field

from ...analyzer import Analyzer, AnalyzerConfig
from ...consolidated import ConsolidatedView, Merged
from ...models import Summary
from ...sink import Event
from ._decimals import places as _places

__all__ = ["SummaryAnalyzer", "SummaryConfig", "build_summary"]


# memos (bounded): the best prices, and so the spread and mid, repeat from summary to summary;
# the summaries of one analysis round share its time
_SPREADS: dict[tuple[float, float], tuple[float, float]] = {}  # (bid, ask) -> (spread, mid)
_last_time: tuple[float, datetime] = (0.0, datetime.fromtimestamp(0, timezone.utc))


def _spread_mid(bid: float, ask: float) -> tuple[float, float]:
    d = max(_places(bid), _places(ask))  # the pair's tick decimals, as the venues quote
    # 0.01, not 0.009999999999990905
    found = _SPREADS[(bid, ask)] = (round(ask - bid, d), round((ask + bid) / 2, d + 1))
    return found


class SummaryConfig(AnalyzerConfig):
    depth: int | None = Field(None, ge=1, description="levels per side; aggregation.max_price_levels when unset")


def build_summary(merged: Merged, wall: float) -> Summary:
    """A Summary from a merged view (``wall``: the summary's time, seconds since the epoch).

    The levels are the merged view's own :class:`PriceLevel` objects (each stamped with when
    its level last changed on its venue), in new lists: building a summary copies two lists and
    makes one ``datetime``."""
    global _last_time
    bids = merged.bids
    asks = merged.asks
    bid = ask = spread = mid = None
    if bids and asks:
        bid = bids[0].price
        ask = asks[0].price
        found = _SPREADS.get((bid, ask))
        if found is None:
            if len(_SPREADS) >= 4096:
                _SPREADS.clear()
            found = _spread_mid(bid, ask)
        spread, mid = found
    elif bids:
        bid = bids[0].price
    elif asks:
        ask = asks[0].price
    last = _last_time
    if last[0] == wall:
        ts = last[1]
    else:
        ts = datetime.fromtimestamp(wall, timezone.utc)
        _last_time = (wall, ts)
    return Summary(
        symbol=merged.pair,
        spread=spread,
        bids=bids[:],
        asks=asks[:],
        timestamp=ts,
        mid=mid,
        best_bid=bid,
        best_ask=ask,
        crossed=bid is not None and ask is not None and bid >= ask,
        venues=merged.venues,
        excluded=merged.excluded,
        venue_age_ms=merged.ages_ms,
    )


class SummaryAnalyzer(Analyzer):
    name = "summary"
    Config = SummaryConfig

    def __init__(self, config: AnalyzerConfig, emit: Callable[[Event], None], settings: BaseModel) -> None:
        super().__init__(config, emit, settings)
        assert isinstance(config, SummaryConfig)
        self.depth: int = config.depth or int(getattr(settings, "max_price_levels", 20))
        self.max_age_ms = float(getattr(settings, "max_age_ms", 5000))
        interval = getattr(settings, "summary_interval_ms", None)
        self.interval_s = interval / 1000 if interval else 0.0
        self.last_key: dict[str, tuple[object, ...]] = {}
        self.last_emit: dict[str, float] = {}
        self.pending: dict[str, ConsolidatedView] = {}
        self.latest: dict[str, Summary] = {}

    def on_update(self, view: ConsolidatedView, now: float) -> None:
        merged = view.merge(self.depth, self.max_age_ms)
        key = merged.key()
        pair = view.pair
        if self.last_key.get(pair) == key:
            return
        if self.interval_s and now - self.last_emit.get(pair, 0.0) < self.interval_s:
            self.pending[pair] = view
            return
        self._emit(pair, merged, key, now)

    def on_tick(self, views: dict[str, ConsolidatedView], now: float) -> None:
        for pair, view in list(self.pending.items()):
            if now - self.last_emit.get(pair, 0.0) >= self.interval_s:
                del self.pending[pair]
                merged = view.merge(self.depth, self.max_age_ms)
                key = merged.key()
                if self.last_key.get(pair) != key:
                    self._emit(pair, merged, key, now)

    def _emit(self, pair: str, merged: Merged, key: tuple[object, ...], now: float) -> None:
        if not merged.venues and pair not in self.latest:
            return  # no venue live yet: the first summary waits for one (later, an empty one says why)
        self.last_key[pair] = key
        self.last_emit[pair] = now
        if self.pending:
            self.pending.pop(pair, None)
        summary = build_summary(merged, now)
        self.latest[pair] = summary
        self.emit(Event("summary", summary, now))
