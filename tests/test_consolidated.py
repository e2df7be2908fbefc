"""Consolidated view: venue attribution, ordering, stale or non-LIVE venues left out and back in."""

from __future__ import annotations

import time

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.consolidated import Router, view_key

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)


def live_book(router: Router, exchange: str, bids: list[list[str]], asks: list[list[str]], pair: str = "BTC/USDT") -> SymbolBook:
    book = SymbolBook(exchange, "X", pair, RULES, listener=router, request_resync=lambda s, r: None)
    router.attach(book)
    book.apply(BookUpdate("X", bids, asks, snapshot=True), time.monotonic_ns())
    return book


def test_merged_levels_name_their_exchange_and_sort_across_venues() -> None:
    router = Router()
    live_book(router, "binance", [["100", "1"], ["99", "2"]], [["101", "1"], ["103", "1"]])
    live_book(router, "kraken", [["100.5", "3"], ["98", "1"]], [["102", "2"], ["101", "4"]])
    view = router.views["BTC/USDT"]
    merged = view.merge(3, max_age_ms=10_000)
    assert merged.bids == [(100.5, 3.0, "kraken"), (100.0, 1.0, "binance"), (99.0, 2.0, "binance")]
    assert merged.asks[:2] in ([(101.0, 1.0, "binance"), (101.0, 4.0, "kraken")], [(101.0, 4.0, "kraken"), (101.0, 1.0, "binance")])
    assert merged.spread == 101.0 - 100.5 and sorted(merged.venues) == ["binance", "kraken"]


def test_negative_spread_when_venues_cross() -> None:
    router = Router()
    live_book(router, "a", [["100", "1"]], [["101", "1"]])
    live_book(router, "b", [["102", "1"]], [["103", "1"]])
    merged = router.views["BTC/USDT"].merge(5, 10_000)
    assert merged.spread == -1.0


def test_stale_venue_is_left_out_and_comes_back() -> None:
    router = Router()
    live_book(router, "a", [["100", "1"]], [["101", "1"]])
    b = live_book(router, "b", [["100.5", "1"]], [["101.5", "1"]])
    view = router.views["BTC/USDT"]
    b.last_update_ns = time.monotonic_ns() - 10_000_000_000  # 10 s old
    merged = view.merge(5, max_age_ms=5000)
    assert merged.venues == ["a"] and "stale" in merged.excluded["b"]
    assert all(ex == "a" for _, _, ex in merged.bids)
    b.apply(BookUpdate("X", [["100.6", "1"]], []), time.monotonic_ns())
    merged = view.merge(5, max_age_ms=5000)
    assert sorted(merged.venues) == ["a", "b"] and merged.bids[0] == (100.6, 1.0, "b")


def test_venue_not_live_is_left_out_with_its_state() -> None:
    router = Router()
    live_book(router, "a", [["100", "1"]], [["101", "1"]])
    b = live_book(router, "b", [["100.5", "1"]], [["101.5", "1"]])
    b.resync("sequence gap: expected 5, got 7")
    merged = router.views["BTC/USDT"].merge(5, 5000)
    assert merged.venues == ["a"] and merged.excluded["b"].startswith("book RESYNCING: sequence gap")


def test_quote_groups_merge_usd_stablecoins_when_asked() -> None:
    groups = {"USD": ["USD", "USDT", "USDC"]}
    assert view_key("BTC/USDT", groups) == "BTC/USD" and view_key("BTC/EUR", groups) == "BTC/EUR"
    router = Router(groups)
    live_book(router, "coinbase", [["100", "1"]], [["101", "1"]], pair="BTC/USD")
    live_book(router, "binance", [["100.2", "1"]], [["101.2", "1"]], pair="BTC/USDT")
    assert list(router.views) == ["BTC/USD"]
    merged = router.views["BTC/USD"].merge(5, 5000)
    assert merged.bids[0] == (100.2, 1.0, "binance")


def test_hot_path_marks_dirty_once_until_taken() -> None:
    router = Router()
    calls = []
    router.on_dirty = lambda: calls.append(1)
    book = live_book(router, "a", [["100", "1"]], [["101", "1"]])
    for i in range(10):
        book.apply(BookUpdate("X", [["100", str(i + 2)]], []), time.monotonic_ns())
    assert len(calls) == 1 and len(router.take_dirty()) == 1 and not router.dirty
