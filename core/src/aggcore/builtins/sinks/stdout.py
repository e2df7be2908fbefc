"""The ``stdout`` sink: one readable line per event, or JSON Lines with ``format: json``.

Human format (times are UTC, from the event's ``ts``)::

    12:00:01.234 summary BTC/USDT bid 60000.10 (binance) ask 60000.50 (okx) spread 0.40 venues 7
    12:00:01.301 arbitrage BTC/USDT OPENED buy okx 60000.50 sell kraken 60100.00 vol 0.35 net +0.07% (gross +0.17%, fees 0.05%+0.05%)
    12:00:02.000 health binance OK connected, 2/2 books LIVE
    12:00:02.000 metrics binance BTC/USDT 41.5 upd/s latency 12.0 ms errors 0

Each batch is written with one ``write`` and flushed, from a worker thread, so a slow reader at
the other end of a pipe holds up this sink only (its bounded buffer then drops the oldest
events, counted in health). When stdout is closed (``aggcore run | head``: broken pipe) the sink
disables itself and says so in health instead of crashing the process.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Literal, TextIO

import anyio.to_thread
import msgspec
from pydantic import BaseModel, Field

from ...models import ArbitrageOpportunity, BookState, HealthStatus, Metrics, Summary
from ...sink import Event, Sink, SinkConfig

log = logging.getLogger("aggcore.sink.stdout")

__all__ = ["StdoutSink", "StdoutSinkConfig", "fmt_compact_price", "fmt_num", "fmt_price", "format_event"]


class StdoutSinkConfig(SinkConfig):
    """``sinks.stdout``."""

    format: Literal["human", "json"] = Field(
        "human",
        description="human: one readable line per event; json: JSON Lines (one Event.to_dict() object per line)",
    )


def _decimals(mag: float) -> int:
    if mag >= 1:
        return max(2, 7 - len(str(int(mag))))
    if mag == 0:
        return 2
    return min(10, 5 - math.floor(math.log10(mag)))


def fmt_price(value: float | None, like: float | None = None) -> str:
    """A price with enough decimals to be told apart from its neighbours (60000.10, 3000.125,
    0.612340); ``like``: use the decimals of that price (a spread shown like the pair's prices)."""
    if value is None or not math.isfinite(value):
        return "-"
    ref = like if like is not None and math.isfinite(like) else value
    return f"{value:.{_decimals(abs(ref))}f}"


def fmt_num(value: float | None, decimals: int = 8) -> str:
    """A compact number without trailing zeros (60100, 0.35, 60000.5)."""
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def fmt_compact_price(value: float | None) -> str:
    """A price rounded like :func:`fmt_price`, without trailing zeros (60000.5, 60100)."""
    if value is None or not math.isfinite(value):
        return "-"
    return fmt_num(value, _decimals(abs(value)))


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def format_summary(s: Summary) -> str:
    """``BTC/USD bid 60000.10 (binance) ask 60000.50 (okx) spread 0.40 venues 6 excluded
    kraken (book RESYNCING: gap)``; with no venue usable: ``BTC/USD no venue live: ...``."""
    bid = s.bids[0] if s.bids else None
    ask = s.asks[0] if s.asks else None
    excluded = "; ".join(f"{name} ({why})" for name, why in sorted(s.excluded.items()))
    if not s.venues:
        return f"{s.symbol} no venue live" + (f": {excluded}" if excluded else "")
    parts = [s.symbol]
    parts.append(f"bid {fmt_price(bid.price)} ({bid.exchange})" if bid else "bid -")
    parts.append(f"ask {fmt_price(ask.price)} ({ask.exchange})" if ask else "ask -")
    parts.append(f"spread {fmt_price(s.spread, like=s.mid or (bid.price if bid else None))}")
    parts.append(f"venues {len(s.venues)}")
    if s.crossed:
        parts.append("CROSSED")
    if excluded:
        parts.append("excluded " + excluded)
    return " ".join(parts)


def format_arbitrage(a: ArbitrageOpportunity) -> str:
    """``BTC/USD OPENED buy okx 59449.36 sell binance 59743.57 vol 2.412287 net +0.29% (gross
    +0.49%, fees 0.10%+0.10%)``: prices with the decimals the pair's summaries use, net profit
    after the taker fees, the gross spread and the fees; ``closed`` adds duration and peak."""
    like = a.buy_price or a.sell_price
    text = (
        f"{a.symbol} {a.event.upper()} buy {a.buy_exchange} {fmt_price(a.buy_price, like=like)} "
        f"sell {a.sell_exchange} {fmt_price(a.sell_price, like=like)} vol {fmt_num(a.volume)} "
        f"net {a.profit_percentage:+.2f}% (gross {a.gross_spread_percentage:+.2f}%, "
        f"fees {a.buy_fee * 100:.2f}%+{a.sell_fee * 100:.2f}%)"
    )
    if a.event == "closed":
        text += f" after {a.duration_ms / 1000:.1f}s peak {a.peak_profit_percentage:+.2f}%"
    return text


def format_health(h: HealthStatus) -> str:
    status = "OK" if h.is_healthy else "DOWN" if (h.kind == "exchange" and not h.connected) else "DEGRADED"
    if h.kind in ("sink", "bus"):
        detail = h.error_message or "ok"
        return f"{h.exchange} {'OK' if h.is_healthy else 'FAILING'} {detail}"
    live = sum(1 for sym in h.symbols.values() if sym.state is BookState.LIVE)
    text = f"{h.exchange} {status} {'connected' if h.connected else 'disconnected'}, {live}/{len(h.symbols)} books LIVE"
    if h.reconnects or h.resyncs:
        text += f", reconnects {h.reconnects} resyncs {h.resyncs}"
    if h.error_message:
        text += f": {h.error_message}"
    return text


def format_metrics(m: Metrics) -> str:
    return (
        f"{m.exchange} {m.symbol} {m.updates_per_second:.1f} upd/s latency {m.latency_ms:.1f} ms "
        f"errors {m.error_count} messages {m.messages}"
    )


def format_payload(payload: msgspec.Struct | BaseModel) -> str:
    if isinstance(payload, Summary):
        return format_summary(payload)
    if isinstance(payload, ArbitrageOpportunity):
        return format_arbitrage(payload)
    if isinstance(payload, HealthStatus):
        return format_health(payload)
    if isinstance(payload, Metrics):
        return format_metrics(payload)
    if isinstance(payload, BaseModel):
        return payload.model_dump_json()  # a third-party analyzer's pydantic payload
    return msgspec.json.encode(payload).decode()  # a third-party analyzer's Struct payload


def format_event(event: Event) -> str:
    """The human line of one event (no trailing newline)."""
    return f"{_clock(event.ts)} {event.kind} {format_payload(event.payload)}"


def write_text(stream: TextIO, text: str) -> None:
    """One write and a flush (runs in a worker thread)."""
    stream.write(text)
    stream.flush()


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (captured in tests): nothing to silence


class StdoutSink(Sink):
    """Events to standard output, human-readable or JSON Lines."""

    name = "stdout"
    Config = StdoutSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, StdoutSinkConfig) else StdoutSinkConfig.model_validate(config.model_dump())
        self.disabled = False
        #: called once when stdout turns out closed (``aggcore run`` then stops: nobody reads)
        self.on_closed: Callable[[], None] | None = None

    def render(self, events: Sequence[Event]) -> str:
        if self.cfg.format == "json":
            return "".join(e.to_json().decode() + "\n" for e in events)
        return "".join(format_event(e) + "\n" for e in events)

    async def write(self, events: Sequence[Event]) -> None:
        if self.disabled:
            self.dropped_events += len(events)
            return
        text = self.render(events)
        if not text:
            return
        stream = sys.stdout
        try:
            await anyio.to_thread.run_sync(write_text, stream, text, abandon_on_cancel=True)
        except (BrokenPipeError, ValueError) as exc:  # ValueError: I/O operation on closed file
            self._disable(exc)
            self.dropped_events += len(events)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self._disable(exc)
            self.dropped_events += len(events)

    def _disable(self, exc: BaseException) -> None:
        self.disabled = True
        self.health_error = f"stdout is closed ({type(exc).__name__}); stdout sink disabled"
        log.warning("%s", self.health_error)
        if isinstance(exc, OSError):
            silence_stdout()
        if self.on_closed is not None:
            self.on_closed()
