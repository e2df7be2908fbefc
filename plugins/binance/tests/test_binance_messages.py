"""Parser and symbol-table tests on the reference's verbatim frames and on real captures."""

from __future__ import annotations

import orjson
import pytest
from aggcore.book import BookUpdate
from aggcore.testing.recordings import recording
from aggcore_plugin_binance.messages import (
    Ack,
    ErrorReply,
    ServerShutdown,
    depth_weight,
    parse,
    parse_snapshot,
    stream_name,
)
from aggcore_plugin_binance.symbols import build_symbol_table

DOC_DEPTH = """{
  "e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC",
  "U": 157, "u": 160,
  "b": [["0.0024", "10"]],
  "a": [["0.0026", "100"]]
}"""
REC_1 = (
    '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,"s":"NKNUSDT","U":499869750,'
    '"u":499869752,"b":[["0.35130000","6195.00000000"],["0.34750000","5548.00000000"],["0.34640000","6222.00000000"]],"a":[]}}'
)
REC_2 = (
    '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512568,"s":"NKNUSDT","U":499869753,'
    '"u":499869754,"b":[["0.35170000","4265.00000000"]],"a":[["0.35290000","10968.00000000"]]}}'
)


def test_raw_depth_update_from_the_docs() -> None:
    u = parse(DOC_DEPTH)
    assert isinstance(u, BookUpdate)
    assert (u.symbol, u.first, u.last, u.snapshot) == ("BNBBTC", 157, 160, False)
    assert list(u.bids) == [["0.0024", "10"]] and list(u.asks) == [["0.0026", "100"]]
    assert u.exchange_ts == pytest.approx(1672515782.136)


def test_combined_depth_updates_from_the_recording_excerpt() -> None:
    a, b = parse(REC_1), parse(REC_2.encode())
    assert isinstance(a, BookUpdate) and isinstance(b, BookUpdate)
    assert (a.symbol, a.first, a.last, len(a.bids), len(a.asks)) == ("NKNUSDT", 499869750, 499869752, 3, 0)
    assert a.last is not None and b.first == a.last + 1 and b.last == 499869754
    assert b.asks[0] == (0.3529, 10968.0)  # typed decoding: the same floats as float() of the wire strings


def test_control_replies() -> None:
    assert parse('{"result": null, "id": 1}') == Ack(1, None)
    assert parse('{"result": ["btcusdt@aggTrade"], "id": 3}') == Ack(3, ["btcusdt@aggTrade"])
    # documented table shape and the wrapped shape live servers send
    assert parse('{"code": 0, "msg": "Unknown property","id": 7}') == ErrorReply(7, 0, "Unknown property")
    assert parse('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 2"}') == ErrorReply(
        None, 3, "Invalid JSON: expected value at line 1 column 2"
    )
    assert parse('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}') == ErrorReply(
        2, 2, "Invalid request: invalid stream"
    )
    e = parse('{"error":{"code":2,"msg":"Invalid request: invalid stream","data":"000usdt@trade"},"id":5}')
    assert isinstance(e, ErrorReply) and e.data == "000usdt@trade"


def test_server_shutdown_raw_and_combined() -> None:
    assert parse('{"e": "serverShutdown", "E": 1770123456789}') == ServerShutdown(1770123456.789)
    assert parse('{"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1770123456789}}') == ServerShutdown(
        1770123456.789
    )


def test_other_payloads_are_ignored() -> None:
    assert parse('{"lastUpdateId": 160, "bids": [["0.0024","10"]], "asks": [["0.0026","100"]]}') is None
    ticker = '{"stream":"x@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}}'
    assert parse(ticker) is None
    with pytest.raises(orjson.JSONDecodeError):
        parse('{"this is": not json')


def test_rest_snapshot_from_the_docs() -> None:
    body = {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]], "asks": [["4.00000200", "12.00000000"]]}
    s = parse_snapshot("BNBBTC", body)
    assert s.snapshot and s.first == s.last == 1027024 and s.bids[0][1] == "431.00000000"


def test_stream_names_and_weights() -> None:
    assert stream_name("BTCUSDT") == "btcusdt@depth@100ms"
    assert stream_name("BTCUSDT", 1000) == "btcusdt@depth"
    assert [depth_weight(n) for n in (5, 100, 101, 500, 1000, 1001, 5000)] == [5, 5, 25, 25, 50, 250, 250]


def test_symbol_table_from_exchange_info_shape() -> None:
    info = {
        "symbols": [
            {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC",
             "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.00000100"},
                         {"filterType": "LOT_SIZE", "stepSize": "0.00010000"}]},
            {"symbol": "BTCUSDC", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDC", "filters": []},
            {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT", "filters": []},
        ]
    }
    table = build_symbol_table(info)
    eth = table.resolve("ETH/BTC")
    assert eth.symbol == "ETHBTC" and eth.price_precision == 6 and eth.qty_precision == 4 and eth.tick_size == 1e-6
    assert table.resolve("btcusdc").pair == "BTC/USDC"
    assert not table.resolve("LUNA/USDT").active
    with pytest.raises(KeyError):
        table.resolve("BTC/USD")


def test_symbol_table_from_the_recorded_exchange_info() -> None:
    rec = recording("BINANCE.0")
    body = next(r.body for r in rec.http() if "exchangeInfo" in r.url)
    table = build_symbol_table(orjson.loads(body))
    assert len(table) > 1000
    for pair, native in (("NKN/USDT", "NKNUSDT"), ("BLZ/ETH", "BLZETH"), ("LRC/BTC", "LRCBTC"), ("RUNE/EUR", "RUNEEUR")):
        assert table.resolve(pair).symbol == native
        assert table.pair_of(native) == pair
    # base/quote come from the list, never from splitting the string
    entries = orjson.loads(body)["symbols"]
    for entry in entries:
        assert table.pair_of(entry["symbol"]) == f"{entry['baseAsset']}/{entry['quoteAsset']}"


def test_every_recorded_frame_parses() -> None:
    rec = recording("BINANCE.ws.1.0")
    kinds: dict[str, int] = {}
    for frame in rec.frames():
        event = parse(frame.text)
        key = "BookUpdate" if isinstance(event, BookUpdate) else type(event).__name__  # may be a subclass
        kinds[key] = kinds.get(key, 0) + 1
    assert kinds.get("BookUpdate") == 177
    assert set(kinds) <= {"BookUpdate", "NoneType"}
