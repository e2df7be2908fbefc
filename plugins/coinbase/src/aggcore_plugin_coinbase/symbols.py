"""Coinbase product lists -> :class:`SymbolTable`.

Advanced Trade lists products at ``GET /api/v3/brokerage/market/products`` (public, no key)::

    {"products": [{"product_id": "BTC-USD", "base_currency_id": "BTC", "quote_currency_id": "USD",
                   "status": "online", "trading_disabled": false, "product_type": "SPOT",
                   "quote_increment": "0.01", "alias": "", "alias_to": ["BTC-USDC"], ...}],
     "num_products": 2, "pagination": null}

Symbols are the ``product_id`` (``BTC-USD``); base and quote come from the list, never from
splitting the id. ``-USDC`` products are aliases: market-data channels report them under the
``-USD`` product (``alias_to`` on the USD product, ``alias`` on the USDC one), so
:func:`wire_ids` maps every product to the id its data arrives under.

The retired Pro / current Exchange ``/products`` list (``id``, ``base_currency``,
``quote_currency``) is accepted too, for recorded data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from aggcore.symbols import Instrument, SymbolTable

__all__ = ["build_table", "instrument_from_product", "is_tradable_status", "wire_ids"]

#: statuses under which a product streams a book (anything else is maintenance or delisted)
_ONLINE = {"online"}


def _decimals(increment: str | None) -> int | None:
    if not increment:
        return None
    try:
        value = float(increment)
    except ValueError:
        return None
    if value <= 0 or not math.isfinite(value):
        return None
    text = increment.rstrip("0")
    return len(text.split(".", 1)[1]) if "." in text else 0


def is_tradable_status(status: str) -> bool:
    return status.lower() in _ONLINE


def instrument_from_product(p: Mapping[str, Any]) -> Instrument | None:
    """One product (Advanced Trade or Exchange shape) -> :class:`Instrument`; None if unusable."""
    symbol = p.get("product_id") or p.get("id")
    base = p.get("base_currency_id") or p.get("base_currency")
    quote = p.get("quote_currency_id") or p.get("quote_currency")
    if not symbol or not base or not quote:
        return None
    status = str(p.get("status") or "online")
    disabled = bool(p.get("is_disabled", False))
    inc = p.get("quote_increment") or p.get("price_increment")
    alias = p.get("alias") or ""
    return Instrument(
        symbol=str(symbol),
        base=str(base),
        quote=str(quote),
        kind=str(p.get("product_type") or "SPOT").lower(),
        price_precision=_decimals(inc),
        qty_precision=_decimals(p.get("base_increment")),
        tick_size=float(inc) if inc else None,
        active=is_tradable_status(status) and not disabled,
        extra={
            "status": status,
            "trading_disabled": bool(p.get("trading_disabled", False)),
            "alias": str(alias),
            "alias_to": [str(a) for a in p.get("alias_to") or []],
        },
    )


def build_table(products: Iterable[Mapping[str, Any]]) -> SymbolTable:
    """Every usable product of the list, in list order."""
    out = []
    for p in products:
        inst = instrument_from_product(p)
        if inst is not None:
            out.append(inst)
    return SymbolTable(out)


def wire_ids(table: SymbolTable) -> dict[str, str]:
    """Product id -> the id its market data carries (``BTC-USDC`` -> ``BTC-USD``; others -> self).

    Built from ``alias_to`` on the ``-USD`` products and ``alias`` on the aliased ones.
    """
    out = {sym: sym for sym in table.by_symbol}
    for sym, inst in table.by_symbol.items():
        for aliased in inst.extra.get("alias_to", ()):
            if aliased in out and aliased != sym:
                out[aliased] = sym
    for sym, inst in table.by_symbol.items():
        alias = inst.extra.get("alias")
        if alias and alias in table.by_symbol and out[sym] == sym:
            out[sym] = alias
    return out
