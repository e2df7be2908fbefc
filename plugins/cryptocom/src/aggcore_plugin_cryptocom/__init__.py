"""aggcore exchange plugin for Crypto.com Exchange (API v1): public L2 books over WebSocket."""

from .connector import CryptocomConfig, CryptocomConnector

__all__ = ["CryptocomConfig", "CryptocomConnector"]
