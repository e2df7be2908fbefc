"""The simulated market: venues of one pair follow one latent price, as real venues do.

Driven on a controlled clock (no sleeping): seven venues quote BTC for simulated minutes and
the books, their spreads and the consolidated top are checked the way a trader would look.
"""

from __future__ import annotations

from typing import Any

import pytest

from aggcore.testing import Fault, GenBook, Market, wait_until
from aggcore.testing.market import reference_price

VENUES = ["binance", "bybit", "okx", "cryptocom", "coinbase", "kraken", "bitstamp"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def venue_books(market: Market, base: str = "BTC") -> dict[str, GenBook]:
    # USD and USDT quotes share one latent price (merged quote groups agree)
    return {v: market.book(v, base, "USDT" if i < 4 else "USD", seed=i) for i, v in enumerate(VENUES)}


def run(clock: Clock, books: dict[str, GenBook], seconds: float, *, hz: float = 10.0) -> list[tuple[float, float, float]]:
    """Step every venue at ``hz`` (each at its own phase); the consolidated (time, best bid,
    best ask) every half second. Asserts that no venue's own book ever crosses."""
    tops = []
    start = clock.t
    for k in range(int(seconds * hz)):
        for j, book in enumerate(books.values()):
            clock.t = start + (k + j / len(books)) / hz
            book.step()
            assert book.best_bid() < book.best_ask()
        if k % int(hz / 2) == 0:
            tops.append((clock.t, max(b.best_bid() for b in books.values()), min(b.best_ask() for b in books.values())))
    return tops


def test_venues_track_one_price_with_their_own_tick_and_a_spread_of_a_few_ticks() -> None:
    clock = Clock()
    market = Market(3, clock=clock)
    books = venue_books(market)
    ticks = {b.tick for b in books.values()}
    assert len(ticks) > 1, "venues have their own tick sizes"
    widest: dict[str, int] = {v: 0 for v in books}
    tops = []
    for _ in range(6):  # 3 simulated minutes, spreads sampled every 30 s of it
        tops += run(clock, books, 30)
        for v, b in books.items():
            widest[v] = max(widest[v], round((b.best_ask() - b.best_bid()) / b.tick))
    for v, b in books.items():
        assert widest[v] <= b.spread_ticks + 3, f"{v}: spread {widest[v]} ticks, quotes {b.spread_ticks}"
        assert abs(b.mid / books["binance"].mid - 1) < 5e-4, "venues agree within a few basis points"
    crossed = [(bid - ask) / ask * 1e4 for _, bid, ask in tops if bid >= ask]
    assert len(crossed) <= 0.02 * len(tops), f"{len(crossed)} of {len(tops)} consolidated tops crossed"
    assert all(bp < 2.0 for bp in crossed), f"crossings are small: {max(crossed)} bp"
    # the price moves: a random walk of realistic volatility, not a flat line nor a rocket
    moved = abs(books["kraken"].mid / reference_price("BTC", "USD") - 1)  # type: ignore[operator]
    assert 1e-6 < moved < 0.02


def test_a_dislocation_is_a_real_opportunity_that_fades_by_itself() -> None:
    clock = Clock()
    market = Market(4, clock=clock, dislocation_duration_s=2.0)
    books = venue_books(market)
    run(clock, books, 5)
    market.dislocate("okx", "BTC", "USDT", -40.0)
    run(clock, books, 0.3)
    bid = max(b.best_bid() for b in books.values())
    ask = min(b.best_ask() for b in books.values())
    assert (bid - ask) / ask * 1e4 > 25, "okx is 40 bp cheap: more than two taker fees of 0.1 %"
    assert books["okx"].best_ask() == ask
    run(clock, books, 3)
    assert max(b.best_bid() for b in books.values()) < min(b.best_ask() for b in books.values()), "gone after its duration"


def test_scheduled_dislocations_are_rare_and_short() -> None:
    clock = Clock()
    market = Market(5, clock=clock, dislocation_every_s=20.0)
    tops = run(clock, venue_books(market, "ETH"), 150)
    crossed = [t for t, bid, ask in tops if (bid - ask) / ask * 1e4 > 20]
    assert crossed, "at least one sizeable opportunity in 150 s"
    assert len(crossed) < 0.1 * len(tops)


def test_a_following_books_changes_replayed_give_its_truth() -> None:
    clock = Clock()
    market = Market(6, clock=clock, dislocation_every_s=5.0)
    book = market.book("kraken", "ETH", "USD", depth=20, seed=1)
    bids, asks = dict(book.bids), dict(book.asks)
    for k in range(3000):
        clock.t += 0.1
        for ch in book.step():
            side = bids if ch.side == "bid" else asks
            if float(ch.qty) == 0:
                side.pop(ch.price, None)
            else:
                side[ch.price] = ch.qty
    assert bids == book.bids and asks == book.asks
    assert len(book.bids) <= 2 * book.depth and len(book.asks) <= 2 * book.depth


def test_a_books_top_and_best_prices_are_its_truth_sorted_after_every_step() -> None:
    # the sides are kept sorted beside the truth (no sort per step): inserts, deletions, the
    # wrong-side sweep after a mid move, the refill of a thin side, the trim of a long tail and
    # a fake's own levels (add_level) must all keep them equal to the truth's own order
    clock = Clock()
    market = Market(4, clock=clock, volatility=5.0, dislocation_every_s=2.0)
    books = [
        GenBook(seed=2, depth=6, max_changes=20),  # thin: deletions empty it, the refill tops it up
        GenBook(seed=3, drift=0.002, tick=0.5, price_precision=1),  # the mid moves: wrong-side sweeps
        market.book("okx", "SOL", "USDT", depth=8, seed=5),  # follows a price: quotes and trims
    ]
    for k in range(1500):
        clock.t += 0.05
        for book in books:
            book.step()
            if k % 100 == 0:  # a fake's own level (an oversize snapshot's padding), far from the mid
                far = book.fmt_price(int(round(book.best_bid() / book.tick)) - 1000 - k)
                assert book.add_level("bid", far, book.fmt_qty(1.0)) and not book.add_level("bid", far, book.fmt_qty(2.0))
            bids = sorted(book.bids.items(), key=lambda kv: float(kv[0]), reverse=True)
            asks = sorted(book.asks.items(), key=lambda kv: float(kv[0]))
            assert book.top(5) == (bids[:5], asks[:5])
            assert book.top(1000) == (bids, asks)
            assert (book.best_bid(), book.best_ask()) == (float(bids[0][0]), float(asks[0][0]))


def test_an_unknown_asset_follows_the_mid_it_was_given() -> None:
    market = Market(1)
    book = market.book("binance", "NOSUCHCOIN", "USDT", mid=12.5)
    assert abs(book.mid / 12.5 - 1) < 0.01
    with pytest.raises(KeyError, match="NOSUCHCOIN"):
        market.book("binance", "NOSUCHCOIN", "EUR")


@pytest.mark.anyio
async def test_a_fake_exchange_on_a_market_lists_its_instruments_at_the_market_price(fake_exchange: Any, connector_factory: Any) -> None:
    from aggcore.testing import running

    market = Market(2)
    fake = await fake_exchange("binance", seed=1, rate_hz=50, market=market)
    spec = fake.specs["BTCUSDT"]
    assert spec.tick == fake.books["BTCUSDT"].tick and abs(spec.mid / 60000 - 1) < 0.01
    conn = connector_factory("binance", fake, stale_after_s=5)
    async with running(conn):
        await wait_until(lambda: all(b.live for b in conn.books.values()) and len(conn.books) == 2, what="LIVE")
        fake.inject(Fault.GAP, "BTCUSDT")
        book = conn.books["BTCUSDT"]
        await wait_until(lambda: book.live and book.book.bids.best() is not None, what="LIVE again")
        assert abs(book.book.bids.best() / 60000 - 1) < 0.01  # type: ignore[operator]
