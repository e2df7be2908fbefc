"""Parser and symbol-table tests on the reference's verbatim frames and on the real instrument capture."""

from __future__ import annotations

import json

import orjson
import pytest
from aggcore.testing.recordings import recording
from aggcore_plugin_cryptocom.messages import Ack, BookData, ErrorReply, Heartbeat, _parse_any, parse
from aggcore_plugin_cryptocom.symbols import parse_instruments, symbol_table

# -- verbatim frames of the reference (protocols doc, Crypto.com section 2.A) -------------------------

SNAPSHOT = (
    '{"id": -1, "method": "subscribe", "code": 0,'
    ' "result": {"instrument_name": "BTCUSD-PERP", "subscription": "book.BTCUSD-PERP.10", "channel": "book", "depth": 10,'
    ' "data": [{"asks": [["30082.5", "0.1689", "1"], ["30083.0", "0.1288", "1"]],'
    ' "bids": [["30079.0", "0.0505", "1"], ["30077.5", "1.0527", "2"]],'
    ' "t": 1654780033786, "tt": 1654780033755, "u": 542048017824}]}}'
)
UPDATE = (
    '{"id": -1, "method": "subscribe", "code": 0,'
    ' "result": {"instrument_name": "BTCUSD-PERP", "subscription": "book.BTCUSD-PERP.10", "channel": "book.update", "depth": 10,'
    ' "data": [{"update": {"asks": [["50126.000000", "0", "0"], ["50180.000000", "3.279000", "10"]],'
    ' "bids": [["50097.000000", "0.252000", "1"]]},'
    ' "tt": 1647917463003, "t": 1647917463003, "u": 7845460002, "pu": 7845460001}]}}'
)
# ccxt's real-traffic comment (2024-01-05) quotes the result object; on the wire it is wrapped
REAL_UPDATE_RESULT = (
    '{"instrument_name":"BTC_USDT","subscription":"book.BTC_USDT.50","channel":"book.update","depth":50,'
    '"data":[{"update":{"asks":[["43755.46","0.10000","1"]],"bids":[["43737.46","0.14096","1"]]},'
    '"t":1704484068898,"tt":1704484068892,"u":78795598253024,"pu":78795598162080,"cs":-781431132}]}'
)
HEARTBEAT = '{"id": 1587523073344, "method": "public/heartbeat", "code": 0}'
UNSUB_ACK = '{"id":1725448572836,"method":"unsubscribe","code":0}'
INVALID_CHANNEL = json.dumps(
    {"id": 0, "code": 10004, "method": "subscribe", "message": 'invalid channel {"channels":["trade.BTCUSD-PERP"]}'}
)


def test_snapshot_frame() -> None:
    msg = parse(SNAPSHOT)
    assert isinstance(msg, BookData)
    (u,) = msg.updates
    assert u.snapshot and u.symbol == "BTCUSD-PERP"
    assert u.first == u.last == 542048017824
    assert list(u.asks[0]) == ["30082.5", "0.1689", "1"]
    assert list(u.bids[1]) == ["30077.5", "1.0527", "2"]
    assert u.exchange_ts == pytest.approx(1654780033.786)


def test_t_as_a_string_int64_as_the_api_schema_types_it() -> None:
    # the doc's frames with t, u and pu spelled as the schema types them: "string (int64)"
    snap = parse(SNAPSHOT.replace('"t": 1654780033786', '"t": "1654780033786"').replace('"u": 542048017824', '"u": "542048017824"'))
    assert isinstance(snap, BookData)
    assert snap.updates[0].exchange_ts == pytest.approx(1654780033.786) and snap.updates[0].last == 542048017824
    upd = parse(UPDATE.replace('"t": 1647917463003', '"t": "1647917463003"').replace('"pu": 7845460001', '"pu": "7845460001"'))
    assert isinstance(upd, BookData)
    assert upd.updates[0].exchange_ts == pytest.approx(1647917463.003) and upd.updates[0].first == 7845460002
    odd = parse(UPDATE.replace('"t": 1647917463003', '"t": "n/a"'))
    assert isinstance(odd, BookData) and odd.updates[0].exchange_ts is None  # only the latency metric loses it


