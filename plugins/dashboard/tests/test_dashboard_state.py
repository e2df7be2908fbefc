"""The dashboard's state: what it keeps from events, the log it derives, and its bounds."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from aggcore.models import ArbitrageOpportunity, BookState, HealthStatus, Metrics, PriceLevel, Summary, SymbolHealth
from aggcore.sink import Event
from aggcore_plugin_dashboard.state import Cursor, DashboardState

NOW = datetime.now(timezone.utc)


def summary(pair: str, mid: float, ts: float, levels: int = 3) -> Event:
    bids = [PriceLevel(mid - 1 - i, 1.0, "binance", NOW) for i in range(levels)]
    asks = [PriceLevel(mid + 1 + i, 1.0, "kraken", NOW) for i in range(levels)]
    s = Summary(symbol=pair, spread=2.0, bids=bids, asks=asks, timestamp=datetime.fromtimestamp(ts, timezone.utc),
                mid=mid, best_bid=mid - 1, best_ask=mid + 1, venues=["binance", "kraken"])  # fmt: skip
    return Event("summary", s, ts)


def health(state: BookState, resyncs: int, ts: float, error: str | None = None) -> Event:
    sym = SymbolHealth(symbol="BTC/USDT", state=state, resyncs=resyncs, error_message=error)
    h = HealthStatus(exchange="kraken", is_healthy=state is BookState.LIVE, last_update=NOW, connected=True,
                     error_message=None if state is BookState.LIVE else f"BTC/USDT: {state.value} ({error})",
                     resyncs=resyncs, symbols={"BTC/USDT": sym})  # fmt: skip
    return Event("health", h, ts)


def frames(data: bytes) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    out = []
    for block in data.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def test_summaries_are_trimmed_to_depth_and_history_is_bounded() -> None:
    state = DashboardState(depth=2, history_s=1.0, history_step_s=0.25)
    for i in range(40):
        state.apply([summary("BTC/USDT", 100.0 + i, 1000.0 + i * 0.3, levels=5)])
    s = state.summaries["BTC/USDT"]
    assert len(s["bids"]) == 2 and len(s["asks"]) == 2
    assert s["bids"][0] == [138.0, 1.0, "binance"]
    assert len(state.history["BTC/USDT"]) == 5  # history_s / step + 1
    assert state.history["BTC/USDT"][-1][1] == 139.0


def test_a_cursor_gets_each_change_once() -> None:
    state = DashboardState()
    state.apply([summary("BTC/USDT", 100.0, 1.0), summary("ETH/USDT", 10.0, 1.0)])
    cursor = Cursor()
    first = frames(state.initial(cursor))
    assert [name for name, _ in first] == ["hello", "history", "history", "summary", "summary"]
    assert state.pending(cursor) == b""
    state.apply([summary("ETH/USDT", 11.0, 2.0)])
    again = frames(state.pending(cursor))
    assert [(n, d["symbol"], d["mid"]) for n, d in again] == [("summary", "ETH/USDT", 11.0)]


def test_health_changes_become_log_lines() -> None:
    state = DashboardState()
    state.apply([health(BookState.LIVE, 0, 1.0)])
    assert not state.log
    state.apply([health(BookState.RESYNCING, 1, 2.0, "sequence gap")])
    messages = [item["message"] for _, _, item in state.log]
    assert "BTC/USDT: LIVE -> RESYNCING (sequence gap)" in messages
    assert "BTC/USDT: 1 resync (sequence gap)" in messages
    assert any("RESYNCING (sequence gap)" in m for m in messages)  # the exchange's error, once
    n = len(state.log)
    state.apply([health(BookState.RESYNCING, 1, 3.0, "sequence gap")])
    assert len(state.log) == n  # nothing new, nothing logged
    state.apply([health(BookState.LIVE, 1, 4.0)])
    assert state.log[-1][2]["message"] == "BTC/USDT: RESYNCING -> LIVE"
    tile = state.health["kraken"]
    assert tile["state"] == "LIVE" and tile["resyncs"] == 1 and tile["symbols"]["BTC/USDT"]["resyncs"] == 1


def test_message_rates_come_from_metrics() -> None:
    state = DashboardState()
    state.apply([health(BookState.LIVE, 0, 1.0)])

    def metrics(messages: int, ts: float) -> Event:
        return Event("metrics", Metrics(exchange="kraken", symbol="BTC/USDT", updates_per_second=12.5, latency_ms=1.0,
                                        error_count=0, last_update=NOW, messages=messages), ts)  # fmt: skip

    state.apply([metrics(100, 10.0)])
    state.apply([metrics(150, 12.0)])
    assert state.metrics["kraken"]["msg_rate"] == 25.0
    assert state.health["kraken"]["msg_rate"] == 25.0 and state.health["kraken"]["update_rate"] == 12.5


def test_arbitrage_feed_is_bounded_and_tracks_open_ones() -> None:
    state = DashboardState(feed_size=5)

    def arb(event: str, buy: str) -> Event:
        opp = ArbitrageOpportunity(buy_exchange=buy, sell_exchange="kraken", symbol="BTC/USDT", buy_price=99.0,
                                   sell_price=101.0, profit_percentage=1.5, volume=0.5, timestamp=NOW, event=event)  # type: ignore[arg-type]  # fmt: skip
        return Event("arbitrage", opp, 5.0)

    state.apply([arb("opened", "binance"), arb("opened", "bybit")])
    assert len(state.open_arbs) == 2
    state.apply([arb("closed", "binance")])
    assert list(state.open_arbs) == ["BTC/USDT|bybit|kraken"]
    item = state.arbs[-1][2]
    assert item["event"] == "closed" and abs(item["ts"] - NOW.timestamp()) < 1e-3
    state.apply([arb("updated", "bybit") for _ in range(20)])
    assert len(state.arbs) == 5


def test_no_secret_of_a_credentialed_url_reaches_the_page() -> None:
    from aggcore.credentials import SecretUrl

    url = SecretUrl("nats://feeder:hunter2hunter2@127.0.0.1:4222")
    state = DashboardState()
    leak = f"cannot reach {url.get_secret_value()}"
    state.apply([health(BookState.LIVE, 0, 1.0), health(BookState.RESYNCING, 1, 2.0, leak)])
    cursor = Cursor()
    page = state.initial(cursor) + orjson.dumps(state.snapshot())
    assert b"hunter2hunter2" not in page
    assert b"127.0.0.1:4222" in page  # where it failed is still said
    del url
