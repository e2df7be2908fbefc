"""Exchange symbol tables: ``BTC/USDT`` <-> the exchange's own spelling, from its instrument list.

Symbols are never derived by splitting strings: a connector builds an :class:`Instrument`
for every entry of the exchange's instrument list (base and quote as the exchange states
them) and :class:`SymbolTable` resolves what the user wrote against that list.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .models import TradingPair

__all__ = ["Instrument", "SymbolTable", "normalize_asset"]

_ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}


def normalize_asset(code: str) -> str:
    """Upper-case an asset code and map well-known legacy aliases (Kraken's ``XBT``)."""
    code = code.upper()
    return _ASSET_ALIASES.get(code, code)


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument as the exchange lists it.

    ``pair`` is the normalized name used across aggcore (``BTC/USDT``; derivatives carry
    their settlement currency, ``BTC/USDT:USDT``). ``price_precision``/``qty_precision`` are
    decimal places where the exchange states them (Kraken needs them for checksums).
    """

    symbol: str
    base: str
    quote: str
    settle: str | None = None
    kind: str = "spot"
    price_precision: int | None = None
    qty_precision: int | None = None
    tick_size: float | None = None
    active: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def pair(self) -> str:
        base = normalize_asset(self.base)
        quote = normalize_asset(self.quote)
        if self.settle:
            return f"{base}/{quote}:{normalize_asset(self.settle)}"
        return f"{base}/{quote}"

    @property
    def trading_pair(self) -> TradingPair:
        return TradingPair(base=normalize_asset(self.base), quote=normalize_asset(self.quote))


class SymbolTable:
    """All instruments of one exchange, looked up by native symbol or normalized pair."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self.by_symbol: dict[str, Instrument] = {}
        self.by_pair: dict[str, Instrument] = {}
        self._folded: dict[str, Instrument] = {}
        for inst in instruments:
            self.by_symbol[inst.symbol] = inst
            self._folded.setdefault(inst.symbol.upper(), inst)
            # the first listing of a pair wins (e.g. spot before a same-named alias)
            self.by_pair.setdefault(inst.pair, inst)

    def __len__(self) -> int:
        return len(self.by_symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.by_symbol

    def resolve(self, text: str) -> Instrument:
        """Find what a user wrote (``BTC/USDT`` or the exchange's ``BTCUSDT``).

        Raises ``KeyError`` with a message that suggests close matches.
        """
        text = text.strip()
        if "/" in text:
            base, _, rest = text.partition("/")
            quote, _, settle = rest.partition(":")
            key = f"{normalize_asset(base)}/{normalize_asset(quote)}"
            if settle:
                key += f":{normalize_asset(settle)}"
            inst = self.by_pair.get(key)
        else:
            inst = self.by_symbol.get(text) or self._folded.get(text.upper())
        if inst is None:
            names = list(dict.fromkeys([*self.by_pair, *self.by_symbol]))  # a symbol may equal its pair (Kraken)
            close = difflib.get_close_matches(text.upper(), names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown symbol {text!r}: not in the exchange's instrument list{hint}")
        return inst

    def pair_of(self, symbol: str) -> str:
        return self.by_symbol[symbol].pair

    def symbol_of(self, pair: str) -> str:
        return self.resolve(pair).symbol
