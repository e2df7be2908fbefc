"""Parser and checksum tests on the reference's verbatim frames and test vectors."""

from __future__ import annotations

from aggcore.book import BookUpdate, SymbolBook, SyncRules
from aggcore.models import BookState
from aggcore_plugin_kraken.connector import KrakenConnector
from aggcore_plugin_kraken.messages import (
    HEARTBEAT,
    Instruments,
    Pong,
    Reply,
    Status,
    book_checksum,
    checksum_levels,
    formats_for,
    parse,
    parse_v1,
)

MATIC_SNAPSHOT = """{"channel": "book", "type": "snapshot", "data": [{"symbol": "MATIC/USD",
  "bids": [{"price": 0.5666, "qty": 4831.75496356}, {"price": 0.5665, "qty": 6658.22734739}, {"price": 0.5664, "qty": 18724.91513344}, {"price": 0.5663, "qty": 11563.92544914}, {"price": 0.5662, "qty": 14006.65365711}, {"price": 0.5661, "qty": 17454.85679807}, {"price": 0.566, "qty": 18097.1547}, {"price": 0.5659, "qty": 33644.89175666}, {"price": 0.5658, "qty": 148.3464}, {"price": 0.5657, "qty": 606.70854372}],
  "asks": [{"price": 0.5668, "qty": 4410.79769741}, {"price": 0.5669, "qty": 4655.40412487}, {"price": 0.567, "qty": 49844.89424998}, {"price": 0.5671, "qty": 24306.41678}, {"price": 0.5672, "qty": 29783.25223475}, {"price": 0.5673, "qty": 57234.71239278}, {"price": 0.5674, "qty": 45065.04744}, {"price": 0.5675, "qty": 5912.76380354}, {"price": 0.5676, "qty": 42514.92434778}, {"price": 0.5677, "qty": 36304.0847022}],
  "checksum": 2439117997, "timestamp": "2023-10-06T17:35:55.440295Z"}]}"""
MATIC_UPDATE = """{"channel": "book", "type": "update", "data": [{"symbol": "MATIC/USD", "bids": [{"price": 0.5657, "qty": 1098.3947558}], "asks": [], "checksum": 2114181697, "timestamp": "2023-10-06T17:35:55.440295Z"}]}"""
MATIC_FORMATS = {"MATIC/USD": (".4f", ".8f")}


def _book(depth: int = 10) -> SymbolBook:
    return SymbolBook("kraken", "MATIC/USD", "MATIC/USD", KrakenConnector.rules, depth=depth)


def test_v2_doc_example_snapshot_and_update_verify_with_precisions() -> None:
    [snap] = parse(MATIC_SNAPSHOT, MATIC_FORMATS)
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.checksum == 2439117997
    assert snap.bids[6] == ("0.5660", "18097.15470000")  # precision restored from the instrument list
    assert abs(snap.exchange_ts - 1696613755.440295) < 1e-3  # type: ignore[operator]
    book = _book()
    assert book.apply(snap) and book.state is BookState.LIVE
    [upd] = parse(MATIC_UPDATE, MATIC_FORMATS)
    assert not upd.snapshot and upd.bids == [("0.5657", "1098.39475580")]
    assert book.apply(upd) and book.checksum_failures == 0
    assert book.book.bids.levels[0.5657] == 1098.3947558
    # the book keeps each level's checksum digits; a book keeping the wire strings gives the same checksum
    assert book.book.bids.raw is not None and book.book.bids.raw[0.566] == "5660" "1809715470000"
    plain = SymbolBook("kraken", "MATIC/USD", "MATIC/USD", SyncRules(KrakenConnector.rules.snapshot, KrakenConnector.rules.sequence, keep_strings=True))
    plain.apply(snap)
    plain.apply(upd)
    assert plain.book.bids.raw is not None and plain.book.bids.raw[0.566] == ("0.5660", "18097.15470000")
    assert book_checksum(plain.book) == book_checksum(book.book) == 2114181697


def test_v2_doc_example_stripped_numbers_fail_the_checksum() -> None:
    """The doc renderer strips trailing zeros: read literally, the checksum must not match (3830085102)."""
    [snap] = parse(MATIC_SNAPSHOT, {})  # no precision known: literal text of each number
    assert snap.bids[6] == ("0.566", "18097.1547")
    asks = list(snap.asks[:10])
    assert checksum_levels(asks, snap.bids[:10]) == 3830085102
    book = _book()
    book.apply(snap)
    assert book.state is BookState.RESYNCING and book.checksum_failures == 1


def test_v2_literal_numbers_with_trailing_zeros_need_no_precision() -> None:
    frame = '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":62807.0,"qty":0.00000000}],"asks":[{"price":62810.5,"qty":0.10000000}],"checksum":1,"timestamp":"2026-08-16T10:00:00.000000Z"}]}'
    [u] = parse(frame, {})
    assert u.bids == [("62807.0", "0.00000000")] and u.asks == [("62810.5", "0.10000000")]
    [u2] = parse(frame, {"BTC/USD": formats_for(1, 8)})  # type: ignore[dict-item]
    assert u2.bids == u.bids and u2.asks == u.asks


