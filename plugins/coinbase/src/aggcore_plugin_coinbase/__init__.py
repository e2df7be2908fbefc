"""aggcore exchange plugin for Coinbase Advanced Trade public market data (``level2``)."""

from .connector import CoinbaseConfig, CoinbaseConnector

__all__ = ["CoinbaseConfig", "CoinbaseConnector"]
