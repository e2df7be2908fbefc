"""Settings of the NATS bus (``bus.nats``) and of the ``nats`` sink (``sinks.nats``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from aggcore.bus import BusConfig
from aggcore.credentials import SecretUrl
from aggcore.sink import EventKind, SinkConfig

__all__ = ["NatsBusConfig", "NatsConnection", "NatsSinkConfig"]


class NatsConnection(BaseModel):
    """How to reach the NATS servers. Every credential is a secret: never logged or shown."""

    servers: list[SecretUrl] = Field(
        default_factory=lambda: [SecretUrl("nats://127.0.0.1:4222")],
        description="server URLs (nats://[user:password@]host:port); credentials in them stay secret",
    )
    user: str | None = Field(None, description="user name (with password)")
    password: SecretStr | None = Field(None, description="password (with user)")
    token: SecretStr | None = Field(None, description="authentication token")
    creds_file: Path | None = Field(None, description="a .creds file (JWT + NKey seed) for decentralized auth")
    name: str = Field("aggcore", description="the client name shown by the server")
    connect_timeout_s: float = Field(2.0, gt=0, description="timeout of one connection attempt")
    reconnect_wait_s: float = Field(0.5, gt=0, description="pause between reconnection attempts (forever)")
    subject_prefix: str = Field("aggcore.v1", description="the first tokens of every subject")

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: list[SecretUrl]) -> list[SecretUrl]:
        if not value:
            raise ValueError("at least one server URL is needed")
        for url in value:
            url.require_scheme("nats", "tls", "ws", "wss")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in " *>\t") or value.startswith(".") or value.endswith("."):
            raise ValueError("a subject prefix is dot-separated tokens without spaces, '*' or '>'")
        return value

    def shown_servers(self) -> str:
        return ", ".join(s.redacted for s in self.servers)


class NatsBusConfig(BusConfig, NatsConnection):
    """``bus.nats``: the NATS connection and the JetStream stream that keeps each book's last message."""

    stream: str = Field("AGGCORE", description="the JetStream stream (created or updated by any process)")
    storage: Literal["file", "memory"] = Field("file", description="stream storage; file survives a server restart")
    replicas: int = Field(1, ge=1, le=5, description="stream replicas (in a NATS cluster)")
    max_age_s: float = Field(86400, gt=0, description="a book's last message is forgotten after this long")


def _sink_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health"]


class NatsSinkConfig(SinkConfig, NatsConnection):
    """``sinks.nats``: events as JSON on ``<prefix>.summary.<pair>``, ``<prefix>.arbitrage.<pair>``,
    ``<prefix>.health``, ``<prefix>.metrics`` and ``<prefix>.books.<venue>.<pair>``."""

    events: list[EventKind] = Field(default_factory=_sink_events)
