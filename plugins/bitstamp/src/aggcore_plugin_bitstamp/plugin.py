"""pluggy registration of the Bitstamp connector (entry point ``bitstamp`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import BitstampConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [BitstampConnector]
