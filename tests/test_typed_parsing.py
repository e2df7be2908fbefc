"""Typed decoding (msgspec) of book frames in the Binance, Bybit, Bitstamp, Coinbase and Crypto.com plugins gives exactly
what the general orjson path gives (levels as the same floats as ``float()``), and every frame the
typed decoder does not take (control frames, odd or invalid levels, garbage) behaves as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aggcore.book import BookUpdate
from aggcore.testing.recordings import recording

import aggcore_plugin_binance.messages as binance
import aggcore_plugin_bitstamp.messages as bitstamp
import aggcore_plugin_bybit.messages as bybit
import aggcore_plugin_coinbase.messages as coinbase
import aggcore_plugin_cryptocom.messages as cryptocom

Parser = Callable[[str | bytes], Any]


def _both(fast: Parser, general: Parser, frame: str) -> tuple[Any, Any] | None:
    """What the typed and the general parser give for ``frame`` (got, want); None when the
    general one raised, after checking that the typed one raises the same error."""
    try:
        want = general(frame)
    except Exception as exc:  # the general path's error must also be the typed path's
        with pytest.raises(type(exc)):
            fast(frame)
        return None
    return fast(frame), want


def _same(fast: Parser, general: Parser, frame: str) -> bool:
    """Both parsers agree on ``frame``; True when it was a book update."""
    both = _both(fast, general, frame)
    if both is None:
        return False
    got, want = both
    if not isinstance(want, BookUpdate):
        assert type(got) is type(want), frame
        return False
    assert isinstance(got, BookUpdate), frame  # a typed decoder may give a BookUpdate subclass
    for attr in ("symbol", "snapshot", "first", "last", "checksum", "exchange_ts"):
        assert getattr(got, attr) == getattr(want, attr), (attr, frame)
    for side in ("bids", "asks"):
        try:
            w = [(float(p), float(q)) for p, q, *_ in getattr(want, side)]
        except (ValueError, TypeError):  # levels no book takes: passed on as they came (the book rejects them)
            assert getattr(got, side) == getattr(want, side), frame
            continue
        g = [(float(p), float(q)) for p, q, *_ in getattr(got, side)]
        assert repr(g) == repr(w), frame  # repr: NaN equals NaN
        assert [len(level) for level in getattr(got, side)] == [len(level) for level in getattr(want, side)], frame
    return True


def _binance(data: dict[str, Any]) -> str:
    return orjson.dumps({"stream": "btcusdt@depth@100ms", "data": data}).decode()


DEPTH = {"e": "depthUpdate", "E": 1672515782136, "s": "BTCUSDT", "U": 157, "u": 160,
         "b": [["0.0024", "10"], ["0.0023", "0.00000000"]], "a": [["0.0026", "100"]]}  # fmt: skip

ODD_LEVELS: list[list[Any]] = [
    [["abc", "1"]], [["NaN", "1"]], [["1", "inf"]], [["-1", "1"]], [["1", "1", "extra"]], [["1"]], [[1.5, 2]],
    [[" 1.5", "2"]], [["1e3", "0.5"]], [[None, "1"]], [], ["1,2"],
]  # fmt: skip


def test_binance_typed_parse_matches_the_general_parse() -> None:
    frames = [_binance(DEPTH), orjson.dumps(DEPTH).decode(), _binance({**DEPTH, "E": None}), _binance({k: v for k, v in DEPTH.items() if k != "E"})]
    frames += [_binance({**DEPTH, "b": levels}) for levels in ODD_LEVELS]
    frames += [_binance({**DEPTH, "e": "other"}), '{"result":null,"id":1}',
               '{"error":{"code":2,"msg":"Invalid request"},"id":2}', '{"e":"serverShutdown","E":1}', "not json", "[1]"]  # fmt: skip
    books = sum(_same(binance.parse, binance._parse_any, f) for f in frames)
    assert books >= 4
    fast = binance.parse(_binance(DEPTH))
    assert isinstance(fast, BookUpdate) and fast.bids[0] == (0.0024, 10.0)  # the typed path was taken
    # keys that are BookUpdate fields but not Binance's are ignored, as on the general path
    odd = binance.parse(_binance({**DEPTH, "snapshot": True, "checksum": 7, "numeric": False}))
    assert isinstance(odd, BookUpdate) and not odd.snapshot and not odd.checksum and odd.numeric
    # one leniency: an update id sent as a numeric string is read as the number (as Bybit's ``u`` always was)
    lenient = binance.parse(_binance({**DEPTH, "U": "157"}))
    assert isinstance(lenient, BookUpdate) and lenient.first == 157


def test_binance_typed_parse_on_the_real_capture() -> None:
    books = sum(_same(binance.parse, binance._parse_any, f.text) for f in recording("BINANCE.ws.1.0").frames())
    assert books > 100


@pytest.mark.parametrize("symbols", [{"BTCUSDT"}, {"BTCUSDT", "ETHUSDT"}, {"ETHUSDT"}, set()])
def test_binance_decoder_of_the_subscribed_symbols_parses_as_the_general_parse(symbols: set[str]) -> None:
    """The connector decodes with the decoder of the symbols it subscribed: the same updates;
    a frame of another symbol takes the general path (and gives the same update there)."""
    decoder = binance.depth_decoder(frozenset(symbols))
    frames = [_binance(DEPTH), _binance({**DEPTH, "s": "ETHUSDT"}), _binance({**DEPTH, "s": "BTCUSDTX"}), _binance({**DEPTH, "E": None})]
    frames += [_binance({**DEPTH, "b": levels}) for levels in ODD_LEVELS]
    frames += [_binance({**DEPTH, "e": "other"}), '{"result":null,"id":1}', '{"e":"serverShutdown","E":1}', "not json"]
    assert sum(_same(lambda f: binance.parse(f, decoder), binance._parse_any, f) for f in frames) >= 5
    fast = binance.parse(_binance(DEPTH), decoder)
    assert isinstance(fast, BookUpdate) and fast.numeric is ("BTCUSDT" in symbols or not symbols)  # typed path when subscribed
    odd = binance.parse(_binance({**DEPTH, "snapshot": True, "checksum": 7}), decoder)
    assert isinstance(odd, BookUpdate) and not odd.snapshot and not odd.checksum
    assert binance.depth_decoder(frozenset(symbols)) is decoder  # built once per set of symbols


def test_binance_decoder_of_the_subscribed_symbols_on_the_real_capture() -> None:
    frames = [f.text for f in recording("BINANCE.ws.1.0").frames()]
    symbols = {u.symbol for f in frames if isinstance(u := binance.parse(f), BookUpdate)}
    decoder = binance.depth_decoder(frozenset(symbols))
    books = [binance.parse(f, decoder) for f in frames]
    assert sum(isinstance(u, BookUpdate) and u.numeric for u in books) > 100  # all took the typed path
    assert sum(_same(lambda f: binance.parse(f, decoder), binance._parse_any, f) for f in frames) > 100


def _bybit(kind: str, data: dict[str, Any], topic: str = "orderbook.50.BTCUSDT") -> str:
    return orjson.dumps({"topic": topic, "type": kind, "ts": 1700000000123, "data": data, "cts": 1}).decode()


def test_bybit_typed_parse_matches_the_general_parse() -> None:
    data = {"s": "BTCUSDT", "b": [["30000.5", "1.25"], ["29999", "0"]], "a": [["30001", "0.5"]], "u": 42, "seq": 7}
    frames = [_bybit("snapshot", data), _bybit("delta", data), _bybit("delta", {**data, "u": "43"}), _bybit("delta", data, "publicTrade.BTCUSDT")]
    frames += [_bybit("delta", {**data, "a": levels}) for levels in ODD_LEVELS]
    frames += ['{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}', '{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.X]","op":"subscribe"}',
               '{"topic":"system.status","data":[]}', '{"op":"pong","args":["1"]}', "garbage", "[]"]  # fmt: skip
    books = sum(_same(bybit.parse, bybit._parse_any, f) for f in frames)
    assert books >= 3
    fast = bybit.parse(_bybit("snapshot", data))
    assert isinstance(fast, BookUpdate) and fast.snapshot and fast.bids[0] == (30000.5, 1.25)


def _bitstamp(channel: str, data: Any, event: str = "data") -> str:
    return orjson.dumps({"data": data, "channel": channel, "event": event}).decode()


def test_bitstamp_typed_parse_matches_the_general_parse() -> None:
    data = {"timestamp": "1641343691", "microtimestamp": "1641343691406478", "bids": [["3800.71", "1.762"]], "asks": [["3801", "0.00000000"]]}
    frames = [_bitstamp("diff_order_book_ethusd", data), _bitstamp("order_book_ethusd", data), _bitstamp("live_trades_ethusd", data)]
    frames += [_bitstamp("diff_order_book_ethusd", {**data, "bids": levels}) for levels in ODD_LEVELS]
    frames += [_bitstamp("diff_order_book_ethusd", {**data, "microtimestamp": "x"}), _bitstamp("diff_order_book_ethusd", {}, "bts:subscription_succeeded"),
               _bitstamp("", {"status": "success"}, "bts:heartbeat"), _bitstamp("", None, "bts:request_reconnect"),
               _bitstamp("", {"code": None, "message": "bad"}, "bts:error"), "{}", "nope"]  # fmt: skip
    books = sum(_same(bitstamp.parse, bitstamp._parse_any, f) for f in frames)
    assert books >= 2
    fast = bitstamp.parse(_bitstamp("diff_order_book_ethusd", data))
    assert isinstance(fast, BookUpdate) and fast.first == 1641343691406478 and fast.bids[0] == (3800.71, 1.762)


def test_bitstamp_typed_parse_on_the_real_capture() -> None:
    books = sum(_same(bitstamp.parse, bitstamp._parse_any, f.text) for f in recording("BITSTAMP.ws.1.0").frames())
    assert books > 100


def test_bybit_typed_parse_on_the_real_capture() -> None:
    # an older API's capture: its book frames are not v5 ones; both paths must still agree
    for f in recording("BYBIT.ws.25.0").frames():
        _same(bybit.parse, bybit._parse_any, f.text)


def _coinbase_same(frame: str) -> int:
    """Coinbase's typed path and its general path agree on ``frame``; the number of book updates."""
    both = _both(coinbase.parse, coinbase._parse_any, frame)
    if both is None:
        return 0
    got, want = both
    for attr in ("channel", "seq", "timestamp", "subscriptions", "error", "heartbeat"):
        assert getattr(got, attr) == getattr(want, attr), (attr, frame)
    assert len(got.books) == len(want.books), frame
    for g, w in zip(got.books, want.books):
        assert _same(lambda _: g, lambda _: w, frame)
    return len(got.books)


