"""Bybit instrument lists -> :class:`BybitSymbolTable`.

Facts (Bybit v5, ``GET /v5/market/instruments-info``):

- ``?category=spot`` returns every ``Trading`` spot instrument at once (no pagination);
  ``?category=linear&limit=1000`` pages with ``nextPageCursor`` (default page 500).
- Symbols are uppercase without separator (``BTCUSDT``), and **the same string names a spot
  pair and a USDT perpetual**: the category is part of an instrument's identity.
- Fields used: ``symbol``, ``baseCoin``, ``quoteCoin``, ``settleCoin`` (linear),
  ``contractType`` (``LinearPerpetual``/``LinearFutures``), ``status``,
  ``priceFilter.tickSize``, ``lotSizeFilter.basePrecision`` (spot) / ``qtyStep`` (linear).

aggcore keys books by one string per instrument. Instruments of the connector's home
``category`` keep Bybit's own spelling (``BTCUSDT``); those of the other category are keyed
``"<category>:<SYMBOL>"`` (``linear:BTCUSDT``). Normalized pairs never collide: a linear
contract's pair carries its settlement coin (``BTC/USDT:USDT``), a spot pair does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aggcore.symbols import Instrument, SymbolTable, normalize_asset

__all__ = ["CATEGORIES", "BybitSymbolTable", "book_key", "decimals", "instruments_from_list"]

CATEGORIES = ("spot", "linear")


def book_key(category: str, symbol: str, home: str) -> str:
    """The book key of ``symbol`` in ``category`` for a connector whose home category is ``home``."""
    return symbol if category == home else f"{category}:{symbol}"


def decimals(step: str | None) -> int | None:
    """Decimal places of a step written as the exchange writes it (``"0.010"`` -> 2)."""
    if not step:
        return None
    try:
        value = float(step)
    except ValueError:
        return None
    if value <= 0:
        return None
    text = step.rstrip("0") if "." in step else step
    return len(text.split(".", 1)[1]) if "." in text else 0


def instruments_from_list(category: str, items: Iterable[Mapping[str, Any]], home: str) -> list[Instrument]:
    """Instruments of one category from the ``result.list`` of ``/v5/market/instruments-info``.

    Perpetuals are listed before dated futures so that ``BTC/USDT:USDT`` names the perpetual.
    """
    out: list[tuple[int, Instrument]] = []
    for item in items:
        native = str(item["symbol"])
        price_filter = item.get("priceFilter") or {}
        lot = item.get("lotSizeFilter") or {}
        tick = price_filter.get("tickSize")
        contract = item.get("contractType") or ""
        if category == "spot":
            kind, settle, order = "spot", None, 0
            qty_step = lot.get("basePrecision")
        else:
            kind = "future" if contract.endswith("Futures") else "perpetual"
            settle = item.get("settleCoin") or item.get("quoteCoin")
            order = 1 if kind == "future" else 0
            qty_step = lot.get("qtyStep")
        inst = Instrument(
            symbol=book_key(category, native, home),
            base=str(item["baseCoin"]),
            quote=str(item["quoteCoin"]),
            settle=str(settle) if settle else None,
            kind=kind,
            price_precision=decimals(tick),
            qty_precision=decimals(qty_step),
            tick_size=float(tick) if tick else None,
            active=item.get("status", "Trading") == "Trading",
            extra={"category": category, "native": native, "status": item.get("status"), "contractType": contract},
        )
        out.append((order, inst))
    out.sort(key=lambda pair: pair[0])
    return [inst for _, inst in out]


class BybitSymbolTable(SymbolTable):
    """A symbol table over one or two categories that resolves what users write.

    - ``BTC/USDT`` -> the spot pair (home ``spot``) or the USDT perpetual (home ``linear``);
    - ``BTC/USDT:USDT`` -> the USDT perpetual; ``BTCUSDT`` -> the home category's instrument;
    - ``linear:BTCUSDT`` / ``spot:BTCUSDT`` -> that category explicitly.
    """

    def __init__(self, instruments: Iterable[Instrument], home: str) -> None:
        super().__init__(instruments)
        self.home = home

    def resolve(self, text: str) -> Instrument:
        text = text.strip()
        head, sep, tail = text.partition(":")
        if sep and "/" not in text:
            category = head.lower()
            if category not in CATEGORIES:
                raise KeyError(f"unknown Bybit category {head!r} in {text!r}: use one of {', '.join(CATEGORIES)}")
            key = book_key(category, tail.strip().upper(), self.home)
            inst = self.by_symbol.get(key)
            if inst is None:
                raise KeyError(f"unknown symbol {text!r}: not in Bybit's {category} instrument list")
            return inst
        if "/" in text and not sep and self.home == "linear":
            base, _, quote = text.partition("/")
            inst = self.by_pair.get(f"{normalize_asset(base)}/{normalize_asset(quote)}:{normalize_asset(quote)}")
            if inst is not None:
                return inst
        return super().resolve(text)

    @staticmethod
    def categories_for(pairs: Iterable[str], home: str) -> list[str]:
        """The categories whose instrument lists the configured pairs need (home first)."""
        needed = [home]
        for text in pairs:
            head, sep, _ = text.strip().partition(":")
            if not sep:
                continue
            category = "linear" if "/" in text else head.lower()
            if category in CATEGORIES and category not in needed:
                needed.append(category)
        return needed
