"""Small async helpers for tests of connectors: run one in the background, poll a condition."""

from __future__ import annotations

import os

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from ..connector import Connector

__all__ = ["running", "wait_until"]

C = TypeVar("C", bound="Connector")

try:
    _SCALE = max(float(os.environ.get("AGGCORE_TEST_TIMEOUT_SCALE", "1")), 0.1)
except ValueError:
    _SCALE = 1.0


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.01, what: str = "") -> None:
    """Poll ``predicate`` until it holds; raise ``AssertionError`` naming ``what`` after ``timeout`` s.

    ``timeout`` is multiplied by ``$AGGCORE_TEST_TIMEOUT_SCALE`` (default 1) for slow or busy
    machines; a predicate that holds returns at once whatever the timeout.
    """
    timeout *= _SCALE
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(interval)
        return
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")


@asynccontextmanager
async def running(connector: C, *, wait_setup: bool = False) -> AsyncIterator[C]:
    """Run ``connector`` in the background for the body of the ``async with``, then cancel it.

    With ``wait_setup``, the body starts only once the connector has loaded its instruments and
    created its books (``Connector.run`` reported itself started)."""
    async with anyio.create_task_group() as tg:
        if wait_setup:
            await tg.start(connector.run)
        else:
            tg.start_soon(connector.run)
        try:
            yield connector
        finally:
            tg.cancel_scope.cancel()
