"""Real Kraken captures (cryptofeed sample_data, 2021, WebSocket v1 + REST AssetPairs).

They live outside the repository; the tests skip with a reason when they are absent.
"""

from __future__ import annotations

import orjson
from aggcore.book import BookUpdate, SymbolBook
from aggcore.models import BookState
from aggcore.testing.recordings import recording
from aggcore_plugin_kraken.connector import KrakenConnector
from aggcore_plugin_kraken.messages import Reply, book_checksum, parse_v1
from aggcore_plugin_kraken.symbols import from_asset_pairs

EXPECTED_CHECKSUMS = 4269  # exchange-computed checksums in KRAKEN.ws.50.0


def test_v1_book_1000_replay_matches_every_exchange_checksum() -> None:
    """The checksum routine shared by v1 and v2 reproduces every checksum Kraken computed."""
    rec = recording("KRAKEN.ws.50.0")
    books: dict[str, SymbolBook] = {}
    checked = matched = 0
    for frame in rec.frames():
        for event in parse_v1(frame.text):
            if isinstance(event, Reply):
                assert event.success, event.error
                continue
            if not isinstance(event, BookUpdate):
                continue
            book = books.get(event.symbol)
            if book is None:
                book = books[event.symbol] = SymbolBook("kraken", event.symbol, event.symbol, KrakenConnector.rules, depth=1000)
            book.apply(event)
            if event.checksum is not None:
                checked += 1
                matched += book_checksum(book.book) == event.checksum
    print(f"KRAKEN.ws.50.0: {matched}/{checked} exchange checksums reproduced over {len(books)} pairs")
    assert checked == EXPECTED_CHECKSUMS
    assert matched == checked
    assert len(books) == 10
    for book in books.values():
        assert book.state is BookState.LIVE and book.checksum_failures == 0 and book.resyncs == 0


def test_asset_pairs_map_v1_wsnames_to_v2_symbols() -> None:
    rec = recording("KRAKEN.0")
    body = next(r.body for r in rec.http() if "AssetPairs" in r.url)
    table = from_asset_pairs(orjson.loads(body))
    btc = table.resolve("BTC/USD")
    assert btc.symbol == "BTC/USD" and btc.price_precision == 1 and btc.qty_precision == 8
    assert btc.extra["wsname"] == "XBT/USD" and btc.extra["rest"] == "XXBTZUSD"
    assert table.resolve("XBT/USD") is btc  # the v1 spelling a user may write
    assert table.resolve("DOGE/USD").extra["wsname"] == "XDG/USD"
    assert table.resolve("ETH/BTC").symbol == "ETH/BTC"
    assert not any(sym.endswith(".d") or "XBT" in sym or "XDG" in sym for sym in table.by_symbol)
    assert len(table) > 200
