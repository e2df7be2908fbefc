"""Entry point ``binance`` (group ``aggcore``): registers the Binance spot connector."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import BinanceConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [BinanceConnector]
