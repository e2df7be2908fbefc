"""Workspace-wide pytest settings: anyio runs on asyncio (websockets' client is asyncio)."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