def _l2(updates: list[Any], **envelope: Any) -> str:
    event = {"type": "update", "product_id": "BTC-USD", "updates": updates}
    msg = {"channel": "l2_data", "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z", "sequence_num": 4, "events": [event]}
    return orjson.dumps({**msg, **envelope}).decode()


def _upd(side: str, price: Any, qty: Any) -> dict[str, Any]:
    return {"side": side, "event_time": "2023-02-09T20:32:50.7Z", "price_level": price, "new_quantity": qty}


def test_coinbase_typed_parse_matches_the_general_parse() -> None:
    good = [_upd("bid", "21921.73", "0.06317902"), _upd("offer", "21921.74", "0"), _upd("ask", "21922", "1.5")]
    frames = [_l2(good), _l2(good, events=None), _l2(good, timestamp=None), _l2([]), _l2(good, sequence_num=None)]
    frames += [_l2([_upd("bid", p, q)]) for (p, q, *_) in (lv + ["1", "1"] for lv in ([], ["abc"], ["NaN"], ["1", "inf"], ["-1"], [" 1.5"], ["1e3"], [None], [1.5, 2]))]
    frames += [_l2([_upd("middle", "1", "1")]), _l2([{"side": "bid", "price_level": "1"}]), _l2(good, timestamp=12)]
    snapshot = orjson.loads(_l2(good))
    snapshot["events"] = [{**snapshot["events"][0], "type": "snapshot"}, {"type": "other", "product_id": "ETH-USD"},
                          {**snapshot["events"][0], "product_id": "ETH-USD", "updates": None}]  # fmt: skip
    frames += [orjson.dumps(snapshot).decode(), orjson.dumps({**snapshot, "events": [{"type": "update"}]}).decode()]
    frames += ['{"type":"error","message":"failure","reason":"bad product"}', "not json", "[1]",
               '{"channel":"subscriptions","timestamp":"2023-02-09T20:32:50Z","sequence_num":1,"events":[{"subscriptions":{"level2":["BTC-USD"]}}]}',
               '{"channel":"heartbeats","sequence_num":2,"events":[{"heartbeat_counter":"7"}]}']  # fmt: skip
    books = sum(_coinbase_same(f) for f in frames)
    assert books >= 8
    fast = coinbase.parse(_l2(good))
    assert fast.books[0].numeric and fast.books[0].bids == [(21921.73, 0.06317902)]  # the typed path was taken
    # one leniency: a sequence number sent as a numeric string is read as the number
    assert coinbase.parse(_l2(good, sequence_num="4")).seq == 4


