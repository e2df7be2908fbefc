"""Consolidated view: venue attribution, ordering, stale or non-LIVE venues left out and back in."""

from __future__ import annotations

import time

import pytest

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.consolidated import Router, view_key
from aggcore.models import PriceLevel

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)


def rows(levels: list[PriceLevel]) -> list[tuple[float, float, str]]:
    return [(lv.price, lv.quantity, lv.exchange) for lv in levels]


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
    assert rows(merged.bids) == [(100.5, 3.0, "kraken"), (100.0, 1.0, "binance"), (99.0, 2.0, "binance")]
    assert rows(merged.asks[:2]) == [(101.0, 1.0, "binance"), (101.0, 4.0, "kraken")]  # equal prices in venue order
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
    assert all(lv.exchange == "a" for lv in merged.bids)
    b.apply(BookUpdate("X", [["100.6", "1"]], []), time.monotonic_ns())
    merged = view.merge(5, max_age_ms=5000)
    assert sorted(merged.venues) == ["a", "b"] and rows(merged.bids[:1]) == [(100.6, 1.0, "b")]


def test_a_single_venue_goes_stale_and_comes_back() -> None:
    router = Router()
    a = live_book(router, "a", [["100", "1"]], [["101", "1"]])
    view = router.views["BTC/USDT"]
    first = view.merge(5, max_age_ms=5000)
    assert first.venues == ["a"] and view.merge(5, max_age_ms=5000).bids is first.bids  # unchanged: the same rows
    a.last_update_ns = time.monotonic_ns() - 10_000_000_000  # 10 s old
    merged = view.merge(5, max_age_ms=5000)
    assert merged.venues == [] and merged.bids == [] and "stale" in merged.excluded["a"]
    a.apply(BookUpdate("X", [["100.5", "2"]], []), time.monotonic_ns())
    merged = view.merge(5, max_age_ms=5000)
    assert merged.venues == ["a"] and rows(merged.bids) == [(100.5, 2.0, "a"), (100.0, 1.0, "a")] and not merged.excluded
    assert merged.bids[1] is first.bids[0]  # a level whose quantity did not change is the same object
    assert 0 <= merged.ages_ms["a"] < 5000


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
    assert rows(merged.bids[:1]) == [(100.2, 1.0, "binance")]


def test_hot_path_marks_dirty_once_until_taken() -> None:
    router = Router()
    calls = []
    router.on_dirty = lambda: calls.append(1)
    book = live_book(router, "a", [["100", "1"]], [["101", "1"]])
    for i in range(10):
        book.apply(BookUpdate("X", [["100", str(i + 2)]], []), time.monotonic_ns())
    assert len(calls) == 1 and len(router.take_dirty()) == 1 and not router.dirty


def test_a_view_learns_of_changes_after_it_was_looked_at() -> None:
    # the view silences a book's per-message calls until it is looked at; what readers see
    # never lags: a merge after silenced messages shows them, and a look re-arms the book
    router = Router()
    calls = []
    router.on_dirty = lambda: calls.append(1)
    a = live_book(router, "a", [["100", "1"]], [["101", "1"]])
    b = live_book(router, "b", [["99", "1"]], [["102", "1"]])
    view = router.take_dirty()[0]
    assert a.notify and b.notify
    for rnd in range(3):
        for q in ("2", "3", "4"):
            a.apply(BookUpdate("X", [["100", f"{rnd}{q}"]], []), time.monotonic_ns())
            assert not a.notify and b.notify  # only the book that changed is silenced
            merged = view.merge(5, 60_000)
            assert rows(merged.bids)[0] == (100.0, float(f"{rnd}{q}"), "a")  # never behind the book
        b.apply(BookUpdate("X", [], [["102", str(rnd + 5)]]), time.monotonic_ns())
        assert router.take_dirty() == [view] and a.notify and b.notify and not view.dirty
        assert rows(view.merge(5, 60_000).asks)[1] == (102.0, float(rnd + 5), "b")
    assert len(calls) == 4  # the first change after each look (the books' first snapshots: one)
    a.apply(BookUpdate("X", [], [["101", "0"]]), time.monotonic_ns())
    assert len(calls) == 5 and router.take_dirty() == [view]


