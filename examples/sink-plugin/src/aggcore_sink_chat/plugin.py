"""The ``chat`` sink: one chat message per arbitrage opportunity that opens.

Posts ``{"text": "..."}`` to an incoming-webhook URL (the shape Slack and Mattermost accept).
Everything a sink needs is here: a ``Config`` (a ``SinkConfig`` subclass; unknown keys are
rejected), ``open``/``write``/``close``, ``health_error`` for problems, and the hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import Field

from aggcore.config import SecretUrl
from aggcore.hookspecs import hookimpl
from aggcore.models import ArbitrageOpportunity
from aggcore.sink import Event, EventKind, Sink, SinkConfig


def _arbitrage_only() -> list[EventKind]:
    return ["arbitrage"]


class ChatSinkConfig(SinkConfig):
    """``sinks.chat``."""

    url: SecretUrl = Field(..., description="incoming-webhook URL (it carries a token: shown as ***, never logged)")
    min_profit_percentage: float = Field(0.1, ge=0, description="only opportunities at least this profitable")
    timeout_s: float = Field(5.0, gt=0, description="timeout of one POST")
    events: list[EventKind] = Field(default_factory=_arbitrage_only)  # the base's key, another default
    buffer_size: int = Field(100, ge=1)  # a chat is not a firehose: keep only the latest 100


class ChatSink(Sink):
    name = "chat"
    Config = ChatSinkConfig

    def __init__(self, config: SinkConfig, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config)
        assert isinstance(config, ChatSinkConfig)
        self.cfg = config
        self._client = client  # injectable for tests
        self.sent = 0

    async def open(self) -> None:
        # called once, from the sink's own task, before the first write
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.cfg.timeout_s)

    async def write(self, events: Sequence[Event]) -> None:
        # called with batches (everything buffered since the last call); may be slow, it only
        # delays this sink: its bounded buffer drops the oldest events meanwhile (counted)
        assert self._client is not None
        for event in events:
            opp = event.payload
            if not isinstance(opp, ArbitrageOpportunity) or opp.event != "opened":
                continue
            if opp.profit_percentage < self.cfg.min_profit_percentage:
                continue
            await self._post({"text": self.format(opp)})

    async def close(self) -> None:
        # called on shutdown after the buffer was flushed (within the runtime's deadline)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def format(opp: ArbitrageOpportunity) -> str:
        return (
            f"{opp.symbol}: buy on {opp.buy_exchange} at {opp.buy_price:g}, sell on {opp.sell_exchange} "
            f"at {opp.sell_price:g}, {opp.volume:g} available, {opp.profit_percentage:+.2f}%"
        )

    async def _post(self, body: dict[str, Any]) -> None:
        assert self._client is not None
        try:
            resp = await self._client.post(self.cfg.url.get_secret_value(), json=body)
        except httpx.HTTPError as exc:
            # say what is wrong in health instead of raising on every event (raising works too:
            # the runtime counts the error and shows it)
            self.health_error = f"chat webhook unreachable: {type(exc).__name__}"
            self.dropped_events += 1  # not delivered: counted (a write that returns counts the rest as delivered)
            return
        if resp.is_success:
            self.sent += 1
            self.health_error = None
        else:
            self.health_error = f"chat webhook answered HTTP {resp.status_code}"
            self.dropped_events += 1


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    return [ChatSink]
