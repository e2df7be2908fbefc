"""The ``webhook`` sink (placeholder until the real one lands: accepts events and drops them)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, SecretStr

from ...sink import Event, Sink, SinkConfig

__all__ = ["WebhookSink", "WebhookSinkConfig"]


class WebhookSinkConfig(SinkConfig):
    url: str | None = Field(None, description="where events are POSTed")
    secret: SecretStr | None = Field(None, description="shared secret (never logged)")


class WebhookSink(Sink):
    """Placeholder: the real ``webhook`` sink replaces this module."""

    name = "webhook"
    Config = WebhookSinkConfig

    async def write(self, events: Sequence[Event]) -> None:
        return None
