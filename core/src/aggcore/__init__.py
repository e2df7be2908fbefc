"""aggcore: exact L2 books from many crypto exchanges, merged into one consolidated book per pair.

Library use::

    from aggcore import Aggregator

    async with Aggregator(config) as agg:
        async for summary in agg.subscribe_summaries():
            print(summary.symbol, summary.spread)
"""

from .credentials import SecretUrl
from .errors import (
    AggregatorError,
    BookSyncError,
    ConfigError,
    ExchangeError,
    NetworkError,
    ParsingError,
    PluginError,
    RateLimitError,
    SinkError,
    TimeoutError,
    WebSocketError,
)
from .models import (
    ArbitrageOpportunity,
    BookState,
    HealthStatus,
    Metrics,
    PriceLevel,
    Summary,
    SymbolHealth,
    TradingPair,
)

from ._version import PLUGIN_API, __version__

__all__ = [
    "Aggregator",
    "AggregatorError",
    "ArbitrageOpportunity",
    "BookState",
    "BookSyncError",
    "ConfigError",
    "ExchangeError",
    "HealthStatus",
    "Metrics",
    "NetworkError",
    "PLUGIN_API",
    "ParsingError",
    "PluginError",
    "PriceLevel",
    "RateLimitError",
    "SecretUrl",
    "SinkError",
    "Summary",
    "SymbolHealth",
    "TimeoutError",
    "TradingPair",
    "WebSocketError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Aggregator pulls in the runtime (anyio, httpx, OpenTelemetry): import it on first use
    if name == "Aggregator":
        from .aggregator import Aggregator

        return Aggregator
    raise AttributeError(f"module 'aggcore' has no attribute {name!r}")
