"""Binance spot instrument list (``GET /api/v3/exchangeInfo``) -> :class:`SymbolTable`.

Each entry of ``symbols`` states ``symbol`` (``BTCUSDT``), ``status`` (``TRADING``, ``HALT``,
``BREAK``, ``CANCEL_ONLY``), ``baseAsset``/``quoteAsset`` and ``filters`` (``PRICE_FILTER``
``tickSize``, ``LOT_SIZE`` ``stepSize``). Pairs are built from ``baseAsset``/``quoteAsset``,
never by splitting the symbol. ``BREAK`` means delisted/not trading: such instruments are
listed but inactive.
"""

from __future__ import annotations

from typing import Any

from aggcore.symbols import Instrument, SymbolTable

__all__ = ["build_symbol_table", "instrument_from"]


def _decimals(step: str | None) -> int | None:
    """``"0.01000000"`` -> 2 (decimal places of a tick or step size)."""
    if not step:
        return None
    text = step.rstrip("0")
    if "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def instrument_from(entry: dict[str, Any]) -> Instrument:
    filters = {f.get("filterType"): f for f in entry.get("filters", [])}
    tick = filters.get("PRICE_FILTER", {}).get("tickSize")
    step = filters.get("LOT_SIZE", {}).get("stepSize")
    status = entry.get("status", "TRADING")
    return Instrument(
        symbol=entry["symbol"],
        base=entry["baseAsset"],
        quote=entry["quoteAsset"],
        kind="spot",
        price_precision=_decimals(tick),
        qty_precision=_decimals(step),
        tick_size=float(tick) if tick else None,
        active=status != "BREAK",
        extra={"status": status},
    )


def build_symbol_table(exchange_info: dict[str, Any]) -> SymbolTable:
    """Every listed instrument, active or not (the connector reports inactive ones)."""
    return SymbolTable(instrument_from(e) for e in exchange_info.get("symbols", []))
