"""pluggy registration of the Kraken connector (entry point ``kraken`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import KrakenConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [KrakenConnector]
