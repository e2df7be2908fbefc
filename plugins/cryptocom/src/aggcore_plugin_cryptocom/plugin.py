"""pluggy registration of the Crypto.com connector (entry point ``cryptocom`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import CryptocomConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [CryptocomConnector]
