"""The plugin as aggcore loads it: entry point, fake-server pointer, default config."""

from __future__ import annotations

from typing import Any

import pytest
from aggcore.models import BookState
from aggcore.testing import Fault, running, wait_until
from aggcore_plugin_kraken.connector import KrakenConnector
from aggcore_plugin_kraken.fake import FakeKraken


def test_entry_point_registers_the_connector(aggcore_registry: Any) -> None:
    assert aggcore_registry.connectors["kraken"] is KrakenConnector
    assert KrakenConnector.ws_url == "wss://ws.kraken.com/v2"
    assert FakeKraken.supported_faults == frozenset(Fault)


@pytest.mark.anyio
async def test_registry_fake_and_connector_factory(fake_exchange: Any, connector_factory: Any) -> None:
    fake = await fake_exchange("kraken", seed=21, rate_hz=100)
    conn = connector_factory("kraken", fake)
    async with running(conn):
        await wait_until(lambda: len(conn.books) == 2 and all(b.state is BookState.LIVE for b in conn.books.values()))