def _truth(books: dict[str, SymbolBook], depth: int) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    bids = sorted(((p, q, n) for n, b in books.items() for p, q in b.book.bids.top(10_000)), key=lambda r: -r[0])[:depth]
    asks = sorted(((p, q, n) for n, b in books.items() for p, q in b.book.asks.top(10_000)), key=lambda r: r[0])[:depth]
    return bids, asks


@pytest.mark.parametrize("seed", [17, 29, 41])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct-prices", "equal-prices"])
def test_incremental_merge_equals_a_merge_from_scratch(ties: bool, seed: int) -> None:
    """Random updates on five, seven or one venue(s), merged after every few: the incrementally
    folded top-N always equals the top-N of all LIVE books, equal prices of different venues in
    venue order (what a merge from scratch gives, whatever the history of merges: folds, refills
    from the cached venues, rebuilds); the top of book after every update is its first row."""
    import random

    rng = random.Random(seed)
    tick = 0.0 if ties else 0.01
    router = Router()
    names = {17: ["a", "b", "c", "d", "e"], 29: ["a", "b", "c", "d", "e", "f", "g"], 41: ["a"]}[seed]
    books: dict[str, SymbolBook] = {}
    for v, name in enumerate(names):
        bids = [[f"{100 - k * 0.5 + v * tick:.2f}", "1"] for k in range(rng.randint(0, 8))]
        asks = [[f"{101 + k * 0.5 + v * tick:.2f}", "1"] for k in range(rng.randint(0, 8))]
        books[name] = live_book(router, name, bids, asks)
    view = router.views["BTC/USDT"]
    for step in range(3000):
        name = rng.choice(names)
        v = names.index(name)
        book = books[name]
        if rng.random() < 0.01 and book.state.value == "LIVE":
            book.resync("test")
        elif book.state.value != "LIVE":
            book.apply(BookUpdate("X", [[f"{99 + v * tick:.2f}", "1"]], [[f"{102 + v * tick:.2f}", "1"]], snapshot=True), time.monotonic_ns())
        else:
            ups: list[list[str]] = []
            downs: list[list[str]] = []
            for _ in range(rng.randint(1, 4)):
                k = rng.randint(0, 30)
                qty = "0" if rng.random() < 0.4 else f"{rng.randint(1, 9)}"
                if rng.random() < 0.5:
                    ups.append([f"{100 - k * 0.25 + v * tick:.2f}", qty])
                else:
                    downs.append([f"{101 + k * 0.25 + v * tick:.2f}", qty])
            book.apply(BookUpdate("X", ups, downs), time.monotonic_ns())
        live = {n: b for n, b in books.items() if b.state.value == "LIVE"}
        top_bids, top_asks = _truth(live, 1)
        assert view.top_of_book() == (top_bids[0] if top_bids else None, top_asks[0] if top_asks else None), step
        if rng.random() < (0.5 if seed == 17 else 0.2):  # seldom: several venues changed since the last merge
            depth = 5 if step % 97 else 8  # a different depth now and then: rebuilds, still equal
            merged = view.merge(depth, max_age_ms=60_000)
            assert (rows(merged.bids), rows(merged.asks)) == _truth(live, depth), step
            assert merged.venues == list(live)


def test_top_of_book_names_the_best_venues() -> None:
    router = Router()
    live_book(router, "a", [["100", "1"]], [["101", "2"]])
    b = live_book(router, "b", [["100.5", "3"]], [["101.5", "1"]])
    view = router.views["BTC/USDT"]
    assert view.top_of_book() == ((100.5, 3.0, "b"), (101.0, 2.0, "a"))
    b.resync("gap")
    assert view.top_of_book() == ((100.0, 1.0, "a"), (101.0, 2.0, "a"))
    c = live_book(router, "c", [["100", "4"]], [], pair="ETH/USDT")  # one venue, one side
    eth = router.views["ETH/USDT"]
    assert eth.top_of_book() == ((100.0, 4.0, "c"), None)
    c.resync("gap")
    assert eth.top_of_book() == (None, None)
