"""Parser tests: the reference's verbatim Advanced Trade frames, and the real recorded Pro feed."""

from __future__ import annotations

import orjson
import pytest
from aggcore.book import OrderBook, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.errors import ParsingError
from aggcore.models import BookState
from aggcore.testing.recordings import recording
from aggcore_plugin_coinbase.messages import _parse_any, parse, parse_exchange, parse_timestamp

# verbatim from the reference (ccxt's real-data comment, 2023-02-09; its trailing comma removed)
SNAPSHOT = """{
    "channel": "l2_data",
    "client_id": "",
    "timestamp": "2023-02-09T20:32:50.714964855Z",
    "sequence_num": 0,
    "events": [
        {
            "type": "snapshot",
            "product_id": "BTC-USD",
            "updates": [
                {
                    "side": "bid",
                    "event_time": "1970-01-01T00:00:00Z",
                    "price_level": "21921.73",
                    "new_quantity": "0.06317902"
                },
                {
                    "side": "bid",
                    "event_time": "1970-01-01T00:00:00Z",
                    "price_level": "21921.3",
                    "new_quantity": "0.02"
                }
            ]
        }
    ]
}"""

# verbatim from the reference (hummingbot real sample, 2024-10-08)
UPDATE = """{
    "channel": "l2_data",
    "client_id": "",
    "timestamp": "2024-10-08T09:10:36.04370306Z",
    "sequence_num": 9,
    "events": [
        {
            "type": "update",
            "product_id": "BTC-USD",
            "updates": [
                {"side": "bid", "event_time": "2024-10-08T09:10:34.970831Z", "price_level": "62319.46", "new_quantity": "0.00169"},
                {"side": "bid", "event_time": "2024-10-08T09:10:34.970831Z", "price_level": "62318.81", "new_quantity": "0"},
                {"side": "offer", "event_time": "2024-10-08T09:10:34.970831Z", "price_level": "62336.65", "new_quantity": "0.03021537"}
            ]
        }
    ]
}"""

ACK = """{
  "channel": "subscriptions",
  "client_id": "",
  "timestamp": "2026-04-07T14:30:00.000000Z",
  "sequence_num": 0,
  "events": [
    {
      "subscriptions": {
        "level2": ["BTC-USD"],
        "market_trades": ["BTC-USD", "ETH-USD"]
      }
    }
  ]
}"""

HEARTBEAT = (
    '{"channel":"heartbeats","client_id":"","timestamp":"2026-04-07T14:30:10.000000Z","sequence_num":0,'
    '"events":[{"current_time":"2026-04-07 14:30:10.000000000+00:00","heartbeat_counter":42}]}'
)
AUTH_ERROR = '{"type":"error","message":"authentication failure"}'


def test_snapshot_verbatim() -> None:
    msg = parse(SNAPSHOT)
    assert msg.channel == "l2_data" and msg.seq == 0
    (u,) = msg.books
    assert u.snapshot and u.symbol == "BTC-USD"
    # typed decoding: the wire strings as the same floats as float() (the general path keeps the strings)
    assert u.numeric and list(u.bids) == [(21921.73, 0.06317902), (21921.3, 0.02)]
    assert list(_parse_any(SNAPSHOT).books[0].bids) == [("21921.73", "0.06317902"), ("21921.3", "0.02")]
    assert list(u.asks) == []
    assert u.first is None and u.checksum is None
    # the envelope timestamp (nanoseconds), not the epoch-0 level event_time
    assert u.exchange_ts == pytest.approx(1675974770.714964855, abs=1e-6)


def test_update_verbatim_applies_offer_as_ask_and_zero_deletes() -> None:
    msg = parse(UPDATE)
    assert msg.seq == 9
    (u,) = msg.books
    assert not u.snapshot
    assert list(u.bids) == [(62319.46, 0.00169), (62318.81, 0.0)]
    assert list(u.asks) == [(62336.65, 0.03021537)]
    book = OrderBook()
    book.bids.apply([("62318.81", "1.0")])
    book.bids.apply_numbers(u.bids)
    book.asks.apply_numbers(u.asks)
    assert book.bids.top(5) == [(62319.46, 0.00169)]
    assert book.asks.top(5) == [(62336.65, 0.03021537)]