def test_checksum_v2_guide_vector() -> None:
    asks = [("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"), ("45289.6", "1.54560911"),
            ("45290.2", "0.15890660"), ("45291.8", "1.54553491"), ("45294.7", "0.04454749"), ("45296.1", "0.35380000"),
            ("45297.5", "0.09945542"), ("45299.5", "0.18772827")]
    bids = [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"), ("45281.0", "0.10000000"),
            ("45280.3", "1.54592586"), ("45279.0", "0.07990000"), ("45277.6", "0.03310103"), ("45277.5", "0.30000000"),
            ("45277.3", "1.54602737"), ("45276.6", "0.15445238")]
    assert checksum_levels(asks, bids) == 3310070434


def test_checksum_v1_guide_vector() -> None:
    asks = [(f"{0.05005 + i * 0.00005:.5f}", "0.00000500") for i in range(10)]
    bids = [(p, "0.00000500") for p in ("0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955", "0.04950")]
    assert checksum_levels(asks, bids) == 974947235


def test_v2_events() -> None:
    assert parse('{"channel":"heartbeat"}', {}) == [HEARTBEAT]
    [st] = parse('{"channel": "status", "data": [{"api_version": "v2", "connection_id": 13834774380200032777, "system": "online", "version": "2.0.0"}], "type": "update"}', {})
    assert isinstance(st, Status) and st.system == "online" and st.connection_id == 13834774380200032777
    [ack] = parse('{"method": "subscribe", "result": {"channel": "book", "depth": 10, "snapshot": true, "symbol": "ALGO/USD"}, "success": true, "time_in": "2023-10-06T17:35:55.219022Z", "time_out": "2023-10-06T17:35:55.219067Z"}', {})
    assert isinstance(ack, Reply) and ack.success and ack.symbol == "ALGO/USD" and ack.channel == "book"
    [err] = parse('{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":"2026-09-25T17:48:54.701041Z","time_out":"2026-09-25T17:48:54.701062Z"}', {})
    assert isinstance(err, Reply) and not err.success and err.symbol == "XBT/USD" and "not supported" in (err.error or "")
    [pong] = parse('{"method": "pong", "req_id": 101, "time_in": "2023-09-24T14:10:23.799685Z", "time_out": "2023-09-24T14:10:23.799703Z"}', {})
    assert isinstance(pong, Pong) and pong.req_id == 101
    [rate] = parse('{"Error": "Exceeded msg rate"}', {})
    assert isinstance(rate, Reply) and not rate.success and rate.error == "Exceeded msg rate"
    [inst] = parse('{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","price_precision":1,"qty_precision":8}]}}', {})
    assert isinstance(inst, Instruments) and inst.snapshot and inst.pairs[0]["symbol"] == "BTC/USD"


def test_v1_doc_frames() -> None:
    [snap] = parse_v1('[0, {"as": [["5541.30000","2.50700000","1534614248.123678"],["5541.80000","0.33000000","1534614098.345543"],["5542.70000","0.64700000","1534614244.654432"]], "bs": [["5541.20000","1.52900000","1534614248.765567"],["5539.90000","0.30000000","1534614241.769870"],["5539.50000","5.00000000","1534613831.243486"]]}, "book-100", "XBT/USD"]')
    assert isinstance(snap, BookUpdate) and snap.snapshot and len(snap.asks) == 3 and snap.checksum is None
    [two] = parse_v1('[1234, {"a": [["5541.30000","2.50700000","1534614248.456738"],["5542.50000","0.40100000","1534614248.456738"]]}, {"b": [["5541.30000","0.00000000","1534614335.345903"]], "c": "974942666"}, "book-10", "XBT/USD"]')
    assert isinstance(two, BookUpdate) and not two.snapshot and len(two.asks) == 2 and len(two.bids) == 1
    assert two.checksum == 974942666  # from the last object
    [rep] = parse_v1('[1234, {"a": [["5541.30000","2.50700000","1534614248.456738","r"]], "c": "974942666"}, "book-25", "XBT/USD"]')
    assert isinstance(rep, BookUpdate) and rep.asks[0][3] == "r"
    assert parse_v1('{"event":"heartbeat"}') == [HEARTBEAT]


def test_numbers_beyond_float_precision_are_read_literally() -> None:
    """17 significant digits do not survive a float: such entries take the exact path."""
    frame = '{"channel":"book","type":"update","data":[{"symbol":"SHIB/USD","bids":[{"price":0.00001234,"qty":123456789012.12345678}],"asks":[],"checksum":1,"timestamp":"2026-08-16T10:00:00Z"}]}'
    [u] = parse(frame, {"SHIB/USD": (".8f", ".8f")})
    assert u.bids == [("0.00001234", "123456789012.12345678")]


