"""The cost of one Prometheus scrape with 7 exchanges x 300 books (issue 23).

    uv run --all-packages python bench/scrape.py [--books 300] [--rounds 20]

Builds a real Aggregator (not started: no network) for seven exchange plugins, gives each
connector ``--books`` LIVE books with a 20+20-level snapshot through the engine's own
``SymbolBook`` API, attaches them to the consolidated views (300 pairs, 7 venues each) and times
``Telemetry.scrape()``: the whole collection (every observable instrument's callback, the
consolidated top of book per pair) plus the text encoding. Prints the median and max time per
scrape, the body size and the series count; also the cost of the OpenMetrics encoding.
"""

from __future__ import annotations

import argparse
import statistics
import time

from aggcore.aggregator import Aggregator
from aggcore.book import BookUpdate, SymbolBook
from aggcore.plugins import load_plugins
from aggcore.telemetry import Telemetry

EXCHANGES = ("binance", "bybit", "okx", "cryptocom", "coinbase", "kraken", "bitstamp")


def build(books: int) -> Aggregator:
    registry = load_plugins()
    config = {"exchanges": {name: {"trading_pairs": ["BTC/USDT"]} for name in EXCHANGES if name in registry.connectors}}
    agg = Aggregator(config, registry=registry)
    now = time.monotonic_ns()
    for name, connector in agg.connectors.items():
        connector.books.clear()
        for i in range(books):
            pair = f"C{i:03d}/USD"
            book = SymbolBook(name, f"C{i:03d}USD", pair, connector.rules, depth=connector.depth)
            book.begin_sync()
            mid = 100.0 + i
            bids = [(f"{mid - 0.01 * (k + 1):.2f}", "1.5") for k in range(20)]
            asks = [(f"{mid + 0.01 * (k + 1):.2f}", "2.5") for k in range(20)]
            book.apply(BookUpdate(book.symbol, bids, asks, snapshot=True, first=1, last=1), now)
            connector.books[book.symbol] = book
            agg.router.attach(book)
    return agg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=300, help="books per exchange")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    agg = build(args.books)
    telemetry = Telemetry(agg, prometheus=True)
    agg.telemetry = telemetry
    n_books = sum(len(c.books) for c in agg.connectors.values())
    live = sum(b.live for c in agg.connectors.values() for b in c.books.values())
    telemetry.scrape()  # warm-up
    for openmetrics in (False, True):
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            body = telemetry.scrape(openmetrics=openmetrics)
            times.append(time.perf_counter() - t0)
        pauses = []  # what /metrics holds the event loop for: the collection (the encoding runs in a worker thread)
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            list(telemetry.registry.collect())
            pauses.append(time.perf_counter() - t0)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        kind = "OpenMetrics" if openmetrics else "Prometheus text"
        print(
            f"{kind:16s} {len(agg.connectors)} exchanges x {args.books} books ({n_books} books, {live} LIVE, "
            f"{len(agg.router.views)} pairs): median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms per scrape; {len(body) / 1024:.0f} KiB, {series} series; "
            f"event loop held {statistics.median(pauses) * 1000:.1f} ms (the collection; the encoding runs in a worker thread)"
        )
    telemetry.shutdown()


if __name__ == "__main__":
    main()
