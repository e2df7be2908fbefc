"""Public data types: what crosses the API (pydantic), never built per message on the hot path.

Field names follow the original specification; extra fields are additions users need.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ArbitrageOpportunity",
    "BookState",
    "HealthStatus",
    "Metrics",
    "PriceLevel",
    "Summary",
    "SymbolHealth",
    "TradingPair",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class BookState(str, enum.Enum):
    """Sync state of one (exchange, symbol) book. Only ``LIVE`` books are used downstream."""

    SYNCING = "SYNCING"
    LIVE = "LIVE"
    RESYNCING = "RESYNCING"
    STALE = "STALE"
    FAILED = "FAILED"


class TradingPair(BaseModel):
    """A normalized pair, written ``BASE/QUOTE`` (``BTC/USDT``).

    ``TradingPair.parse("BTC/USDT")`` parses the normalized form. Exchange spellings such as
    ``BTCUSDT`` are resolved only through an exchange's instrument list
    (``TradingPair.parse("BTCUSDT", symbols=...)``), never by guessing where the base ends.
    """

    model_config = ConfigDict(frozen=True)

    base: str
    quote: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            pair = cls.parse(value)
            return {"base": pair.base, "quote": pair.quote}
        return value

    @classmethod
    def parse(cls, text: str, symbols: Iterable[tuple[str, "TradingPair"]] | dict[str, "TradingPair"] | None = None) -> "TradingPair":
        text = text.strip()
        if "/" in text:
            base, _, quote = text.partition("/")
            if not base or not quote or "/" in quote:
                raise ValueError(f"invalid trading pair {text!r}: expected BASE/QUOTE")
            return cls.model_construct(base=base.upper(), quote=quote.upper())
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


class PriceLevel(BaseModel):
    price: float
    quantity: float
    exchange: str
    timestamp: datetime


class Summary(BaseModel):
    """Consolidated top-N of one pair across the venues whose books are LIVE and fresh."""

    symbol: str
    spread: float | None
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    timestamp: datetime
    mid: float | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    crossed: bool = False
    venues: list[str] = Field(default_factory=list, description="exchanges whose books were used")
    excluded: dict[str, str] = Field(default_factory=dict, description="exchange -> why it was left out")
    venue_age_ms: dict[str, float] = Field(default_factory=dict)


class ArbitrageOpportunity(BaseModel):
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


class SymbolHealth(BaseModel):
    symbol: str
    state: BookState
    last_update: datetime | None = None
    age_ms: float | None = None
    last_sequence: int | None = None
    resyncs: int = 0
    gaps: int = 0
    checksum_failures: int = 0
    crossed_books: int = 0
    error_message: str | None = None


class HealthStatus(BaseModel):
    exchange: str
    is_healthy: bool
    last_update: datetime | None
    error_message: str | None = None
    connected: bool = False
    reconnects: int = 0
    resyncs: int = 0
    checksum_failures: int = 0
    symbols: dict[str, SymbolHealth] = Field(default_factory=dict)
    kind: Literal["exchange", "sink", "analyzer", "bus"] = "exchange"


class Metrics(BaseModel):
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