# -- v1 -> v2 names: learned from the two instrument lists, not from a table ------------------------


def _v2(symbol: str, base: str, quote: str, pp: int, qp: int) -> dict[str, object]:
    return {"symbol": symbol, "base": base, "quote": quote, "status": "online", "price_precision": pp, "qty_precision": qp}


def _rest(wsname: str, pp: int, qp: int) -> dict[str, object]:
    return {"altname": wsname.replace("/", ""), "wsname": wsname, "pair_decimals": pp, "lot_decimals": qp, "status": "online"}


def test_v1_names_are_joined_by_learned_aliases() -> None:
    from aggcore_plugin_kraken.symbols import join_v1_names, learn_v1_aliases

    # v2 channel ``instrument`` pairs (docs: BTC/USD price_precision 1, qty_precision 8) and REST
    # AssetPairs entries (docs: wsname "XBT/USD"); "FOO"/"BAR" stand for any asset v1 and v2
    # spell differently that no table lists
    pairs = [
        _v2("BTC/USD", "BTC", "USD", 1, 8), _v2("BTC/EUR", "BTC", "EUR", 1, 8), _v2("ETH/BTC", "ETH", "BTC", 5, 8),
        _v2("ETH/USD", "ETH", "USD", 2, 8), _v2("DOGE/USD", "DOGE", "USD", 7, 8), _v2("BAR/USD", "BAR", "USD", 4, 2),
        _v2("NEW/USD", "NEW", "USD", 3, 3),
    ]  # fmt: skip
    body = {"error": [], "result": {
        "XXBTZUSD": _rest("XBT/USD", 1, 8), "XXBTZEUR": _rest("XBT/EUR", 1, 8), "XETHXXBT": _rest("ETH/XBT", 5, 8),
        "XETHZUSD": _rest("ETH/USD", 2, 8), "XDGUSD": _rest("XDG/USD", 7, 8), "FOOUSD": _rest("FOO/USD", 4, 2),
        "XXBTZUSD.d": {"altname": "XBTUSD.d", "pair_decimals": 1, "lot_decimals": 8},
    }}  # fmt: skip
    aliases = learn_v1_aliases(join_v1_names(pairs, {"error": [], "result": {}}), body)
    assert aliases["XBT"] == "BTC" and aliases["XDG"] == "DOGE" and aliases["FOO"] == "BAR" and aliases["USD"] == "USD"
    table = join_v1_names(pairs, body)
    assert sorted(table.by_symbol) == sorted(p["symbol"] for p in pairs)  # names: the v2 list's
    extra = {s: i.extra.get("wsname") for s, i in table.by_symbol.items()}
    assert extra == {
        "BTC/USD": "XBT/USD", "BTC/EUR": "XBT/EUR", "ETH/BTC": "ETH/XBT", "ETH/USD": "ETH/USD",
        "DOGE/USD": "XDG/USD", "BAR/USD": "FOO/USD", "NEW/USD": None,
    }  # fmt: skip
    assert table.by_symbol["BTC/USD"].extra["rest"] == "XXBTZUSD"
    assert table.resolve("XBT/USD").symbol == "BTC/USD"


def test_each_number_keeps_its_text_when_it_has_the_pairs_decimals_and_is_formatted_otherwise() -> None:
    frame = (
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":['
        '{"price":62807.0,"qty":0.50000000},{"price":62806,"qty":0.5},{"price":62805.50,"qty":1e-5},'
        '{"price":62804.0,"qty":123456789012.1234567}],"asks":[],"checksum":1,"timestamp":"2026-08-16T10:00:00Z"}]}'
    )
    [u] = parse(frame, {"BTC/USD": (".1f", ".8f")})
    assert u.snapshot
    assert u.bids == [
        ("62807.0", "0.50000000"),  # as sent
        ("62806.0", "0.50000000"),  # an integer and stripped zeros: formatted with the precision
        ("62805.5", "0.00001000"),  # two decimals for one, an exponent
        ("62804.0", "123456789012.1234567"),  # 19 digits do not survive a float: the text as sent
    ]
    [z] = parse(frame, {"BTC/USD": (".0f", ".8f")})  # no decimals: every price is formatted
    assert [p for p, _ in z.bids] == ["62807", "62806", "62806", "62804"]


def test_a_malformed_book_frame_is_a_parsing_error_naming_the_field() -> None:
    import pytest
    from aggcore.errors import ParsingError

    with pytest.raises(ParsingError, match=r"malformed book frame.*symbol"):
        parse('{"channel":"book","type":"update","data":[{"bids":[],"asks":[]}]}', {})
    with pytest.raises(ParsingError, match="not JSON"):
        parse('{"channel":"book",', {})
