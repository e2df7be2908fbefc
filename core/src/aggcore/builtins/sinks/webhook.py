"""The ``webhook`` sink: POSTs JSON batches of events to a URL.

Body: ``{"events": [Event.to_dict(), ...]}`` with ``Content-Type: application/json``.

Batching: events are collected and POSTed when ``batch_max_events`` are pending or
``batch_max_delay_ms`` after the first pending event, whichever comes first. While a batch is
being delivered (retries included) the sink takes no new events, so its bounded buffer in
front fills up and then drops the oldest events (counted in health and metrics).

Delivery (following the Standard Webhooks recommendations):

- 2xx: delivered; a previous health error is cleared.
- network errors, timeouts, 5xx and 429: retried with exponential backoff and full jitter
  (``random.uniform(0, min(backoff_max_s, backoff_initial_s * 2**n))``), or after
  ``Retry-After`` (seconds or an HTTP date) when the response carries it, for at most
  ``retry_max_attempts`` attempts and ``retry_budget_s`` seconds per batch; then the batch is
  dropped (``failed_batches``, ``dropped_events``) and health says why.
- 410 Gone: the receiver wants no more; the sink disables itself for good (health error
  ``endpoint returned 410 Gone; webhook disabled``) and drops (and counts) every later event.
- other statuses (3xx, 4xx): the batch is dropped and counted, health says which status.

Accounting: every event handed to the sink ends up counted once, in ``delivered_events``
(a 2xx came back) or ``dropped_events`` (4xx, 410, retry budget or attempts spent, cut by the
shutdown deadline, received after close), and is ``pending_events`` until then.

Duplicates: a request that timed out (or whose connection broke) may still have reached the
receiver; it is retried with the same ``webhook-id``. A receiver therefore sees one batch at
most ``retry_max_attempts`` times, all with the same ``webhook-id``, and must deduplicate by it.
The batch is counted once: delivered if one attempt got a 2xx, else dropped (so a dropped
batch may still have arrived: "dropped" means "not confirmed"). At shutdown, only the batch
being delivered when the deadline passes can be in that state.

Signing (``secret`` set): the Standard Webhooks scheme. Headers ``webhook-id`` (``msg_<uuid>``,
the same for every attempt of one batch: receivers use it to deduplicate), ``webhook-timestamp``
(unix seconds of the attempt) and ``webhook-signature`` =
``v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>``, where ``key`` is the base64-decoded
part after ``whsec_`` when the secret starts with ``whsec_``, else the secret's UTF-8 bytes.
See ``docs/plugins.md`` (Verifying webhook signatures) for the receiver's side.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import orjson
from pydantic import Field, SecretStr, field_validator

from ...credentials import SecretUrl
from ...sink import Event, Sink, SinkConfig

__all__ = ["WebhookSink", "WebhookSinkConfig", "parse_retry_after", "sign", "signing_key"]

log = logging.getLogger("aggcore.sink.webhook")

GONE_MESSAGE = "endpoint returned 410 Gone; webhook disabled"


class WebhookSinkConfig(SinkConfig):
    """``sinks.webhook``."""

    url: SecretUrl = Field(
        ..., description="where batches are POSTed (http:// or https://); a secret: credentials are never shown"
    )
    batch_max_events: int = Field(100, ge=1, description="POST as soon as this many events are pending")
    batch_max_delay_ms: float = Field(500, ge=0, description="POST at most this long after the first pending event")
    timeout_s: float = Field(10.0, gt=0, description="timeout of one POST (connect + send + response)")
    retry_max_attempts: int = Field(8, ge=1, description="attempts per batch, the first one included")
    retry_budget_s: float = Field(30.0, gt=0, description="total time spent on one batch before it is dropped")
    backoff_initial_s: float = Field(0.5, gt=0, description="backoff cap of the first retry (full jitter below it)")
    backoff_max_s: float = Field(10.0, gt=0, description="largest backoff cap")
    secret: SecretStr | None = Field(
        None, description="Standard Webhooks signing secret (whsec_<base64> or any string); never logged"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretUrl) -> SecretUrl:
        return value.require_scheme("http", "https")

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if not text:
                raise ValueError("the secret is empty")
            if text.startswith("whsec_"):
                try:
                    base64.b64decode(text[len("whsec_") :], validate=True)
                except ValueError:
                    raise ValueError("a secret starting with whsec_ must continue with base64") from None
        return value


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64-decoded after ``whsec_``, else the UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of one attempt."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookSink(Sink):
    """Batches of events POSTed to a URL, retried, optionally signed."""

    name = "webhook"
    Config = WebhookSinkConfig
    holds_events = True  # batches and retries inside: it counts delivered/dropped/pending itself

    def __init__(self, config: SinkConfig, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, WebhookSinkConfig) else WebhookSinkConfig.model_validate(config.model_dump())
        self._client = client
        self._own_client = client is None
        self._key = signing_key(self.cfg.secret.get_secret_value()) if self.cfg.secret is not None else None
        self._pending: list[dict[str, Any]] = []
        self._first_at: float | None = None
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._inflight = 0  # events of the batch being delivered
        self.disabled = False
        self._closed = False
        # counters
        self.sent_batches = 0
        self.sent_events = 0
        self.failed_batches = 0
        self.retries = 0
        self.last_status: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.cfg.timeout_s)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="aggcore-webhook-flusher")

    async def write(self, events: Sequence[Event]) -> None:
        if self.disabled or self._closed:  # after close(): events published during shutdown
            self.dropped_events += len(events)
            return
        try:
            encoded = [e.to_dict() for e in events]
        except Exception:
            self.dropped_events += len(events)  # handed to us: counted even when it cannot be encoded
            raise
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.extend(encoded)
        self._wake.set()
        while len(self._pending) >= self.cfg.batch_max_events and not self.disabled:
            async with self._lock:  # backpressure: the runner waits while a full batch is delivered
                if len(self._pending) >= self.cfg.batch_max_events:
                    await self._send_next()

    async def close(self) -> None:
        """Stop the flusher, deliver what is pending (each batch within its retry budget, and all
        of it within the runtime's shutdown deadline), close the client. Whatever is not
        delivered when the deadline cancels this is counted in ``dropped_events``."""
        self._closed = True
        try:
            async with self._lock:  # a batch the flusher is delivering finishes first
                await self._stop_flusher()
                while self._pending and not self.disabled:
                    await self._send_next()
        finally:
            await self._stop_flusher()
            if self._pending:
                self.dropped_events += len(self._pending)
                self._pending.clear()
            if self._own_client and self._client is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    await self._client.aclose()
                self._client = None

    @property
    def pending_events(self) -> int:
        return len(self._pending) + self._inflight

    async def _stop_flusher(self) -> None:
        task, self._flusher = self._flusher, None
        if task is None:
            return
        task.cancel()
        with anyio.CancelScope(shield=True):  # its batch is counted by _deliver before we go on
            done, _ = await asyncio.wait([task], timeout=1.0)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("webhook flusher failed: %r", t.exception())

    # -- batching ---------------------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        delay = self.cfg.batch_max_delay_ms / 1000
        while True:
            if not self._pending:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            if self._first_at is None:
                self._first_at = time.monotonic()
            wait = self._first_at + delay - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            async with self._lock:
                if self._pending and self._first_at is not None and time.monotonic() - self._first_at >= delay:
                    await self._send_next()

    async def _send_next(self) -> None:
        batch = self._pending[: self.cfg.batch_max_events]
        del self._pending[: self.cfg.batch_max_events]
        self._first_at = time.monotonic() if self._pending else None
        if self.disabled:
            self.dropped_events += len(batch)
            return
        await self._deliver(batch)

    # -- delivery ---------------------------------------------------------------------------------------------
    def _headers(self, msg_id: str, body: bytes) -> dict[str, str]:
        ts = int(time.time())
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts)}
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, msg_id, ts, body)
        return headers

    def _drop(self, batch: list[dict[str, Any]], why: str) -> None:
        self.failed_batches += 1
        self.dropped_events += len(batch)
        self.health_error = (
            f"{why}; batch of {len(batch)} events dropped "
            f"({self.failed_batches} batches / {self.dropped_events} events dropped so far)"
        )
        log.warning("webhook %s: %s", self.cfg.url, self.health_error)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        self._inflight = len(batch)
        try:
            await self._attempts(batch)
        except BaseException:  # shutdown deadline (cancelled), or a bug: this batch is lost, counted
            self.dropped_events += len(batch)
            raise
        finally:
            self._inflight = 0

    async def _attempts(self, batch: list[dict[str, Any]]) -> None:
        assert self._client is not None, "webhook sink used before open()"
        cfg = self.cfg
        body = orjson.dumps({"events": batch})
        msg_id = f"msg_{uuid.uuid4().hex}"
        start = time.monotonic()
        deadline = start + cfg.retry_budget_s
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            retry_after: float | None = None
            try:
                resp = await self._client.post(
                    cfg.url.get_secret_value(),
                    content=body,
                    headers=self._headers(msg_id, body),
                    timeout=max(0.001, min(cfg.timeout_s, remaining)),
                )
            except httpx.HTTPError as exc:  # its text may quote the URL: scrubbed
                reason = f"{type(exc).__name__}: {cfg.url.scrub(str(exc))}" if str(exc) else type(exc).__name__
            else:
                status = resp.status_code
                self.last_status = status
                if 200 <= status < 300:
                    self.sent_batches += 1
                    self.sent_events += len(batch)
                    self.delivered_events += len(batch)
                    self.health_error = None
                    return
                if status == 410:
                    self.disabled = True
                    self.failed_batches += 1
                    self.dropped_events += len(batch) + len(self._pending)
                    self._pending.clear()
                    self.health_error = GONE_MESSAGE
                    log.error("webhook %s: %s", cfg.url, GONE_MESSAGE)
                    return
                reason = f"HTTP {status}"
                if status != 429 and status < 500:
                    self._drop(batch, f"endpoint returned HTTP {status}")
                    return
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
            if attempt >= cfg.retry_max_attempts:
                self._drop(batch, f"delivery failed after {attempt} attempts ({reason})")
                return
            if retry_after is not None:
                wait = retry_after
            else:
                wait = random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (attempt - 1)))
            if time.monotonic() + wait >= deadline:
                self._drop(
                    batch,
                    f"retry budget of {cfg.retry_budget_s:g}s exhausted after {attempt} attempts ({reason})",
                )
                return
            self.retries += 1
            self.health_error = f"delivery failing ({reason}); retrying (attempt {attempt + 1})"
            await anyio.sleep(wait)