def test_coinbase_typed_parse_matches_on_the_fakes_frames() -> None:
    from aggcore.testing.market import GenBook

    # what the fake sends: a snapshot and then updates of a drifting book, as wire strings
    book = GenBook(seed=5, price_precision=2, qty_precision=8)
    bids, asks = book.top(50)
    updates = [_upd("bid", p, q) for p, q in bids] + [_upd("offer", p, q) for p, q in asks]
    frames = [_l2(updates, events=[{"type": "snapshot", "product_id": "BTC-USD", "updates": updates}])]
    for _ in range(300):
        frames.append(_l2([_upd("bid" if ch.side == "bid" else "offer", ch.price, ch.qty) for ch in book.step()]))
    assert sum(_coinbase_same(f) for f in frames) == len(frames)


def _cryptocom_same(frame: str) -> int:
    """Crypto.com's typed path and its general path agree on ``frame``; the number of book updates."""
    both = _both(cryptocom.parse, cryptocom._parse_any, frame)
    if both is None:
        return 0
    got, want = both
    assert type(got) is type(want), frame
    if not isinstance(want, cryptocom.BookData):
        return 0
    assert isinstance(got, cryptocom.BookData) and len(got.updates) == len(want.updates), frame
    for g, w in zip(got.updates, want.updates):
        # levels are [price, quantity, orders]: the typed path keeps the first two, which is all a book reads
        trimmed = BookUpdate(w.symbol, [lv[:2] for lv in w.bids], [lv[:2] for lv in w.asks], snapshot=w.snapshot,
                             first=w.first, last=w.last, exchange_ts=w.exchange_ts)  # fmt: skip
        ref = trimmed if g.numeric else w  # a frame the typed decoder did not take parses as before
        assert _same(lambda _: g, lambda _: ref, frame)
    return len(got.updates)


