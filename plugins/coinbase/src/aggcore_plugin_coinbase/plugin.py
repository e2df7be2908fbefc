"""pluggy registration: the ``coinbase`` entry point of group ``aggcore``."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import CoinbaseConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [CoinbaseConnector]
