"""aggcore plugin for OKX (v5 public WebSocket, channel ``books``): spot and perpetual swaps."""

from .connector import OkxConfig, OkxConnector

__all__ = ["OkxConfig", "OkxConnector"]
