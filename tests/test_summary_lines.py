"""Summaries a new user reads: none before any venue is live, excluded venues with the reason,
spreads rounded to the tick."""

from __future__ import annotations

import json
import time

from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
from aggcore.builtins.analyzers.summary import SummaryAnalyzer, SummaryConfig
from aggcore.builtins.sinks.stdout import format_event
from aggcore.config import AggregationConfig
from aggcore.consolidated import Router
from aggcore.sink import Event

RULES = SyncRules(SnapshotSource.INBAND, SequenceMode.NONE)


def venue(router: Router, exchange: str) -> SymbolBook:
    book = SymbolBook(exchange, "X", "ETH/USDT", RULES, listener=router, request_resync=lambda s, r: None)
    router.attach(book)
    return book


def test_no_summary_before_a_venue_is_live_then_reasons_and_a_rounded_spread() -> None:
    router = Router()
    events: list[Event] = []
    analyzer = SummaryAnalyzer(SummaryConfig(), events.append, AggregationConfig())
    a, b = venue(router, "a"), venue(router, "b")
    analyzer.on_update(router.views["ETH/USDT"], time.time())
    assert events == []  # both still SYNCING: nothing to show yet
    a.apply(BookUpdate("X", [["2999.99", "1"]], [["3000.00", "2"]], snapshot=True), time.monotonic_ns())
    analyzer.on_update(router.views["ETH/USDT"], time.time())
    (event,) = events
    assert json.loads(event.to_json())["data"]["spread"] == 0.01  # not 0.009999999999990905
    line = format_event(event)
    assert "spread 0.010 venues 1 excluded b (book SYNCING)" in line
    b.apply(BookUpdate("X", [["2999.98", "1"]], [["3000.01", "1"]], snapshot=True), time.monotonic_ns())
    a.resync("sequence gap: expected 5, got 7")
    b.resync("checksum mismatch")
    analyzer.on_update(router.views["ETH/USDT"], time.time())
    line = format_event(events[-1])  # once shown, a pair with no live venue says why
    assert "ETH/USDT no venue live: a (book RESYNCING: sequence gap: expected 5, got 7); b (book RESYNCING: checksum mismatch)" in line
