"""Parser and symbol-table tests on the protocol reference's verbatim frames and on real captures."""

from __future__ import annotations

import orjson
import pytest
from aggcore.book import BookUpdate
from aggcore.testing.recordings import recording

from aggcore_plugin_bitstamp.messages import (
    Ack,
    BtsError,
    Heartbeat,
    Other,
    ReconnectRequest,
    Unsubscribed,
    parse,
    parse_snapshot,
)
from aggcore_plugin_bitstamp.symbols import parse_instruments

DIFF = (
    '{"data":{"timestamp":"1641343691","microtimestamp":"1641343691406478","bids":[["3800.71","1.76200000"],'
    '["3800.07","10.00000000"],["3799.64","0.00000000"],["3797.93","2.73248242"]],"asks":[]},'
    '"channel":"diff_order_book_ethusd","event":"data"}'
)
FULL = (
    '{"data": {"timestamp": "1789457617", "microtimestamp": "1789457617906487", "bids": [["77188", "0.41122"], '
    '["77183", "0.32386"], ["77180", "1.87131"]], "asks": [["77189", "0.41124"], ["77193", "0.32385"], '
    '["77194", "1.10113"]]}, "channel": "order_book_btcusd-perp", "event": "data"}'
)
TRADE = (
    '{"data":{"id":216000477,"timestamp":"1641343699","amount":0.0792,"amount_str":"0.07920000","price":3805.44,'
    '"price_str":"3805.44","type":0,"microtimestamp":"1641343699596000","buy_order_id":1443875737346049,'
    '"sell_order_id":1443875731320832},"channel":"live_trades_ethusd","event":"trade"}'
)
SNAPSHOT = (
    '{"timestamp": "1641343695", "microtimestamp": "1641343695572693", "bids": [["0.14695", "4567.41344936"]], '
    '"asks": [["0.14844", "4617.85577487"]]}'
)
PAIR_INFO = (
    '{"trading": "Enabled", "base_decimals": 8, "url_symbol": "btcusd", "name": "BTC/USD", '
    '"instant_and_market_orders": "Enabled", "minimum_order": "20.0 USD", "counter_decimals": 2, '
    '"description": "Bitcoin / U.S. dollar"}'
)


def test_diff_frame() -> None:
    u = parse(DIFF)
    assert isinstance(u, BookUpdate)
    assert u.symbol == "ethusd" and not u.snapshot
    assert u.first == u.last == 1641343691406478
    assert u.exchange_ts == pytest.approx(1641343691.406478)
    assert u.bids[2] == (3799.64, 0.0) and u.asks == []  # typed decoding: the same floats as float()


def test_full_book_frame_is_a_snapshot() -> None:
    u = parse(FULL)
    assert isinstance(u, BookUpdate) and u.snapshot
    assert u.symbol == "btcusd-perp" and u.last == 1789457617906487 and len(u.asks) == 3


def test_events() -> None:
    ack = parse('{"event":"bts:subscription_succeeded","channel":"diff_order_book_sgbeur","data":{}}')
    assert isinstance(ack, Ack) and ack.symbol == "sgbeur"
    unsub = parse('{"event":"bts:unsubscription_succeeded","channel":"diff_order_book_sgbeur","data":{}}')
    assert isinstance(unsub, Unsubscribed) and unsub.symbol == "sgbeur"
    hb = parse('{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}')
    assert isinstance(hb, Heartbeat) and hb.status == "success"
    for data in ("null", '""', "{}"):
        assert isinstance(parse('{"event": "bts:request_reconnect", "channel": "", "data": %s}' % data), ReconnectRequest)
    err = parse('{"event": "bts:error", "channel": "", "data": {"code": null, "message": "Invalid channel provided."}}')
    assert isinstance(err, BtsError) and err.message == "Invalid channel provided." and err.symbol is None
    trade = parse(TRADE)
    assert isinstance(trade, Other) and trade.event == "trade"


def test_malformed_frames_raise() -> None:
    with pytest.raises(ValueError):
        parse('{"this is": not json')
    with pytest.raises(KeyError):
        parse('{"no": "event"}')


def test_rest_snapshot() -> None:
    s = parse_snapshot("sgbeur", SNAPSHOT)
    assert s.snapshot and s.first == s.last == 1641343695572693
    assert s.bids == [["0.14695", "4567.41344936"]]


def test_instruments_from_catalog_entry() -> None:
    table = parse_instruments([orjson.loads(PAIR_INFO), {"url_symbol": "x", "name": "no slash"}])
    assert len(table) == 1
    inst = table.resolve("BTC/USD")
    assert inst.symbol == "btcusd" and inst.pair == "BTC/USD"
    assert inst.price_precision == 2 and inst.qty_precision == 8 and inst.active
    assert table.resolve("BTCUSD").symbol == "btcusd"  # wrong case would get bts:error on the wire
    with pytest.raises(KeyError):
        table.resolve("XRP/USD")


def test_recorded_catalog() -> None:
    rec = recording("BITSTAMP.0")
    bodies = [r.body for r in rec.http() if "trading-pairs-info" in r.url]
    assert bodies
    table = parse_instruments(orjson.loads(bodies[0]))
    assert len(table) > 50
    for pair, native in (("ETH/USD", "ethusd"), ("USDT/EUR", "usdteur"), ("BAT/BTC", "batbtc"), ("GALA/EUR", "galaeur")):
        assert table.resolve(pair).symbol == native


def test_recorded_frames_all_parse() -> None:
    counts: dict[str, int] = {}
    for frame in recording("BITSTAMP.ws.1.0").frames():
        msg = parse(frame.text)
        counts[type(msg).__name__] = counts.get(type(msg).__name__, 0) + 1
        if isinstance(msg, BookUpdate):
            assert not msg.snapshot and msg.last is not None
            for level in (*msg.bids, *msg.asks):
                assert len(level) == 2 and float(level[1]) >= 0
    assert counts == {"Ack": 20, "BookUpdate": 717, "Other": 10}
