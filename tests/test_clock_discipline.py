"""Everything on the replayed path reads time through the runtime's clock.

``aggcore replay`` is byte-identical only while connectors, the engine, the views and the
analyzers read time and sleep through ``Clock`` (``self.clock``); one ``time.monotonic()`` or
``anyio.sleep()`` on that path makes replays differ or wait for nothing. This checks the source
of core's modules on that path and of every installed connector plugin's connector module.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from aggcore.plugins import load_plugins

FORBIDDEN = re.compile(r"\btime\.(time|time_ns|monotonic|monotonic_ns|perf_counter)\(\)|\b(anyio|asyncio)\.sleep\(")

CORE = [
    "aggcore.connector",
    "aggcore.aggregator",
    "aggcore.consolidated",
    "aggcore.builtins.analyzers.summary",
    "aggcore.builtins.analyzers.arbitrage",
]

#: the engine's fallbacks for a caller that passes no receipt time (every connector passes one)
ALLOWED = {("aggcore.book", "receipt_ns or time.monotonic_ns()"), ("aggcore.book", "now_ns or time.monotonic_ns()")}


def _offending(module_name: str) -> list[str]:
    source = inspect.getsource(importlib.import_module(module_name))
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0]
        if FORBIDDEN.search(code) and not any(m == module_name and allowed in code for m, allowed in ALLOWED):
            out.append(f"{module_name}:{n}: {line.strip()}")
    return out


@pytest.mark.parametrize("module_name", [*CORE, "aggcore.book"])
def test_core_reads_time_through_the_clock(module_name: str) -> None:
    assert not _offending(module_name)


def test_every_connector_plugin_reads_time_through_its_clock() -> None:
    registry = load_plugins()
    modules = sorted({cls.__module__ for cls in registry.connectors.values()})
    assert modules
    offending = [hit for name in modules for hit in _offending(name)]
    assert not offending, "use self.clock.time()/monotonic()/sleep() instead:\n" + "\n".join(offending)
