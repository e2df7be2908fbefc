"""``/metrics`` on the event loop: the books pause only for the collection; the text encoding
runs in a worker thread, and the body is the same as the synchronous scrape's."""

from __future__ import annotations

import re
import time

import anyio
import pytest

from aggcore import Aggregator
from aggcore.book import BookUpdate, SymbolBook
from aggcore.plugins import load_plugins
from aggcore.telemetry import Telemetry

pytestmark = pytest.mark.anyio


def _aggregator(pairs: int) -> Aggregator:
    registry = load_plugins()
    agg = Aggregator({"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}}}, registry=registry)
    (connector,) = agg.connectors.values()
    connector.books.clear()
    now = time.monotonic_ns()
    for i in range(pairs):
        book = SymbolBook("kraken", f"C{i:03d}USD", f"C{i:03d}/USD", connector.rules, depth=connector.depth)
        book.begin_sync()
        mid = 100.0 + i
        book.apply(BookUpdate(book.symbol, [(f"{mid - 0.01:.2f}", "1.5")], [(f"{mid + 0.01:.2f}", "2.5")], snapshot=True, first=1, last=1), now)
        connector.books[book.symbol] = book
        agg.router.attach(book)
    return agg


def _series(body: bytes) -> set[str]:
    """Series names and labels (values move between two scrapes: process CPU, ages)."""
    return {re.sub(rb" \S+( \S+)?$", b"", line).decode() for line in body.splitlines() if line and not line.startswith(b"#")}


async def test_metrics_are_encoded_off_the_event_loop_and_equal_the_sync_scrape() -> None:
    agg = _aggregator(200)
    telemetry = Telemetry(agg, prometheus=True)
    agg.telemetry = telemetry
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.sleep(0)
            before = ticks
            status, ctype, body = await telemetry.route_async("/metrics")
            during = ticks - before
            tg.cancel_scope.cancel()
        assert status == "200 OK" and ctype.startswith("text/plain")
        assert during >= 1, "the event loop ran nothing while /metrics was encoded"
        assert _series(body) == _series(telemetry.scrape())
        assert b'aggcore_book_age_seconds{exchange="kraken",symbol="C199/USD"}' in body  # every book's series
        status, ctype, om = await telemetry.route_async("/metrics", "application/openmetrics-text; version=1.0.0")
        assert ctype.startswith("application/openmetrics-text") and om.rstrip().endswith(b"# EOF")
        assert (await telemetry.route_async("/healthz"))[0] == "200 OK"
        assert (await telemetry.route_async("/nope"))[0].startswith("404")
    finally:
        telemetry.shutdown()