def test_update_frame_normalizes_pu_u() -> None:
    msg = parse(UPDATE)
    assert isinstance(msg, BookData)
    (u,) = msg.updates
    assert not u.snapshot
    assert u.first == 7845460001 + 1 and u.last == 7845460002  # first = pu + 1: engine's contiguity = pu == prev u
    # typed decoding: price and quantity as the same floats as float() (the general path keeps the wire levels)
    assert u.numeric and u.asks == [(50126.0, 0.0), (50180.0, 3.279)] and u.bids == [(50097.0, 0.252)]
    general = _parse_any(UPDATE)
    assert isinstance(general, BookData)
    assert [list(x) for x in general.updates[0].asks] == [["50126.000000", "0", "0"], ["50180.000000", "3.279000", "10"]]
    assert [list(x) for x in general.updates[0].bids] == [["50097.000000", "0.252000", "1"]]


def test_real_update_with_cs_and_non_consecutive_u() -> None:
    frame = '{"id":-1,"method":"subscribe","code":0,"result":' + REAL_UPDATE_RESULT + "}"
    msg = parse(frame)
    assert isinstance(msg, BookData)
    (u,) = msg.updates
    assert u.symbol == "BTC_USDT"
    assert u.first - 1 == 78795598162080 and u.last == 78795598253024
    assert u.checksum is None  # cs is undocumented and not validated


def test_empty_update_keeps_chain() -> None:
    frame = orjson.dumps(
        {
            "id": -1,
            "method": "subscribe",
            "code": 0,
            "result": {
                "instrument_name": "BTC_USDT",
                "subscription": "book.BTC_USDT.50",
                "channel": "book.update",
                "depth": 50,
                "data": [{"update": {"asks": [], "bids": []}, "t": 1, "tt": 1, "u": 20, "pu": 10}],
            },
        }
    )
    msg = parse(frame)
    assert isinstance(msg, BookData)
    (u,) = msg.updates
    assert len(u.bids) == len(u.asks) == 0 and u.first == 11 and u.last == 20


def test_heartbeat_before_result() -> None:
    msg = parse(HEARTBEAT)
    assert isinstance(msg, Heartbeat) and msg.id == 1587523073344


def test_acks() -> None:
    msg = parse(UNSUB_ACK)
    assert isinstance(msg, Ack) and msg.id == 1725448572836 and msg.method == "unsubscribe"
    assert isinstance(parse('{"id": "1", "method": "subscribe", "code": "0"}'), Ack)  # string code 0 is success


def test_invalid_channel_error() -> None:
    msg = parse(INVALID_CHANNEL)
    assert isinstance(msg, ErrorReply)
    assert msg.code == 10004 and msg.method == "subscribe" and not msg.retryable
    assert "invalid channel" in msg.describe()


def test_error_codes_int_or_string_and_channel_extraction() -> None:
    msg = parse('{"id": "7", "method": "subscribe", "code": "40107", "message": "EXCEED_MAX_SUBSCRIPTIONS"}')
    assert isinstance(msg, ErrorReply) and msg.code == 40107 and "EXCEED_MAX_SUBSCRIPTIONS" in msg.describe()
    msg = parse('{"id": 3, "method": "subscribe", "code": 42901, "message": "TOO_MANY_REQUESTS"}')
    assert isinstance(msg, ErrorReply) and msg.retryable
    msg = parse('{"id": 0, "code": 10004, "method": "subscribe", "message": "invalid channel {\\"channels\\":[\\"book.BTC_USDT.50\\"]}"}')
    assert isinstance(msg, ErrorReply) and msg.symbols == ["BTC_USDT"]
    original = '{"params":{"channels":["book.ETH_USDT.10"]}}'
    msg = parse(orjson.dumps({"id": -1, "method": "ERROR", "code": 40001, "message": "BAD_REQUEST", "original": original}))
    assert isinstance(msg, ErrorReply) and msg.symbols == ["ETH_USDT"]


