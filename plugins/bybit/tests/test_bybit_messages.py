"""Parser tests on the verbatim v5 examples of Bybit's docs (the reference, §2)."""

from __future__ import annotations

import orjson
import pytest
from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.models import BookState
from aggcore.testing.recordings import recording

from aggcore_plugin_bybit.messages import Ack, Pong, SystemStatus, Unknown, failed_topic, parse, topic_symbol

# docs/v5/websocket/public/orderbook.mdx, delta example, verbatim
DELTA = """{
    "topic": "orderbook.50.BTCUSDT",
    "type": "delta",
    "ts": 1687940967466,
    "data": {
        "s": "BTCUSDT",
        "b": [["30247.20","30.028"],["30245.40","0.224"],["30242.10","1.593"],["30240.30","1.305"],["30240.00","0"]],
        "a": [["30248.70","0"],["30249.30","0.892"],["30249.50","1.778"],["30249.60","0"],["30251.90","2.947"],["30252.20","0.659"],["30252.50","4.591"]],
        "u": 177400507,
        "seq": 66544703342
    },
    "cts": 1687940967464
}"""

# the snapshot example, with the doc's "..." elisions (and the trailing comma they leave) removed
SNAPSHOT = """{
    "topic": "orderbook.50.BTCUSDT",
    "type": "snapshot",
    "ts": 1672304484978,
    "data": {
        "s": "BTCUSDT",
        "b": [["16493.50", "0.006"], ["16493.00", "0.100"]],
        "a": [["16611.00", "0.029"], ["16612.00", "0.213"]],
    "u": 18521288,
    "seq": 7961638724
    },
    "cts": 1672304484976
}"""

SPOT_ACK = '{"success": true, "ret_msg": "subscribe", "conn_id": "2324d924-aa4d-45b0-a858-7b8be29ab52b", "req_id": "10001", "op": "subscribe"}'
LINEAR_ACK = '{"success": true, "ret_msg": "", "conn_id": "3cd84cb1-4d06-4a05-930a-2efe5fc70f0f", "req_id": "", "op": "subscribe"}'
OPTION_ACK = '{"success": true, "conn_id": "x", "data": {"failTopics": [], "successTopics": ["orderbook.100.BTC-6JAN23-18000-C"]}, "type": "COMMAND_RESP"}'
SPOT_PONG = '{"success": true, "ret_msg": "pong", "conn_id": "0970e817-426e-429a-a679-ff7f55e0b16a", "op": "ping"}'
LINEAR_PONG = '{"success": true, "ret_msg": "pong", "conn_id": "465772b1-7630-4fdc-a492-e003e6f0f260", "req_id": "", "op": "ping"}'
OPTION_PONG = '{"args": ["1672916271846"], "op": "pong"}'
STATUS = '{"topic": "system.status", "ts": 1751858399649, "data": [{"id": "4d95b2a0-587f-11f0-bcc9-56f28c94d6ea", "title": "t06", "state": "completed", "begin": "1751596902000", "end": "1751597011000", "href": "", "serviceTypes": [2,3,4,5], "product": [1,2], "uidSuffix": [], "maintainType": 1, "env": 1}]}'


def test_delta_verbatim() -> None:
    u = parse(DELTA)
    assert isinstance(u, BookUpdate) and not u.snapshot
    assert u.symbol == "BTCUSDT" and u.first == u.last == 177400507
    assert u.bids[0] == (30247.2, 30.028) and len(u.bids) == 5 and len(u.asks) == 7  # typed decoding: floats as float()
    assert u.exchange_ts == pytest.approx(1687940967.466)


