"""Bitstamp's instrument list -> :class:`SymbolTable`.

Source: ``GET /api/v2/trading-pairs-info/``, a list of entries such as::

    {"trading": "Enabled", "base_decimals": 8, "url_symbol": "btcusd", "name": "BTC/USD",
     "instant_and_market_orders": "Enabled", "minimum_order": "20.0 USD",
     "counter_decimals": 2, "description": "Bitcoin / U.S. dollar"}

The native symbol is ``url_symbol`` (lowercase, e.g. ``btcusd``, perpetuals ``btcusd-perp``),
the one spelling the WebSocket accepts in channel names; base and quote are the two halves of
the exchange's own ``name`` field (which the exchange writes ``BASE/QUOTE``), never a guess
cut out of ``url_symbol``. Entries of the newer ``/api/v2/markets/`` catalog that carry
``base_currency``/``counter_currency`` and ``market_symbol`` are accepted too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aggcore.symbols import Instrument, SymbolTable

__all__ = ["instrument_of", "parse_instruments"]


def instrument_of(entry: dict[str, Any]) -> Instrument | None:
    """One catalog entry -> an :class:`Instrument`, or None when it names no pair."""
    symbol = entry.get("url_symbol") or entry.get("market_symbol")
    if not symbol:
        return None
    base = entry.get("base_currency")
    quote = entry.get("counter_currency")
    if not (base and quote):
        name = str(entry.get("name") or "")
        if name.count("/") != 1:
            return None
        base, quote = (part.strip() for part in name.split("/"))
    if not (base and quote):
        return None
    symbol = str(symbol)
    kind = "perpetual" if symbol.endswith("-perp") or entry.get("market_type") == "PERPETUAL" else "spot"
    return Instrument(
        symbol=symbol,
        base=str(base),
        quote=str(quote),
        settle=str(quote) if kind == "perpetual" else None,
        kind=kind,
        price_precision=_int(entry.get("counter_decimals")),
        qty_precision=_int(entry.get("base_decimals")),
        active=str(entry.get("trading", "Enabled")).lower() == "enabled",
        extra={"minimum_order": entry.get("minimum_order"), "description": entry.get("description")},
    )


def parse_instruments(entries: Iterable[dict[str, Any]]) -> SymbolTable:
    """The whole catalog -> a symbol table (entries that name no pair are skipped)."""
    return SymbolTable(inst for inst in map(instrument_of, entries) if inst is not None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
