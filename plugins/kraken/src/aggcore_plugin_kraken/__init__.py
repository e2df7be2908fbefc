"""aggcore exchange plugin for Kraken spot (public WebSocket v2, channel ``book``)."""

from .connector import KrakenConfig, KrakenConnector
from .messages import book_checksum, checksum_levels

__all__ = ["KrakenConfig", "KrakenConnector", "book_checksum", "checksum_levels"]
