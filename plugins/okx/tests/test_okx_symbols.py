"""Instrument list -> symbol table, on shaped entries and the real 2022 SPOT list."""

from __future__ import annotations

import orjson
from aggcore.testing.recordings import recording
from aggcore_plugin_okx.symbols import parse_instruments

SPOT = {"instId": "BTC-USDT", "instType": "SPOT", "baseCcy": "BTC", "quoteCcy": "USDT", "settleCcy": "", "ctValCcy": "", "tickSz": "0.1", "lotSz": "0.00000001", "state": "live"}
LINEAR = {"instId": "BTC-USDT-SWAP", "instType": "SWAP", "baseCcy": "", "quoteCcy": "", "ctType": "linear", "ctValCcy": "BTC", "settleCcy": "USDT", "ctVal": "0.01", "tickSz": "0.1", "lotSz": "0.01", "state": "live"}
INVERSE = {"instId": "BTC-USD-SWAP", "instType": "SWAP", "baseCcy": "", "quoteCcy": "", "ctType": "inverse", "ctValCcy": "USD", "settleCcy": "BTC", "ctVal": "100", "tickSz": "0.1", "lotSz": "1", "state": "live"}
SUSPENDED = {**SPOT, "instId": "LUNA-USDT", "baseCcy": "LUNA", "state": "suspend"}


def test_spot_and_swaps() -> None:
    table = parse_instruments([SPOT, LINEAR, INVERSE, SUSPENDED])
    assert table.resolve("BTC/USDT").symbol == "BTC-USDT"
    assert table.resolve("BTC/USDT:USDT").symbol == "BTC-USDT-SWAP"
    assert table.resolve("BTC/USD:BTC").symbol == "BTC-USD-SWAP"
    assert table.resolve("btc-usdt-swap").symbol == "BTC-USDT-SWAP"
    spot = table.by_symbol["BTC-USDT"]
    assert (spot.kind, spot.price_precision, spot.qty_precision, spot.tick_size) == ("spot", 1, 8, 0.1)
    assert table.by_symbol["BTC-USDT-SWAP"].kind == "swap"
    assert not table.by_symbol["LUNA-USDT"].active


def test_unknown_symbol_suggests() -> None:
    table = parse_instruments([SPOT, LINEAR])
    try:
        table.resolve("BTC/USTD")
    except KeyError as exc:
        assert "unknown symbol" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("resolved a wrong pair")


def test_real_instrument_lists() -> None:
    rec = recording("OKX.0")
    lists: dict[str, list[dict[str, object]]] = {}
    for call in rec.http():
        for kind in ("SPOT", "SWAP", "FUTURES"):
            if call.url.endswith(f"/api/v5/public/instruments?instType={kind}"):
                body = orjson.loads(call.body)
                assert body["code"] == "0"
                lists[kind] = body["data"]  # the last call of each kind
    table = parse_instruments(lists["SPOT"] + lists["SWAP"] + lists["FUTURES"])
    assert len(table) == sum(len(v) for v in lists.values()) > 300
    assert table.resolve("BTC/USDT").symbol == "BTC-USDT"
    assert table.resolve("BTC/USDT:USDT").symbol == "BTC-USDT-SWAP"  # swaps listed before futures
    assert table.resolve("BTC/USD:BTC").symbol == "BTC-USD-SWAP"
    assert table.resolve("UNI/USD:UNI").symbol == "UNI-USD-SWAP"
    assert table.resolve("BTC-USD-220527").kind == "future"
    for entry in lists["SPOT"]:  # every spot pair comes from the list's own currencies
        inst = table.by_symbol[str(entry["instId"])]
        assert (inst.base, inst.quote) == (entry["baseCcy"], entry["quoteCcy"])
