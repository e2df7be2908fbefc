"""Crypto.com instrument list -> :class:`~aggcore.symbols.SymbolTable`.

``GET https://api.crypto.com/exchange/v1/public/get-instruments`` answers
``{"id": .., "method": "public/get-instruments", "code": 0, "result": {"data": [...]}}`` where each
entry carries ``symbol`` (``BTC_USDT``, ``BTCUSD-PERP``, ``BTCUSD-260925``), ``inst_type``
(``CCY_PAIR`` spot, ``PERPETUAL_SWAP``, ``FUTURE``), ``base_ccy``, ``quote_ccy``,
``quote_decimals`` (price decimals), ``quantity_decimals``, ``price_tick_size`` and ``tradable``.

Base and quote come from the list, never from splitting the symbol. Derivatives are USD-settled
on Crypto.com: they map to ``BTC/USD:USD``; ``USD_Stable_Coin`` (the pre-2022-11 name of the USD
bundle) reads as ``USD``. The legacy v2 shape (``result.instruments[]`` with ``instrument_name``,
``base_currency``, ``quote_currency``, ``price_decimals``) is read too, for old captures.
"""

from __future__ import annotations

from typing import Any

from aggcore.symbols import Instrument, SymbolTable

__all__ = ["INSTRUMENTS_PATH", "parse_instruments", "symbol_table"]

INSTRUMENTS_PATH = "/public/get-instruments"

_KINDS = {"CCY_PAIR": "spot", "PERPETUAL_SWAP": "perp", "FUTURE": "future"}
_ORDER = {"spot": 0, "perp": 1, "future": 2}  # spot, then perpetuals win a shared pair name
_CCY_ALIASES = {"USD_STABLE_COIN": "USD"}


def _ccy(code: str) -> str:
    up = code.upper()
    return _CCY_ALIASES.get(up, up)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_instruments(body: dict[str, Any]) -> list[Instrument]:
    """The instruments of a ``public/get-instruments`` answer (v1, or the legacy v2 shape)."""
    code = body.get("code", 0)
    if code not in (0, "0"):
        raise ValueError(f"public/get-instruments failed: code {code} {body.get('message', '')}".strip())
    result = body.get("result") or {}
    out: list[Instrument] = []
    if "data" in result:
        for d in result["data"]:
            kind = _KINDS.get(str(d.get("inst_type", "")))
            if kind is None:
                continue
            quote = _ccy(d["quote_ccy"])
            out.append(
                Instrument(
                    symbol=d["symbol"],
                    base=_ccy(d["base_ccy"]),
                    quote=quote,
                    settle=None if kind == "spot" else quote,
                    kind=kind,
                    price_precision=_int(d.get("quote_decimals")),
                    qty_precision=_int(d.get("quantity_decimals")),
                    tick_size=_float(d.get("price_tick_size")),
                    active=bool(d.get("tradable", True)),
                    extra={"inst_type": d.get("inst_type"), "display_name": d.get("display_name")},
                )
            )
    else:  # legacy v2: spot only
        for d in result.get("instruments", []):
            out.append(
                Instrument(
                    symbol=d["instrument_name"],
                    base=_ccy(d["base_currency"]),
                    quote=_ccy(d["quote_currency"]),
                    price_precision=_int(d.get("price_decimals")),
                    qty_precision=_int(d.get("quantity_decimals")),
                )
            )
    out.sort(key=lambda i: _ORDER.get(i.kind, 9))
    return out


def symbol_table(body: dict[str, Any]) -> SymbolTable:
    return SymbolTable(parse_instruments(body))