def test_several_events_in_one_frame() -> None:
    frame = orjson.loads(UPDATE)
    second = dict(frame["events"][0], product_id="ETH-USD", updates=[
        {"side": "offer", "event_time": "x", "price_level": "3000.1", "new_quantity": "0.00000000"}
    ])
    frame["events"].append(second)
    frame["events"].append({"type": "something_new", "product_id": "ETH-USD"})  # ignored
    msg = parse(orjson.dumps(frame))
    assert [u.symbol for u in msg.books] == ["BTC-USD", "ETH-USD"]
    assert list(msg.books[1].asks) == [(3000.1, 0.0)]


def test_ack_heartbeat_error() -> None:
    ack = parse(ACK)
    assert ack.subscriptions == {"level2": ["BTC-USD"], "market_trades": ["BTC-USD", "ETH-USD"]}
    hb = parse(HEARTBEAT)
    assert hb.channel == "heartbeats" and hb.heartbeat == 42
    hb_str = parse(HEARTBEAT.replace("42", '"7"'))
    assert hb_str.heartbeat == 7
    err = parse(AUTH_ERROR)
    assert err.error == "authentication failure" and err.seq is None


def test_bad_frames_raise() -> None:
    with pytest.raises(ParsingError):
        parse('{"this is": not json')
    with pytest.raises(ParsingError):
        parse(UPDATE.replace('"offer"', '"sideways"'))
    with pytest.raises(KeyError):
        parse('{"channel":"l2_data","sequence_num":1,"events":[{"type":"update","updates":[]}]}')


def test_timestamps() -> None:
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0.0
    assert parse_timestamp("2024-10-08T09:10:34.970831Z") == pytest.approx(1728378634.970831)
    assert parse_timestamp(None) is None and parse_timestamp("garbage") is None


# -- real data: the retired Pro feed (same shapes as the Exchange feed's level2_batch) ----------


def test_recorded_pro_feed_builds_uncrossed_books() -> None:
    rec = recording("COINBASE.ws.28.0")
    sent = [orjson.loads(t) for t in rec.sent()]
    products = set(sent[0]["product_ids"])
    rules = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)
    books = {p: SymbolBook("coinbase", p, p, rules) for p in products}
    snapshots = updates = levels = 0
    for frame in rec.frames():
        u = parse_exchange(frame.text)
        if u is None:
            continue
        book = books[u.symbol]
        if u.snapshot:
            snapshots += 1
            assert len(u.bids) > 0 and len(u.asks) > 0
        else:
            updates += 1
            assert book.state is BookState.LIVE  # every delta follows its product's snapshot
        levels += len(u.bids) + len(u.asks)
        book.apply(u)
        assert book.state is BookState.LIVE, (u, book.error)
        assert not book.book.crossed()
    assert snapshots == 10 and updates == 9719
    assert all(b.live and b.crossed_books == 0 for b in books.values())
    # realistic sizes: full aggregated books of hundreds to over a thousand levels per side
    assert max(len(b.book.bids) + len(b.book.asks) for b in books.values()) > 1000


def test_recorded_exchange_products_build_a_symbol_table() -> None:
    from aggcore_plugin_coinbase.symbols import build_table

    rec = recording("COINBASE.0")
    (http,) = [h for h in rec.http() if h.url.endswith("/products")]
    table = build_table(orjson.loads(http.body))
    assert len(table) > 100
    assert table.resolve("BTC/USD").symbol == "BTC-USD"
    assert table.resolve("CVC/USDC").symbol == "CVC-USDC"
    assert table.by_symbol["BTC-GBP"].price_precision == 2