def test_snapshot_then_delta_in_a_book() -> None:
    snap = parse(SNAPSHOT)
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.last == 18521288
    book = SymbolBook("bybit", "BTCUSDT", "BTC/USDT", SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS))
    book.apply(snap)
    assert book.state is BookState.LIVE
    assert book.book.bids.top(2) == [(16493.5, 0.006), (16493.0, 0.1)]
    assert book.book.asks.top(1) == [(16611.0, 0.029)]
    # the next delta must continue u by one; a jump is a gap
    book.apply(BookUpdate("BTCUSDT", [["16493.50", "0"]], [], first=18521289, last=18521289))
    assert book.state is BookState.LIVE and book.book.bids.best() == 16493.0
    book.apply(BookUpdate("BTCUSDT", [], [], first=18521291, last=18521291))
    assert book.state is BookState.RESYNCING and book.gaps == 1


def test_restart_snapshot_with_u_1_resets() -> None:
    book = SymbolBook("bybit", "BTCUSDT", "BTC/USDT", SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS))
    book.apply(parse(SNAPSHOT))  # type: ignore[arg-type]
    restart = orjson.loads(SNAPSHOT)
    restart["data"]["u"] = 1
    restart["data"]["b"] = [["16400.00", "1"]]
    book.apply(parse(orjson.dumps(restart)))  # type: ignore[arg-type]
    assert book.state is BookState.LIVE and book.last_seq == 1 and book.book.bids.top(5) == [(16400.0, 1.0)]
    assert book.gaps == 0


def test_acks_and_pongs_of_each_endpoint() -> None:
    spot = parse(SPOT_ACK)
    assert isinstance(spot, Ack) and spot.success and spot.op == "subscribe" and spot.req_id == "10001"
    linear = parse(LINEAR_ACK)
    assert isinstance(linear, Ack) and linear.success and linear.req_id is None
    assert isinstance(parse(OPTION_ACK), Ack)
    for pong in (SPOT_PONG, LINEAR_PONG, OPTION_PONG):
        assert isinstance(parse(pong), Pong)


@pytest.mark.parametrize(
    ("frame", "topic"),
    [
        ('{"success":false,"ret_msg":"error:handler not found,topic:orderbook.500.BTCUSDT","conn_id":"c","req_id":"subscribe","op":"subscribe"}', "orderbook.500.BTCUSDT"),
        ('{"success":false,"ret_msg":"error:already subscribed,topic:kline.1.BTCUSDT","conn_id":"x","op":"subscribe"}', "kline.1.BTCUSDT"),
        ('{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.X]","op":"subscribe"}', "orderbook.50.X"),
        ('{"success":false,"ret_msg":"args size >10","op":"subscribe"}', None),
    ],
)
def test_error_replies(frame: str, topic: str | None) -> None:
    ack = parse(frame)
    assert isinstance(ack, Ack) and not ack.success
    assert failed_topic(ack.ret_msg) == topic


def test_topic_symbol() -> None:
    assert topic_symbol("orderbook.1000.BTCUSDT-21FEB25") == "BTCUSDT-21FEB25"
    assert topic_symbol("publicTrade.BTCUSDT") is None


def test_system_status_verbatim() -> None:
    status = parse(STATUS)
    assert isinstance(status, SystemStatus) and status.items[0]["title"] == "t06"
    assert status.ongoing(1751597000000) == []  # "completed"
    live = SystemStatus([{**status.items[0], "state": "processing"}])
    assert len(live.ongoing(1751597000000)) == 1


def test_malformed_frame_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse('{"this is": not json')
    with pytest.raises(KeyError):
        parse('{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{"s":"BTCUSDT"}}')


def test_retired_v2_recording_is_not_taken_for_v5() -> None:
    """The captures of Bybit are of the retired v2 protocol (``orderBookL2_25``): nothing in
    them may parse as a v5 book update; acks and pongs still parse as control frames."""
    rec = recording("BYBIT.ws.25.0")
    seen = 0
    for frame in rec.frames():
        event = parse(frame.text)
        assert not isinstance(event, BookUpdate)
        assert isinstance(event, (Unknown, Ack, Pong))
        seen += 1
    assert seen > 0
