"""Kraken instrument lists -> :class:`SymbolTable` (native symbols are the v2 names, ``BTC/USD``).

Two sources, both the exchange's own lists:

- WebSocket v2 channel ``instrument`` (snapshot ``data.pairs``): ``symbol`` (v2 name), ``base``,
  ``quote``, ``status``, ``price_precision``, ``qty_precision``, ``price_increment``.
- REST ``GET /0/public/AssetPairs``: ``result`` maps the REST name (``XXBTZUSD``) to ``wsname``
  (``XBT/USD``: the **v1** name), ``pair_decimals`` (price precision), ``lot_decimals`` (quantity
  precision), ``status``. Dark-pool pairs (``.d``) have no ``wsname`` and are skipped.

v1 and v2 spell some assets differently (bitcoin ``XBT``/``BTC``, dogecoin ``XDG``/``DOGE``) and
no list states the correspondence. :func:`join_v1_names` (the default source) therefore takes the
v2 names from the v2 list and finds each pair's v1 name by joining the two lists: names that are
equal match; for a v1 asset code absent from v2, the v2 code absent from v1 under which the most of
its pairs exist in v2 with the same precisions is its v2 spelling (learned, not listed; ambiguous
codes stay unmatched). Only :func:`from_asset_pairs` (REST alone, e.g. replaying a recording that
holds nothing else) falls back to Kraken's two documented spellings in :data:`V1_TO_V2`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aggcore.errors import ExchangeError, ParsingError
from aggcore.symbols import Instrument, SymbolTable

__all__ = ["V1_TO_V2", "from_asset_pairs", "from_instrument_pairs", "join_v1_names", "learn_v1_aliases", "v2_asset"]

#: Kraken's documented v1 spellings: only for REST-only tables (:func:`from_asset_pairs`); the
#: default source learns the correspondence from the instrument lists (:func:`learn_v1_aliases`)
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


def _rest_pairs(body: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(rest name, v1 base, v1 quote, entry)`` of every AssetPairs entry on the WebSocket feed."""
    errors = body.get("error") or []
    if errors:
        raise ExchangeError(f"kraken AssetPairs: {', '.join(map(str, errors))}", code=str(errors[0]), exchange="kraken")
    result = body.get("result")
    if not isinstance(result, dict):
        raise ParsingError("kraken AssetPairs: no result", exchange="kraken")
    out = []
    for rest_name, p in result.items():
        wsname = p.get("wsname") if isinstance(p, dict) else None
        if isinstance(wsname, str) and wsname.count("/") == 1:
            base1, quote1 = wsname.split("/")
            out.append((rest_name, base1, quote1, p))
    return out


def _same_precisions(inst: Instrument, p: dict[str, Any]) -> bool:
    try:
        return inst.price_precision == int(p["pair_decimals"]) and inst.qty_precision == int(p["lot_decimals"])
    except (KeyError, TypeError, ValueError):
        return False


def learn_v1_aliases(v2: SymbolTable, body: dict[str, Any]) -> dict[str, str]:
    """v1 asset code -> v2 asset code, learned from the two lists (see the module docstring)."""
    rest = _rest_pairs(body)
    v2_assets = {a for inst in v2.by_symbol.values() for a in (inst.base, inst.quote)}
    v1_assets = {a for _, b, q, _ in rest for a in (b, q)}
    aliases = {a: a for a in v1_assets & v2_assets}
    spare = v2_assets - v1_assets
    unknown = sorted(v1_assets - v2_assets, key=lambda a: (-sum(a in (b, q) for _, b, q, _ in rest), a))
    for code in unknown:
        scores: dict[str, int] = {}
        for _, b, q, p in rest:
            if code not in (b, q):
                continue
            for cand in spare:
                name = f"{cand if b == code else aliases.get(b, b)}/{cand if q == code else aliases.get(q, q)}"
                inst = v2.by_symbol.get(name)
                if inst is not None and _same_precisions(inst, p):
                    scores[cand] = scores.get(cand, 0) + 1
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            aliases[code] = ranked[0][0]
            spare.discard(ranked[0][0])
    return aliases


def join_v1_names(pairs: Iterable[dict[str, Any]], body: dict[str, Any]) -> SymbolTable:
    """The v2 list's table, each pair with its v1 name (``extra["wsname"]``) and REST name
    (``extra["rest"]``) from REST AssetPairs, joined by :func:`learn_v1_aliases`."""
    v2 = from_instrument_pairs(pairs)
    aliases = learn_v1_aliases(v2, body)
    for rest_name, b, q, p in _rest_pairs(body):
        if b not in aliases or q not in aliases:
            continue
        inst = v2.by_symbol.get(f"{aliases[b]}/{aliases[q]}")
        if inst is not None:
            inst.extra.update(rest=rest_name, altname=p.get("altname"), wsname=f"{b}/{q}")
    return v2
