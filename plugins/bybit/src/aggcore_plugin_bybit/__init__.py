"""aggcore exchange plugin for Bybit's v5 public order-book streams (spot and linear)."""

from .connector import BybitConfig, BybitConnector

__all__ = ["BybitConfig", "BybitConnector"]
