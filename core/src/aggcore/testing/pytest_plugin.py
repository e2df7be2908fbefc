"""pytest plugin (entry point ``pytest11``): fixtures for testing aggcore plugins.

- ``aggcore_registry``: a fresh :class:`~aggcore.plugins.PluginRegistry` of the installed plugins.
- ``fake_exchange``: an async factory; ``fake = await fake_exchange("binance", seed=1)`` starts
  that plugin's fake server on 127.0.0.1 and stops it after the test.
- ``connector_factory``: ``conn = connector_factory("binance", fake, trading_pairs=[...])``
  builds the plugin's connector pointed at a fake.
- ``aggregator_factory``: ``agg = await aggregator_factory({"exchanges": {...}})`` starts an
  :class:`~aggcore.aggregator.Aggregator` and stops it after the test.
- ``recording``: ``recording("BINANCE.ws.1.0")`` opens a real capture, or skips the test with
  the reason when ``../shared/recordings`` is absent.
- ``wait_until(predicate, timeout=5.0)``: poll a condition on the event loop (a helper, not
  a fixture: ``from aggcore.testing.pytest_plugin import wait_until``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .recordings import Recording, recording as _recording
from .running import wait_until

if TYPE_CHECKING:
    from ..connector import Connector
    from ..plugins import PluginRegistry
    from .server import FakeExchange

__all__ = ["wait_until"]


def fake_class(registry: "PluginRegistry", name: str) -> "type[FakeExchange]":
    return registry.connectors[name].load_fake()


@pytest.fixture
def aggcore_registry() -> "PluginRegistry":
    from ..plugins import load_plugins

    return load_plugins()


@pytest.fixture
async def fake_exchange(aggcore_registry: "PluginRegistry") -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeExchange] = []

    async def start(name: str, **kwargs: Any) -> "FakeExchange":
        fake = fake_class(aggcore_registry, name)(**kwargs)
        await fake.start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.stop()


@pytest.fixture
def connector_factory(aggcore_registry: "PluginRegistry") -> Callable[..., "Connector"]:
    def build(name: str, fake: "FakeExchange", **overrides: Any) -> "Connector":
        cls = aggcore_registry.connectors[name]
        return cls(cls.Config.model_validate(fake.connector_config(**overrides)))

    return build


@pytest.fixture
async def aggregator_factory(aggcore_registry: "PluginRegistry") -> AsyncIterator[Callable[..., Any]]:
    from ..aggregator import Aggregator

    started: list[Aggregator] = []

    async def start(config: Any, **kwargs: Any) -> "Aggregator":
        kwargs.setdefault("registry", aggcore_registry)
        agg = Aggregator(config, **kwargs)
        await agg.start()
        started.append(agg)
        return agg

    yield start
    for agg in reversed(started):
        await agg.stop()


@pytest.fixture
def recording() -> Iterator[Callable[[str], Recording]]:
    yield _recording
