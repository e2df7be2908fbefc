"""Fixtures of the NATS plugin's tests: a real nats-server with JetStream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aggcore_plugin_nats.testing import NatsServer, nats_server


@pytest.fixture
def nats_srv() -> Iterator[NatsServer]:
    with nats_server() as server:
        yield server
