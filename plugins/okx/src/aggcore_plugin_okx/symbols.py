"""OKX instrument list -> :class:`SymbolTable`, never by splitting ``instId`` strings.

``GET /api/v5/public/instruments?instType=SPOT`` (also ``SWAP``, ``FUTURES``; 20 requests per
2 s per IP and instType) answers ``{"code": "0", "msg": "", "data": [...]}``. Per entry:

- SPOT: ``instId`` ``BTC-USDT``, ``baseCcy`` ``BTC``, ``quoteCcy`` ``USDT`` -> pair ``BTC/USDT``;
- SWAP/FUTURES (``baseCcy``/``quoteCcy`` are empty there): linear contracts
  (``ctType: linear``, e.g. ``BTC-USDT-SWAP``) have ``ctValCcy`` = base and ``settleCcy`` =
  quote -> ``BTC/USDT:USDT``; inverse ones (``BTC-USD-SWAP``) have ``ctValCcy`` = quote
  (``USD``) and ``settleCcy`` = base -> ``BTC/USD:BTC``;
- ``tickSz``/``lotSz`` give the precisions; ``state`` ``live`` (others: ``suspend``,
  ``preopen``, ``rebase``, ``post_only``, ``test``, ``settling``) sets ``active``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aggcore.symbols import Instrument, SymbolTable

__all__ = ["instrument_of", "parse_instruments"]

_KIND = {"SPOT": "spot", "SWAP": "swap", "FUTURES": "future", "MARGIN": "spot"}


def _decimals(step: str | None) -> int | None:
    if not step:
        return None
    text = step.rstrip("0") if "." in step else step
    return len(text.split(".", 1)[1]) if "." in text else 0


def instrument_of(entry: dict[str, Any]) -> Instrument | None:
    """One entry of the instrument list, or None when it cannot be mapped (options, ...)."""
    inst_type = entry.get("instType", "SPOT")
    if inst_type not in _KIND:
        return None
    tick = entry.get("tickSz") or None
    common: dict[str, Any] = {
        "symbol": entry["instId"],
        "kind": _KIND[inst_type],
        "price_precision": _decimals(tick),
        "qty_precision": _decimals(entry.get("lotSz")),
        "tick_size": float(tick) if tick else None,
        "active": entry.get("state", "live") == "live",
        "extra": {"state": entry.get("state"), "instType": inst_type, "ctVal": entry.get("ctVal")},
    }
    if inst_type in ("SPOT", "MARGIN"):
        base, quote = entry.get("baseCcy"), entry.get("quoteCcy")
        if not base or not quote:
            return None
        return Instrument(base=base, quote=quote, **common)
    value_ccy, settle = entry.get("ctValCcy"), entry.get("settleCcy")
    if not value_ccy or not settle:
        return None
    if entry.get("ctType") == "inverse":
        return Instrument(base=settle, quote=value_ccy, settle=settle, **common)
    return Instrument(base=value_ccy, quote=settle, settle=settle, **common)


def parse_instruments(entries: Iterable[dict[str, Any]]) -> SymbolTable:
    """Build the table from the ``data`` lists of one or more instrument-list responses
    (spot first, so ``BTC/USDT`` resolves to spot and ``BTC/USDT:USDT`` to the swap)."""
    out = []
    for entry in entries:
        inst = instrument_of(entry)
        if inst is not None:
            out.append(inst)
    return SymbolTable(out)
