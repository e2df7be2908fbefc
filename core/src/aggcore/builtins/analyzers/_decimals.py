"""Decimal places of a price as the exchange wrote it, for rounding derived prices (spreads,
mids, volume-weighted prices) to the pair's tick instead of printing float noise."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["places"]


@lru_cache(maxsize=4096)  # prices repeat: the same ticks on every venue of a pair, summary after summary
def places(price: float, limit: int = 10) -> int:
    """Decimal places of ``price`` (60001.5 -> 1, 0.000123 -> 6; at most ``limit``)."""
    for d in range(limit):
        if abs(round(price, d) - price) <= abs(price) * 1e-12:
            return d
    return limit
