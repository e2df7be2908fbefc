"""Public data types: what crosses the API (summaries, arbitrage, health, metrics).

They are typed ``msgspec.Struct`` classes, not pydantic models: a Summary is built for every
emitted update, and a Struct costs a fraction of a validated model to build and to encode.
Construct them with keywords (``Summary(symbol=..., ...)``; ``PriceLevel`` also positionally),
read them by attribute, and convert them with ``to_dict()`` (JSON-compatible builtins:
datetimes become RFC 3339 strings, enums their values) or ``to_json()`` (bytes). Constructors
do not validate: pass the annotated types. Configuration stays pydantic (``aggcore.config``).

Field names follow the original specification; extra fields are additions users need.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

__all__ = [
    "ArbitrageOpportunity",
    "BookState",
    "HealthStatus",
    "Metrics",
    "PriceLevel",
    "PublicType",
    "Summary",
    "SymbolHealth",
    "TradingPair",
    "utcnow",
]

_ENCODER = msgspec.json.Encoder()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class BookState(str, enum.Enum):
    """Sync state of one (exchange, symbol) book. Only ``LIVE`` books are used downstream."""

    SYNCING = "SYNCING"
    LIVE = "LIVE"
    RESYNCING = "RESYNCING"
    STALE = "STALE"
    FAILED = "FAILED"


class PublicType(msgspec.Struct, kw_only=True):
    """Base of the mutable public types: typed, cheap to build, convertible to dicts and JSON.
    (The immutable ``TradingPair`` and ``PriceLevel`` have the same two methods.)"""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible builtins (datetimes as RFC 3339 strings, enums as values)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)


class TradingPair(msgspec.Struct, frozen=True, kw_only=True):
    """A normalized pair, written ``BASE/QUOTE`` (``BTC/USDT``); hashable.

    ``TradingPair.parse("BTC/USDT")`` parses the normalized form. Exchange spellings such as
    ``BTCUSDT`` are resolved only through an exchange's instrument list
    (``TradingPair.parse("BTCUSDT", symbols=...)``), never by guessing where the base ends.
    """

    base: str
    quote: str

    @classmethod
    def parse(cls, text: str, symbols: Iterable[tuple[str, TradingPair]] | dict[str, TradingPair] | None = None) -> TradingPair:
        text = text.strip()
        if "/" in text:
            base, _, quote = text.partition("/")
            if not base or not quote or "/" in quote:
                raise ValueError(f"invalid trading pair {text!r}: expected BASE/QUOTE")
            return cls(base=base.upper(), quote=quote.upper())
        if symbols is not None:
            table = dict(symbols) if not isinstance(symbols, dict) else symbols
            found = table.get(text) or table.get(text.upper()) or table.get(text.lower())
            if found is not None:
                return found
            raise ValueError(f"unknown symbol {text!r} for this exchange")
        raise ValueError(
            f"cannot tell base from quote in {text!r} without the exchange's symbol list; write it as BASE/QUOTE"
        )

    def __str__(self) -> str:
        return f"{self.base}/{self.quote}"

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "quote": self.quote}

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)


class PriceLevel(msgspec.Struct, frozen=True, gc=False):
    """One level of a consolidated side: ``PriceLevel(price, quantity, exchange, timestamp)``.

    ``timestamp`` (UTC) is when this level last changed as aggcore saw it: the time of its
    exchange book's last update when the consolidated view read the level at this price with
    this quantity. A level whose price and quantity stay the same keeps its timestamp, and is
    the same object from summary to summary (immutable and hashable: consecutive summaries
    share the levels that did not change).
    """

    price: float
    quantity: float
    exchange: str
    timestamp: datetime

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_json(self) -> bytes:
        return _ENCODER.encode(self)


class Summary(PublicType):
    """Consolidated top-N of one pair across the venues whose books are LIVE and fresh.

    ``bids`` are best (highest) first, ``asks`` best (lowest) first; each level names its
    exchange and when it last changed (:class:`PriceLevel`). ``timestamp``: when the summary
    was made. ``venues``: the exchanges whose books were used; ``excluded``: exchange -> why it
    was left out; ``venue_age_ms``: exchange -> milliseconds since its book was last known
    current (its last update, or its connection's last frame when later).
    """

    symbol: str
    spread: float | None
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    timestamp: datetime
    mid: float | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    crossed: bool = False
    venues: list[str] = []
    excluded: dict[str, str] = {}
    venue_age_ms: dict[str, float] = {}


class ArbitrageOpportunity(PublicType):
    """Buy on ``buy_exchange``, sell on ``sell_exchange``: prices volume-weighted over ``volume``
    (rounded to the pair's price decimals), ``profit``/``profit_percentage`` net of taker fees,
    ``gross_spread_percentage`` before fees, ``buy_fee``/``sell_fee`` the taker fees used
    (fractions: 0.001 = 0.1 %). ``event`` is ``opened``, ``updated`` or ``closed`` (with
    ``duration_ms`` and the peaks)."""

    buy_exchange: str
    sell_exchange: str
    symbol: str
    buy_price: float
    sell_price: float
    profit_percentage: float
    volume: float
    timestamp: datetime
    event: Literal["opened", "updated", "closed"] = "opened"
    profit: float = 0.0
    duration_ms: float = 0.0
    peak_profit_percentage: float = 0.0
    peak_volume: float = 0.0
    gross_spread_percentage: float = 0.0
    buy_fee: float = 0.0
    sell_fee: float = 0.0


class SymbolHealth(PublicType):
    """Health of one (exchange, symbol) book."""

    symbol: str
    state: BookState
    last_update: datetime | None = None
    age_ms: float | None = None
    last_sequence: int | None = None
    resyncs: int = 0
    gaps: int = 0
    checksum_failures: int = 0
    crossed_books: int = 0
    invalid_messages: int = 0  # messages rejected for a level no book may hold (NaN, inf, price <= 0, size < 0)
    error_message: str | None = None
    #: a book that is not LIVE: what it waits for and what the engine does next ("ask again",
    #: "reconnect its connection", "retry the FAILED book"), in ``next_retry_s`` seconds
    waiting_for: str | None = None
    next_retry_s: float | None = None


class HealthStatus(PublicType):
    """Health of one exchange (``kind="exchange"``), sink or analyzer."""

    exchange: str
    is_healthy: bool
    last_update: datetime | None
    error_message: str | None = None
    connected: bool = False
    reconnects: int = 0
    resyncs: int = 0
    checksum_failures: int = 0
    symbols: dict[str, SymbolHealth] = {}
    kind: Literal["exchange", "sink", "analyzer", "bus"] = "exchange"
    #: sinks: ``produced`` = ``delivered`` + ``dropped`` + ``in_flight``, and ``dropped`` by reason
    #: (``dropped_buffer_full``, ``dropped_write_error``, ``dropped_shutdown``, ``dropped_sink``)
    events: dict[str, int] = {}


class Metrics(PublicType):
    """Counters and rates of one (exchange, symbol)."""

    exchange: str
    symbol: str
    updates_per_second: float
    latency_ms: float
    error_count: int
    last_update: datetime | None
    messages: int = 0
    level_updates: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksum_failures: int = 0