def test_other_channels_ignored() -> None:
    frame = '{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"BTC_USDT","channel":"trade","data":[]}}'
    assert parse(frame) is None


def test_malformed_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse('{"this is": not json')


# -- instruments ---------------------------------------------------------------------------------------

V1_INSTRUMENTS = {  # the v1 doc's response sample, plus a spot entry of the same shape
    "id": 1,
    "method": "public/get-instruments",
    "code": 0,
    "result": {
        "data": [
            {
                "symbol": "BTCUSD-PERP",
                "inst_type": "PERPETUAL_SWAP",
                "display_name": "BTCUSD Perpetual",
                "base_ccy": "BTC",
                "quote_ccy": "USD",
                "quote_decimals": 2,
                "quantity_decimals": 4,
                "price_tick_size": "0.5",
                "qty_tick_size": "0.0001",
                "max_leverage": "50",
                "tradable": True,
                "expiry_timestamp_ms": 1624012801123,
                "underlying_symbol": "BTCUSD-INDEX",
            },
            {
                "symbol": "BTC_USDT",
                "inst_type": "CCY_PAIR",
                "display_name": "BTC/USDT",
                "base_ccy": "BTC",
                "quote_ccy": "USDT",
                "quote_decimals": 2,
                "quantity_decimals": 5,
                "price_tick_size": "0.01",
                "qty_tick_size": "0.00001",
                "max_leverage": "50",
                "tradable": True,
            },
            {"symbol": "ETHUSD-PERP", "inst_type": "PERPETUAL_SWAP", "base_ccy": "ETH", "quote_ccy": "USD_Stable_Coin"},
            {"symbol": "BTCUSD-INDEX", "inst_type": "INDEX", "base_ccy": "BTC", "quote_ccy": "USD"},
        ]
    },
}


def test_v1_instruments() -> None:
    table = symbol_table(V1_INSTRUMENTS)
    assert table.resolve("BTC/USDT").symbol == "BTC_USDT"
    assert table.resolve("BTC_USDT").pair == "BTC/USDT"
    perp = table.resolve("BTC/USD:USD")
    assert perp.symbol == "BTCUSD-PERP" and perp.kind == "perp" and perp.tick_size == 0.5 and perp.price_precision == 2
    assert table.resolve("ETH/USD:USD").symbol == "ETHUSD-PERP"  # USD_Stable_Coin is the old name of USD
    assert "BTCUSD-INDEX" not in table  # not tradable as a book
    with pytest.raises(KeyError):
        table.resolve("BTC/USD")  # no spot BTC_USD listed; never guessed by splitting


def test_instruments_error_code() -> None:
    with pytest.raises(ValueError):
        parse_instruments({"id": 1, "method": "public/get-instruments", "code": 10001, "message": "SYS_ERROR"})


def test_real_instrument_capture() -> None:
    """CRYPTO.COM.0: the real 2021 instrument list (legacy v2 shape): every pair the capture
    subscribed resolves to the exchange's own spelling, from the list alone."""
    rec = recording("CRYPTO.COM.0")
    (http,) = list(rec.http())
    table = symbol_table(orjson.loads(http.body))
    assert len(table) == 250
    config = next(line for line in rec.path.read_text().splitlines() if line.startswith("configuration: "))
    pairs = orjson.loads(config.split(": ", 1)[1])["l2_book"]
    for pair in pairs:
        base, quote = pair.split("-")  # cryptofeed's own normalized spelling, not the exchange's
        inst = table.resolve(f"{base}/{quote}")
        assert inst.symbol == f"{base}_{quote}" and inst.pair == f"{base}/{quote}"
    assert table.resolve("RSR_USDT").price_precision == 5
