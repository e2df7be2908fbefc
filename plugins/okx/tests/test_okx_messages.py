"""Parser tests on the reference's verbatim OKX v5 frames and the checksum test vectors."""

from __future__ import annotations

import orjson
from aggcore.book import OrderBook
from aggcore_plugin_okx.messages import Event, checksum, checksum_of_levels, parse

DOC_SNAPSHOT = """{
  "arg": {"channel": "books", "instId": "BTC-USDT"},
  "action": "snapshot",
  "data": [{
      "asks": [["8476.98","415","0","13"],["8477","7","0","2"],["8477.34","85","0","1"],["8477.56","1","0","1"],["8505.84","8","0","1"],["8506.37","85","0","1"],["8506.49","2","0","1"],["8506.96","100","0","2"]],
      "bids": [["8476.97","256","0","12"],["8475.55","101","0","1"],["8475.54","100","0","1"],["8475.3","1","0","1"],["8447.32","6","0","1"],["8447.02","246","0","1"],["8446.83","24","0","1"],["8446","95","0","3"]],
      "ts": "1597026383085",
      "checksum": 0,
      "prevSeqId": -1,
      "seqId": 123456
  }]
}"""

REC_2022_UPDATE = '{"arg":{"channel":"books","instId":"UNI-USD-SWAP"},"action":"update","data":[{"asks":[["5.158","129","0","2"],["5.233","240","0","1"]],"bids":[["5.14","427","0","4"],["5.138","26","0","2"],["5.117","0","0","0"]],"ts":"1652459225464","checksum":1361161687}]}'

BBO = '{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}'


def test_doc_snapshot() -> None:
    [u] = parse(DOC_SNAPSHOT)  # type: ignore[misc]
    assert u.symbol == "BTC-USDT" and u.snapshot
    assert u.first is None and u.last == 123456
    assert u.checksum is None  # 0 = not provided (deprecated since 2026-06-23)
    assert u.bids[0] == ["8476.97", "256", "0", "12"] and len(u.asks) == 8
    assert u.exchange_ts == 1597026383.085


def test_doc_update_normalizes_prev_seq() -> None:
    frame = orjson.loads(DOC_SNAPSHOT)
    frame["action"] = "update"
    frame["data"][0].update(prevSeqId=123456, seqId=123457)
    [u] = parse(orjson.dumps(frame))  # type: ignore[misc]
    assert not u.snapshot and u.first == 123457 and u.last == 123457


def test_heartbeat_and_reset_shapes() -> None:
    hb = '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","checksum":0,"prevSeqId":15,"seqId":15}]}'
    [u] = parse(hb)  # type: ignore[misc]
    assert (u.first, u.last, u.bids, u.asks) == (16, 15, [], [])
    reset = hb.replace('"prevSeqId":15,"seqId":15', '"prevSeqId":15,"seqId":3')
    [r] = parse(reset)  # type: ignore[misc]
    assert (r.first, r.last) == (16, 3)


def test_recorded_2022_update_without_seq_ids() -> None:
    [u] = parse(REC_2022_UPDATE)  # type: ignore[misc]
    assert u.symbol == "UNI-USD-SWAP" and u.first is None and u.last is None
    assert u.checksum == 1361161687
    [v] = parse(REC_2022_UPDATE, checksums=False)  # type: ignore[misc]
    assert v.checksum is None


def test_other_channels_are_events() -> None:
    e = parse(BBO)
    assert isinstance(e, Event) and e.kind == "other" and e.channel == "bbo-tbt"


def test_acks_errors_notice_pong() -> None:
    ack = parse('{"id": "1512", "event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}, "connId": "a4d3ae55"}')
    assert isinstance(ack, Event) and (ack.kind, ack.id, ack.symbol, ack.conn_id) == ("subscribe", "1512", "BTC-USDT", "a4d3ae55")
    err = parse('{"event":"error","code":"60018","msg":"Wrong URL or channel:bbo-tbt,instId:ETH-USD-SWAP doesn\'t exist. Please use the correct URL, channel and parameters referring to API document.","connId":"x"}')
    assert isinstance(err, Event) and err.kind == "error" and err.code == "60018" and err.symbol == "ETH-USD-SWAP"
    old = parse('{"event":"error","msg":"channel:index-tickers,instId:BTC-USDT1 doesn\'t exist","code":"60018"}')
    assert isinstance(old, Event) and old.symbol == "BTC-USDT1"
    bad = parse('{"id": "1512", "event": "error", "code": "60012", "msg": "Invalid request: {\\"op\\": \\"subscribe\\"}", "connId": "a4d3ae55"}')
    assert isinstance(bad, Event) and bad.code == "60012" and bad.symbol is None and bad.id == "1512"
    notice = parse('{"event": "notice", "code": "64008", "msg": "The connection will soon be closed for a service upgrade. Please reconnect.", "connId": "a4d3ae55"}')
    assert isinstance(notice, Event) and notice.kind == "notice" and notice.code == "64008"
    assert parse("pong") == Event("pong") and parse(b"pong") == Event("pong")


def test_checksum_vectors_from_the_reference() -> None:
    assert checksum_of_levels([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294
    assert checksum_of_levels([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360


def test_checksum_uses_wire_strings_of_the_book() -> None:
    book = OrderBook(keep_strings=True)
    book.bids.apply([["3366.1", "7", "0", "3"], ["3366", "6", "3", "4"]])
    book.asks.apply([["3366.8", "9", "10", "3"], ["3368", "8", "3", "4"]])
    assert checksum(book) == -1881014294
    book.bids.apply([["3366", "0", "0", "0"]])
    book.asks.apply([["3372", "8", "3", "4"]])
    assert checksum(book) == 831078360
