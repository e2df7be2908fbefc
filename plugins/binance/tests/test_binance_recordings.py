"""Real data: ``BINANCE.ws.1.0`` + ``BINANCE.http.0.0`` (2021 captures, same shapes as today).

The capture's frames go through the connector's own ``on_frame`` and its snapshots through
``parse_snapshot`` + ``snapshot_fetched`` at the moment they were received, in recorded order.
Every book must reach LIVE from its REST snapshot and stay LIVE (no gap, no resync, never
crossed) to the end. The exchange's own ``bookTicker`` stream is the ground truth for the top
of book: wherever our book's update id after an event equals a ticker's ``u``, best bid/ask and
their quantities must equal the ticker's.
"""

from __future__ import annotations

from typing import Any

import orjson
from aggcore.book import SymbolBook
from aggcore.models import BookState
from aggcore.testing.recordings import recording
from aggcore_plugin_binance.connector import BinanceConfig, BinanceConnector
from aggcore_plugin_binance.messages import parse_snapshot
from aggcore_plugin_binance.symbols import build_symbol_table

SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]


class _Conn:
    """Stands in for a live Connection: the parser path needs only ``state`` and ``index``."""

    index = 0
    closed = False

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}


class _Watch:
    """Listener: every change of a LIVE book must leave it uncrossed."""

    def __init__(self) -> None:
        self.changes = 0
        self.crossed = 0

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.changes += 1
        if book.live and book.book.crossed():
            self.crossed += 1

    def book_state_changed(self, book: SymbolBook) -> None:
        pass


def test_recorded_books_reach_live_from_rest_snapshots_and_stay_in_sync() -> None:
    ws = recording("BINANCE.ws.1.0")
    http = recording("BINANCE.http.0.0")
    info = next(r.body for r in recording("BINANCE.0").http() if "exchangeInfo" in r.url)

    watch = _Watch()
    connector = BinanceConnector(BinanceConfig(trading_pairs=SYMBOLS), listener=watch)
    connector.symbols = build_symbol_table(orjson.loads(info))
    for sym in SYMBOLS:
        connector.books[sym] = connector.make_book(connector.symbols.by_symbol[sym])
        connector.books[sym].begin_sync()

    # merge REST snapshots and WS frames by receive time
    timeline: list[tuple[float, str, str]] = [(f.ts, "ws", f.text) for f in ws.frames()]
    for r in http.http():
        symbol = r.url.split("symbol=", 1)[1].split("&", 1)[0]
        timeline.append((r.ts, symbol, r.body))
    timeline.sort(key=lambda item: item[0])

    conn = _Conn()
    went_live: dict[str, int] = {}
    tickers: dict[str, dict[int, tuple[float, ...]]] = {s: {} for s in SYMBOLS}
    tops: dict[str, dict[int, tuple[float, ...]]] = {s: {} for s in SYMBOLS}
    for n, (_, kind, text) in enumerate(timeline):
        if kind != "ws":
            book = connector.books[kind]
            assert book.state is BookState.SYNCING
            book.snapshot_fetched(parse_snapshot(kind, orjson.loads(text)))
            continue
        connector.on_frame(conn, text, n + 1)  # type: ignore[arg-type]
        for sym, book in connector.books.items():
            if book.live:
                went_live.setdefault(sym, n)
            elif sym in went_live:
                raise AssertionError(f"{sym} left LIVE: {book.state} {book.error}")
        msg = orjson.loads(text)
        data = msg["data"]
        if msg["stream"].endswith("@bookTicker"):
            tickers[data["s"]][data["u"]] = (float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"]))
        elif msg["stream"].endswith("@depth@100ms"):
            book = connector.books[data["s"]]
            if book.live and book.last_seq == data["u"]:
                (bid, bid_qty), = book.book.bids.top(1)
                (ask, ask_qty), = book.book.asks.top(1)
                tops[data["s"]][data["u"]] = (bid, bid_qty, ask, ask_qty)

    checked = 0
    for sym in SYMBOLS:
        for u, top in tops[sym].items():
            if u in tickers[sym]:
                assert top == tickers[sym][u], (sym, u, top, tickers[sym][u])
                checked += 1
    assert checked >= 20, f"only {checked} bookTicker cross-checks"

    assert set(went_live) == set(SYMBOLS), f"not LIVE: {set(SYMBOLS) - set(went_live)}"
    for sym, book in connector.books.items():
        assert book.state is BookState.LIVE, (sym, book.state, book.error)
        assert book.gaps == 0 and book.resyncs == 0 and book.crossed_books == 0, sym
        assert len(book.book.bids) > 100 and len(book.book.asks) > 100
    assert watch.crossed == 0 and watch.changes > 0
    assert connector.errors == 0
    # the NKNUSDT example of the reference: snapshot 499869752, (499869750..752) dropped, 753 applied first
    nkn = connector.books["NKNUSDT"]
    assert nkn.snapshot_seq == 499869752 and nkn.dropped_stale >= 1 and nkn.last_seq == 499870179
