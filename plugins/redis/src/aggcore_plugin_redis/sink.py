"""The ``redis`` sink: the latest state as keys any service can read, and events on capped streams.

Per batch, in one ``MULTI``/``EXEC`` transaction (all of it or nothing):

- ``{prefix}summary:{pair}``: the latest summary of every pair (JSON, ``Event.to_dict()["data"]``);
- ``{prefix}health:{name}``: the latest health of every exchange (and sink);
- ``{prefix}book:{venue}:{pair}`` and ``{prefix}metrics:{exchange}:{pair}``: the latest book of
  every venue and pair, and its latest metrics (when those kinds are in ``events``);
- ``{prefix}arbitrage:open``: a hash ``"{pair}|{buy}|{sell}"`` -> the latest JSON of every open
  arbitrage opportunity (removed when it closes);
- ``{prefix}stream:{kind}``: every event, ``XADD ... MAXLEN ~ stream_maxlen`` with the fields
  ``ts`` (publish time, unix seconds) and ``data`` (JSON);
- ``{prefix}sink:{run}``: the number of the last batch written (expires after a day), so that
  after a reconnect the sink knows whether the batch in flight committed and never writes it twice.

Keys get ``key_ttl_s`` when set, so a stopped aggcore leaves no summary that looks current.
Reconnects, backoff, the bounded buffer and the accounting are :class:`aggcore.buffered.BufferedSink`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions as rexc
from pydantic import Field, field_validator
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aggcore.buffered import BufferedSink, BufferedSinkConfig
from aggcore.credentials import SecretUrl
from aggcore.errors import ConfigError
from aggcore.sink import Event, EventKind, SinkConfig

__all__ = ["RedisSink", "RedisSinkConfig"]


def _default_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health"]


class RedisSinkConfig(BufferedSinkConfig):
    """``sinks.redis``."""

    events: list[EventKind] = Field(default_factory=_default_events)
    url: SecretUrl = Field(
        SecretUrl("redis://127.0.0.1:6379/0"),
        description="redis://[[user]:password@]host:port/db (or rediss:// for TLS); a secret: credentials never shown",
    )
    key_prefix: str = Field("aggcore:", description="prefix of every key and stream")
    key_ttl_s: float | None = Field(None, gt=0, description="expire the latest-state keys after this long without an update (None: never)")
    streams: bool = Field(True, description="append every event to {prefix}stream:{kind}")
    stream_maxlen: int = Field(100_000, ge=1, description="approximate cap of each stream (XADD MAXLEN ~)")
    socket_timeout_s: float = Field(5.0, gt=0, description="timeout of one command")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretUrl) -> SecretUrl:
        return value.require_scheme("redis", "rediss")


class RedisSink(BufferedSink):
    """Latest summaries/health as keys, every event on a capped stream."""

    name = "redis"
    Config = RedisSinkConfig

    def __init__(self, config: SinkConfig) -> None:
        cfg = config if isinstance(config, RedisSinkConfig) else RedisSinkConfig.model_validate(config.model_dump())
        super().__init__(cfg)
        self.cfg = cfg
        self.client: aioredis.Redis | None = None
        self.run_id = uuid.uuid4().hex[:16]
        self.progress_key = f"{cfg.key_prefix}sink:{self.run_id}"

    def describe(self) -> str:
        return f"redis {self.cfg.url}"

    def scrub(self, text: str) -> str:
        return self.cfg.url.scrub(text)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (rexc.ConnectionError, rexc.TimeoutError, OSError, TimeoutError)) and not self.is_permanent(exc)

    def is_refusal(self, exc: BaseException) -> bool:
        # maxmemory reached, a failing disk under the AOF, a replica, busy: hold and retry, never drop
        if isinstance(exc, (rexc.OutOfMemoryError, rexc.ReadOnlyError, rexc.TryAgainError)):
            return True
        return isinstance(exc, rexc.ResponseError) and any(word in str(exc) for word in _BUSY)

    def is_permanent(self, exc: BaseException) -> bool:
        if isinstance(exc, (rexc.AuthenticationError, rexc.AuthorizationError, rexc.NoPermissionError)):
            return True
        return isinstance(exc, ConfigError)

    async def connect(self) -> None:
        cfg = self.cfg
        try:
            client = aioredis.Redis.from_url(
                cfg.url.get_secret_value(),
                socket_connect_timeout=cfg.connect_timeout_s,
                socket_timeout=cfg.socket_timeout_s,
                retry=Retry(NoBackoff(), 0),  # the sink retries whole batches itself
                retry_on_error=[],
            )
        except ValueError as exc:
            raise ConfigError(f"sinks.redis.url: {self.scrub(str(exc))}") from exc
        self.client = client
        try:
            await client.ping()
        except (rexc.AuthenticationError, rexc.AuthorizationError, rexc.NoPermissionError) as exc:
            raise ConfigError(f"sinks.redis.url: {self.describe()} refused the credentials: {self.scrub(str(exc))}") from exc
        except rexc.ResponseError as exc:  # e.g. "DB index is out of range"
            raise ConfigError(f"sinks.redis.url: {self.describe()}: {self.scrub(str(exc))}") from exc

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    async def committed(self, batch_no: int) -> bool:
        assert self.client is not None
        done = await self.client.get(self.progress_key)
        return done is not None and int(done) >= batch_no

    async def deliver(self, batch: Sequence[Event], batch_no: int) -> None:
        assert self.client is not None
        cfg = self.cfg
        prefix = cfg.key_prefix
        latest: dict[str, bytes] = {}
        opened: dict[str, bytes] = {}
        closed: set[str] = set()
        pipe = self.client.pipeline(transaction=True)
        for event in batch:
            d = event.to_dict()
            data = orjson.dumps(d["data"])
            kind = event.kind
            if kind == "summary":
                latest[f"{prefix}summary:{_attr(event, 'symbol')}"] = data
            elif kind == "health":
                latest[f"{prefix}health:{_attr(event, 'exchange')}"] = data
            elif kind == "book":
                latest[f"{prefix}book:{_attr(event, 'venue')}:{_attr(event, 'pair')}"] = data
            elif kind == "metrics":
                latest[f"{prefix}metrics:{_attr(event, 'exchange')}:{_attr(event, 'symbol')}"] = data
            elif kind == "arbitrage":
                field = f"{_attr(event, 'symbol')}|{_attr(event, 'buy_exchange')}|{_attr(event, 'sell_exchange')}"
                if _attr(event, "event") == "closed":
                    opened.pop(field, None)
                    closed.add(field)
                else:
                    closed.discard(field)
                    opened[field] = data
            if cfg.streams:
                pipe.xadd(
                    f"{prefix}stream:{kind}",
                    {"ts": repr(event.ts), "data": data},
                    maxlen=cfg.stream_maxlen,
                    approximate=True,
                )
        ttl = int(cfg.key_ttl_s * 1000) if cfg.key_ttl_s is not None else None
        for key, value in latest.items():
            pipe.set(key, value, px=ttl)
        open_key = f"{prefix}arbitrage:open"
        if closed:
            pipe.hdel(open_key, *closed)
        if opened:
            pipe.hset(open_key, mapping=opened)  # type: ignore[arg-type]
        pipe.set(self.progress_key, batch_no, ex=86_400)
        await pipe.execute()


_BUSY = ("OOM", "MISCONF", "READONLY", "TRYAGAIN", "LOADING", "BUSY", "Errors writing to the AOF")


def _attr(event: Event, name: str) -> Any:
    return getattr(event.payload, name)
