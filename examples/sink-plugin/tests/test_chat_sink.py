"""Test a sink without the network: httpx.MockTransport stands in for the chat server."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from aggcore.models import ArbitrageOpportunity
from aggcore.sink import Event
from aggcore_sink_chat import ChatSink, ChatSinkConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def opportunity(profit: float, event: str = "opened") -> Event:
    opp = ArbitrageOpportunity(
        buy_exchange="okx", sell_exchange="kraken", symbol="BTC/USDT", buy_price=60000.5, sell_price=60100,
        profit_percentage=profit, volume=0.35, timestamp=datetime.now(timezone.utc), event=event,
    )  # fmt: skip
    return Event("arbitrage", opp)


async def test_posts_profitable_openings_only() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sink = ChatSink(ChatSinkConfig.model_validate({"url": "https://chat.example/hook"}), client=client)
    await sink.open()
    await sink.write([opportunity(0.05), opportunity(0.12), opportunity(0.3, "closed")])
    await sink.close()
    assert [m["text"] for m in seen] == ["BTC/USDT: buy on okx at 60000.5, sell on kraken at 60100, 0.35 available, +0.12%"]
    assert sink.health_error is None


async def test_failure_shows_in_health() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    sink = ChatSink(ChatSinkConfig.model_validate({"url": "https://chat.example/hook"}), client=client)
    await sink.open()
    await sink.write([opportunity(1.0)])
    assert sink.health_error == "chat webhook answered HTTP 500"
    assert sink.dropped_events == 1  # not delivered, so counted
    await sink.close()


def test_the_url_token_is_never_shown() -> None:
    cfg = ChatSinkConfig.model_validate({"url": "https://chat.example/services/T01/B02/Xq3vB8nT2kL9mP4wR7yZ1cD5"})
    assert "Xq3vB8nT2kL9mP4wR7yZ1cD5" not in repr(cfg) + cfg.model_dump_json()
    assert cfg.url.get_secret_value().endswith("/Xq3vB8nT2kL9mP4wR7yZ1cD5")


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValueError):
        ChatSinkConfig.model_validate({"url": "https://x", "min_profit": 1})
