"""pluggy hook implementations of the OKX plugin (entry point ``okx`` in group ``aggcore``)."""

from __future__ import annotations

from aggcore.connector import Connector
from aggcore.hookspecs import hookimpl

from .connector import OkxConnector


@hookimpl
def aggcore_register_connectors() -> list[type[Connector]]:
    return [OkxConnector]
