"""pluggy registration of the Bybit connector (entry point ``bybit`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import BybitConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [BybitConnector]
