"""The one error tree of aggcore.

Every error aggcore raises on purpose derives from :class:`AggregatorError`;
third-party errors (httpx, websockets, pydantic, orjson) are wrapped with
``raise ... from`` so the original stays reachable as ``__cause__``::

    AggregatorError
    ├── ConfigError              bad configuration (file, key path, what was expected)
    ├── PluginError              a plugin failed to load or registered something wrong
    ├── NetworkError             TCP/TLS/HTTP transport failures, HTTP status errors
    │   └── RateLimitError       HTTP 429/418; carries ``retry_after`` seconds
    ├── WebSocketError           handshake failures, unexpected closes, frame too big
    ├── ExchangeError            the exchange answered with an error (unknown symbol,
    │                            rejected subscription, maintenance); carries ``code``
    ├── ParsingError             a frame or body that cannot be understood
    ├── TimeoutError             connect, subscribe, snapshot or stale-feed timeouts
    ├── BookSyncError            a sequence gap, checksum mismatch or crossed book
    │                            (handled internally by resyncing that symbol)
    ├── SinkError                a sink write failed partway; carries ``delivered``
    │                            (events of the batch that did get out)
    ├── UnknownPairError         a pair no configured exchange reads (``get_summary``,
    │                            ``subscribe_summaries``); also a ``LookupError``
    └── RecordingError           a damaged or unreadable recording (names file and offset)

Each error carries ``exchange`` and ``symbol`` where they are known, and its
message names them, so a log line says what failed and where.
"""

from __future__ import annotations

__all__ = [
    "AggregatorError",
    "BookSyncError",
    "ConfigError",
    "ExchangeError",
    "NetworkError",
    "ParsingError",
    "PluginError",
    "RateLimitError",
    "RecordingError",
    "SinkError",
    "TimeoutError",
    "UnknownPairError",
    "WebSocketError",
]


class AggregatorError(Exception):
    """Base of every aggcore error."""

    def __init__(self, message: str, *, exchange: str | None = None, symbol: str | None = None) -> None:
        self.message = message
        self.exchange = exchange
        self.symbol = symbol
        where = ":".join(p for p in (exchange, symbol) if p)
        super().__init__(f"[{where}] {message}" if where else message)


class ConfigError(AggregatorError):
    """Invalid configuration. ``errors`` lists every problem as ``(location, message)``."""

    def __init__(self, message: str, *, errors: list[tuple[str, str]] | None = None, source: str | None = None) -> None:
        self.errors = errors or []
        self.source = source
        super().__init__(message)


class PluginError(AggregatorError):
    """A plugin could not be loaded or registered something invalid."""

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        super().__init__(message)


class NetworkError(AggregatorError):
    """Transport failure: connection refused, reset, TLS, unexpected HTTP status."""

    def __init__(self, message: str, *, status: int | None = None, **kw: str | None) -> None:
        self.status = status
        super().__init__(message, **kw)


class RateLimitError(NetworkError):
    """HTTP 429 or 418 from an exchange; ``retry_after`` is in seconds when given."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None, **kw: str | None) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, **kw)


class WebSocketError(AggregatorError):
    """WebSocket handshake failure, unexpected close or oversize frame."""

    def __init__(self, message: str, *, close_code: int | None = None, **kw: str | None) -> None:
        self.close_code = close_code
        super().__init__(message, **kw)


class ExchangeError(AggregatorError):
    """The exchange replied with an error (``code`` as the exchange gives it)."""

    def __init__(self, message: str, *, code: int | str | None = None, **kw: str | None) -> None:
        self.code = code
        super().__init__(message, **kw)


class ParsingError(AggregatorError):
    """A frame or body that could not be parsed."""


class TimeoutError(AggregatorError):  # noqa: A001 - deliberate, aggcore.TimeoutError
    """Connect, subscribe, snapshot or stale-feed timeout."""


class BookSyncError(AggregatorError):
    """Sequence gap, checksum mismatch or crossed book on one symbol."""

    def __init__(self, message: str, *, reason: str, **kw: str | None) -> None:
        self.reason = reason
        super().__init__(message, **kw)


class SinkError(AggregatorError):
    """A sink's ``write`` failed partway: ``delivered`` events of the batch (its first ones) got
    out before the failure; the runtime counts them as delivered and the rest as dropped."""

    def __init__(self, message: str, *, delivered: int = 0, sink: str | None = None) -> None:
        self.delivered = delivered
        self.sink = sink
        super().__init__(message)


class UnknownPairError(AggregatorError, LookupError):
    """A pair that no configured exchange reads, asked for by ``get_summary`` or
    ``subscribe_summaries`` (a configured pair that is not ready yet is ``None``, not this)."""


class RecordingError(AggregatorError):
    """A recording file that cannot be read (in part): ``path`` and the byte ``offset`` of the
    damaged block."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        super().__init__(message)
