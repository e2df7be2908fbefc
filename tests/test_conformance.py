"""The conformance suite over every installed connector plugin (and the toy reference plugin)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import pytest

from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.testing.conformance import checks_for, run_check

pytestmark = pytest.mark.anyio


def _registry() -> PluginRegistry:
    eps = list(entry_points(group="aggcore"))
    eps.append(EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore"))
    return load_plugins(entry_points=eps, disabled=())


REGISTRY = _registry()
CASES = [
    pytest.param(name, check, id=f"{name}-{check}")
    for name, cls in sorted(REGISTRY.connectors.items())
    if cls.fake_server
    for check in checks_for(REGISTRY, name)
]


@pytest.mark.parametrize(("plugin", "check"), CASES)
async def test_conformance(plugin: str, check: str) -> None:
    detail = await run_check(REGISTRY, plugin, check, timeout=45)
    print(f"{plugin} {check}: {detail}")
