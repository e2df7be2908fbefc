"""aggcore: exact L2 books from many crypto exchanges, merged into one consolidated book per pair.

Library use::

    from aggcore import Aggregator

    async with Aggregator(config) as agg:
        async for summary in agg.subscribe_summaries():
            print(summary.symbol, summary.spread)
"""

from typing import TYPE_CHECKING

from .errors import (
    AggregatorError,
    BookSyncError,
    ConfigError,
    ExchangeError,
    NetworkError,
    ParsingError,
    PluginError,
    RateLimitError,
    RecordingError,
    SinkError,
    TimeoutError,
    UnknownPairError,
    WebSocketError,
)

if TYPE_CHECKING:
    from .aggregator import Aggregator
    from .credentials import SecretUrl
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
    "RecordingError",
    "SecretUrl",
    "SinkError",
    "Summary",
    "SymbolHealth",
    "TimeoutError",
    "TradingPair",
    "UnknownPairError",
    "WebSocketError",
    "__version__",
]


#: where each lazily imported public name lives: ``import aggcore`` (and ``aggcore --version``)
#: stays fast; the models (msgspec), credentials (pydantic) and the runtime (anyio, httpx,
#: OpenTelemetry) load on first use
_LAZY = {
    "Aggregator": "aggregator",
    "SecretUrl": "credentials",
    **{
        name: "models"
        for name in (
            "ArbitrageOpportunity",
            "BookState",
            "HealthStatus",
            "Metrics",
            "PriceLevel",
            "Summary",
            "SymbolHealth",
            "TradingPair",
        )
    },
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aggcore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