def _delta(bids: Any, asks: Any = (), **data: Any) -> str:
    d = {"update": {"bids": bids, "asks": asks}, "t": 1700000000123, "tt": 1700000000120, "u": 542048017824, "pu": 542048017820, "cs": 1, **data}
    return orjson.dumps({"id": -1, "method": "subscribe", "code": 0,
                         "result": {"instrument_name": "BTC_USDT", "subscription": "book.BTC_USDT.50", "channel": "book.update", "depth": 50, "data": [d]}}).decode()  # fmt: skip


def test_cryptocom_typed_parse_matches_the_general_parse() -> None:
    good = [["30000.1", "0.5", "3"], ["29999.9", "0", "0"]]
    frames = [_delta(good, [["30001", "1.25", 2]]), _delta([], []), _delta(good, t="1700000000123"), _delta(good, u="542048017824", pu="542048017820")]
    frames += [_delta(good, t=None), _delta(good, t="soon"), _delta(None, None), orjson.dumps({**orjson.loads(_delta(good)), "code": "0"}).decode()]
    frames += [_delta([lv]) for lv in (["abc", "1", "1"], ["NaN", "1", "1"], ["1", "inf", "1"], ["-1", "1", "1"], [" 1.5", "2", "1"],
                                        ["1e3", "0.5", "1"], [None, "1", "1"], ["1", "1"], ["1", "1", "1", "1"], [1.5, 2, 1])]  # fmt: skip
    frames += [_delta(good, pu=None), _delta(good, u="x"), orjson.dumps({**orjson.loads(_delta(good)), "code": 10004, "message": "invalid channel"}).decode()]
    frames += ['{"id":1587523073344,"method":"public/heartbeat","code":0}', '{"id":7,"method":"subscribe","code":0}', "not json",
               '{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name":"BTC_USDT","channel":"book","data":[{"bids":[["1","2","1"]],"asks":[],"u":5,"t":1}]}}',
               '{"id":-1,"method":"subscribe","code":0,"result":{"channel":"trade","instrument_name":"BTC_USDT","data":[]}}']  # fmt: skip
    books = sum(_cryptocom_same(f) for f in frames)
    assert books >= 10
    fast = cryptocom.parse(_delta(good))
    assert isinstance(fast, cryptocom.BookData) and fast.updates[0].numeric and fast.updates[0].bids == [(30000.1, 0.5), (29999.9, 0.0)]


def test_cryptocom_typed_parse_matches_on_a_drifting_book() -> None:
    from aggcore.testing.market import GenBook

    book = GenBook(seed=9, price_precision=2, qty_precision=6)
    frames = []
    for _ in range(300):
        changes = book.step()
        frames.append(_delta([[c.price, c.qty, "1"] for c in changes if c.side == "bid"], [[c.price, c.qty, "1"] for c in changes if c.side == "ask"]))
    assert sum(_cryptocom_same(f) for f in frames) == len(frames)
