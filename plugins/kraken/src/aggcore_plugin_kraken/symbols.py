"""Kraken instrument lists -> :class:`SymbolTable` (native symbols are the v2 names, ``BTC/USD``).

Two sources, both the exchange's own lists:

- WebSocket v2 channel ``instrument`` (snapshot ``data.pairs``): ``symbol`` (v2 name), ``base``,
  ``quote``, ``status``, ``price_precision``, ``qty_precision``, ``price_increment``.
- REST ``GET /0/public/AssetPairs``: ``result`` maps the REST name (``XXBTZUSD``) to ``wsname``
  (``XBT/USD``: the **v1** name), ``pair_decimals`` (price precision), ``lot_decimals`` (quantity
  precision), ``status``. v1 writes bitcoin ``XBT`` and dogecoin ``XDG``; v2 writes ``BTC`` and
  ``DOGE``, so each side of ``wsname`` (the exchange's own ``BASE/QUOTE`` field) is mapped. Dark-pool
  pairs (``.d``) have no ``wsname`` and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aggcore.errors import ExchangeError, ParsingError
from aggcore.symbols import Instrument, SymbolTable

__all__ = ["V1_TO_V2", "from_asset_pairs", "from_instrument_pairs", "v2_asset"]

#: asset codes that WebSocket v1 / REST ``wsname`` spell differently from v2
V1_TO_V2 = {"XBT": "BTC", "XDG": "DOGE"}


def v2_asset(code: str) -> str:
    return V1_TO_V2.get(code, code)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def from_instrument_pairs(pairs: Iterable[dict[str, Any]]) -> SymbolTable:
    """Build the table from the v2 ``instrument`` channel's ``pairs``."""
    instruments = []
    for p in pairs:
        try:
            instruments.append(
                Instrument(
                    symbol=p["symbol"],
                    base=p["base"],
                    quote=p["quote"],
                    price_precision=int(p["price_precision"]),
                    qty_precision=int(p["qty_precision"]),
                    tick_size=_float(p.get("price_increment")),
                    active=p.get("status", "online") == "online",
                    extra={"status": p.get("status")},
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParsingError(f"kraken: bad instrument entry {p!r}: {exc}", exchange="kraken") from exc
    return SymbolTable(instruments)


def from_asset_pairs(body: dict[str, Any]) -> SymbolTable:
    """Build the table from a REST ``AssetPairs`` reply (``{"error": [...], "result": {...}}``)."""
    errors = body.get("error") or []
    if errors:
        raise ExchangeError(f"kraken AssetPairs: {', '.join(map(str, errors))}", code=str(errors[0]), exchange="kraken")
    result = body.get("result")
    if not isinstance(result, dict):
        raise ParsingError("kraken AssetPairs: no result", exchange="kraken")
    instruments = []
    for rest_name, p in result.items():
        wsname = p.get("wsname")
        if not wsname or "/" not in wsname:
            continue  # dark pool (.d) and other pairs not on the WebSocket feed
        base1, quote1 = wsname.split("/", 1)
        base, quote = v2_asset(base1), v2_asset(quote1)
        instruments.append(
            Instrument(
                symbol=f"{base}/{quote}",
                base=base,
                quote=quote,
                price_precision=int(p["pair_decimals"]),
                qty_precision=int(p["lot_decimals"]),
                tick_size=_float(p.get("tick_size")),
                active=p.get("status", "online") == "online",
                extra={"rest": rest_name, "altname": p.get("altname"), "wsname": wsname, "status": p.get("status")},
            )
        )
    return SymbolTable(instruments)
