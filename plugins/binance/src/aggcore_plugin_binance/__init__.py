"""aggcore exchange plugin for Binance spot: ``<symbol>@depth@100ms`` diff stream + ``/api/v3/depth``."""

from .connector import BinanceConfig, BinanceConnector

__all__ = ["BinanceConfig", "BinanceConnector"]
