"""The webhook sink against a real HTTP server on 127.0.0.1 (asyncio streams, scripted replies)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from aggcore import Aggregator
from aggcore.builtins.sinks.webhook import GONE_MESSAGE, WebhookSink, WebhookSinkConfig, parse_retry_after
from aggcore.config import AppConfig
from aggcore.log import setup_logging
from aggcore.models import ArbitrageOpportunity, Summary
from aggcore.sink import Event
from aggcore.testing.pytest_plugin import wait_until

pytestmark = pytest.mark.anyio


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A minimal HTTP/1.1 server: records requests, answers from ``script`` (then ``default``)."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "Server":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Request(method, path, headers, body, time.monotonic()))
                status, extra = self.script.pop(0) if self.script else self.default
                reply = b"ok" if status < 300 else b"nope"
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(reply)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(head.encode() + b"\r\n" + reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def summary_event(i: int = 0) -> Event:
    now = datetime.now(timezone.utc)
    return Event("summary", Summary(symbol="BTC/USDT", spread=0.5 + i, bids=[], asks=[], timestamp=now, venues=["a", "b"]))


def arb_event() -> Event:
    return Event(
        "arbitrage",
        ArbitrageOpportunity(
            buy_exchange="okx", sell_exchange="kraken", symbol="BTC/USDT", buy_price=60000.5,
            sell_price=60100, profit_percentage=0.12, volume=0.35, timestamp=datetime.now(timezone.utc),
        ),
    )  # fmt: skip


def make(url: str, **kw: Any) -> WebhookSink:
    settings: dict[str, Any] = {
        "url": url, "batch_max_events": 3, "batch_max_delay_ms": 50, "timeout_s": 1,
        "backoff_initial_s": 0.02, "backoff_max_s": 0.1, "retry_budget_s": 2, "retry_max_attempts": 5,
    }  # fmt: skip
    settings.update(kw)
    return WebhookSink(WebhookSinkConfig.model_validate(settings))


async def test_batches_by_size_and_by_delay() -> None:
    async with Server() as srv:
        sink = make(srv.url)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])  # a full batch: posted at once
            assert len(srv.requests) == 1
            await sink.write([arb_event()])  # a partial batch: posted after the delay
            t0 = time.monotonic()
            await wait_until(lambda: len(srv.requests) == 2, what="delayed batch")
            assert time.monotonic() - t0 >= 0.03
        finally:
            await sink.close()
        first, second = srv.requests
        assert first.method == "POST" and first.path == "/hook"
        assert first.headers["content-type"] == "application/json"
        assert [e["kind"] for e in first.json()["events"]] == ["summary"] * 3
        assert first.json()["events"][0]["data"]["symbol"] == "BTC/USDT"
        assert second.json()["events"][0]["data"]["sell_exchange"] == "kraken"
        assert first.headers["webhook-id"].startswith("msg_") and first.headers["webhook-id"] != second.headers["webhook-id"]
        assert "webhook-signature" not in first.headers  # no secret: unsigned
        assert sink.sent_batches == 2 and sink.sent_events == 4 and sink.health_error is None


async def test_close_flushes_pending_events() -> None:
    async with Server() as srv:
        sink = make(srv.url, batch_max_delay_ms=60_000)
        await sink.open()
        await sink.write([summary_event()])
        assert srv.requests == []
        await sink.close()
        assert len(srv.requests) == 1 and len(srv.requests[0].json()["events"]) == 1


async def test_500_then_success_is_retried_with_the_same_id() -> None:
    async with Server(script=[(500, {}), (503, {})]) as srv:
        sink = make(srv.url)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
        assert len(srv.requests) == 3
        assert len({r.body for r in srv.requests}) == 1
        assert len({r.headers["webhook-id"] for r in srv.requests}) == 1  # same message, retried
        assert sink.sent_batches == 1 and sink.retries == 2 and sink.failed_batches == 0
        assert sink.health_error is None  # cleared after the success


async def test_429_retry_after_is_honoured() -> None:
    async with Server(script=[(429, {"Retry-After": "1"})]) as srv:
        sink = make(srv.url, backoff_initial_s=0.01, backoff_max_s=0.01, retry_budget_s=5)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
        assert len(srv.requests) == 2
        waited = srv.requests[1].at - srv.requests[0].at
        assert 0.9 <= waited < 3, waited  # the backoff alone would have been <= 10 ms
        assert sink.sent_batches == 1


async def test_429_retry_after_beyond_the_budget_drops_at_once() -> None:
    async with Server(script=[(429, {"Retry-After": "30"})]) as srv:
        sink = make(srv.url, retry_budget_s=1)
        await sink.open()
        t0 = time.monotonic()
        try:
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
        assert time.monotonic() - t0 < 0.5
        assert sink.failed_batches == 1 and sink.dropped_events == 3
        assert "budget" in (sink.health_error or "") and "HTTP 429" in (sink.health_error or "")


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


async def test_410_disables_the_endpoint() -> None:
    async with Server(script=[(410, {})]) as srv:
        sink = make(srv.url)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
            assert sink.disabled and sink.health_error == GONE_MESSAGE
            await sink.write([summary_event(i) for i in range(5)])
            await anyio.sleep(0.15)
        finally:
            await sink.close()
        assert len(srv.requests) == 1  # nothing is sent after 410
        assert sink.dropped_events == 8 and sink.health_error == GONE_MESSAGE


async def test_other_4xx_drops_the_batch_and_goes_on() -> None:
    async with Server(script=[(400, {})]) as srv:
        sink = make(srv.url)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
            assert sink.failed_batches == 1 and "HTTP 400" in (sink.health_error or "")
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
        assert len(srv.requests) == 2 and sink.sent_batches == 1 and sink.health_error is None


async def test_server_down_exhausts_the_budget_and_counts() -> None:
    async with Server() as srv:
        url = srv.url
    # the port is closed now: connection refused
    sink = make(url, retry_budget_s=0.5, retry_max_attempts=100, backoff_initial_s=0.05, backoff_max_s=0.1)
    await sink.open()
    t0 = time.monotonic()
    try:
        await sink.write([summary_event(i) for i in range(3)])
        elapsed = time.monotonic() - t0
        assert 0.05 < elapsed < 1.5, elapsed
        assert sink.failed_batches == 1 and sink.dropped_events == 3 and sink.retries >= 1
        assert "ConnectError" in (sink.health_error or "") and "dropped" in (sink.health_error or "")
    finally:
        await sink.close()


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """An independent implementation of the Standard Webhooks check (what a receiver writes)."""
    msg_id, ts, sigs = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if abs(time.time() - int(ts)) > tolerance_s:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode("utf-8")
    expected = base64.b64encode(hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).digest())
    for item in sigs.split(" "):
        version, _, sig = item.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwDJ+z", "plain secret"])
async def test_signature_verifies_with_an_independent_implementation(secret: str) -> None:
    async with Server(script=[(500, {})]) as srv:
        sink = make(srv.url, secret=secret)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
        assert len(srv.requests) == 2
        for req in srv.requests:
            assert verify_standard_webhook(secret, req.headers, req.body)
            assert not verify_standard_webhook(secret, req.headers, req.body + b" ")
            wrong = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode() if secret.startswith("whsec_") else secret + "x"
            assert not verify_standard_webhook(wrong, req.headers, req.body)
        assert secret not in repr(sink.cfg)  # SecretStr: never shown


def test_a_malformed_whsec_secret_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        WebhookSinkConfig.model_validate({"url": "http://x", "secret": "whsec_not base64!"})


def test_signature_matches_the_spec_example_shape() -> None:
    """A fixed vector: HMAC-SHA256 over id.timestamp.body with the decoded whsec_ key."""
    from aggcore.builtins.sinks.webhook import sign, signing_key

    key = signing_key("whsec_" + base64.b64encode(b"k" * 24).decode())
    assert key == b"k" * 24
    body = b'{"events":[]}'
    mac = hmac.new(b"k" * 24, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(key, "msg_1", 1700000000, body) == "v1," + base64.b64encode(mac).decode()


async def test_the_documented_receiver_snippet_verifies_real_requests() -> None:
    """docs/webhooks.md's verify() accepts what the sink sends and rejects tampering."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "webhooks.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    verify = namespace["verify"]
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
    async with Server() as srv:
        sink = make(srv.url, secret=secret)
        await sink.open()
        try:
            await sink.write([summary_event(i) for i in range(3)])
        finally:
            await sink.close()
    (req,) = srv.requests
    assert verify(secret, req.headers, req.body)
    assert not verify(secret, req.headers, req.body.replace(b"BTC", b"ETH"))


async def test_close_cut_by_the_shutdown_deadline_counts_what_is_lost() -> None:
    async with Server() as srv:
        url = srv.url
    sink = make(url, retry_budget_s=30, retry_max_attempts=1000, batch_max_delay_ms=60_000)
    await sink.open()
    await sink.write([summary_event(0), summary_event(1)])
    t0 = time.monotonic()
    with anyio.move_on_after(0.3):  # the runtime's shutdown deadline
        await sink.close()
    assert time.monotonic() - t0 < 1.5
    assert sink.dropped_events == 2 and sink._client is None  # counted, client closed anyway
    await sink.write([summary_event(2)])  # after close: dropped, counted
    assert sink.dropped_events == 3


# -- credentials in the URL (SecretUrl) ------------------------------------------------------------------

PASSWORD = "hunter2-Pa55word"
TOKEN = "tok_9f8e7d6c5b4a39281706"
PATH_TOKEN = "Xq3vB8nT2kL9mP4wR7yZ1cD5"


def secret_parts_absent(text: str) -> bool:
    return all(s not in text for s in (PASSWORD, TOKEN, PATH_TOKEN))


async def _fail_against(url: str, **kw: Any) -> tuple[Any, str]:
    stream = io.StringIO()
    setup_logging("DEBUG", "human", stream=stream)  # DEBUG: httpx logs every request URL too
    sink = make(url, retry_budget_s=0.3, retry_max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.01, **kw)
    await sink.open()
    try:
        await sink.write([summary_event(i) for i in range(3)])
        logging.getLogger("thirdparty").error("client said: cannot reach %s", url)
        try:
            raise RuntimeError(f"boom at {url}")
        except RuntimeError:
            logging.getLogger("thirdparty").exception("with traceback")
    finally:
        await sink.close()
        setup_logging("INFO", "human")
    return sink, stream.getvalue()


async def test_webhook_url_credentials_never_logged_or_in_health() -> None:
    async with Server(default=(500, {})) as srv:
        url = f"http://bob:{PASSWORD}@127.0.0.1:{srv.port}/hook/{PATH_TOKEN}?token={TOKEN}"
        sink, logs = await _fail_against(url)
        # the credentials were used on the wire ...
        assert srv.requests, "no request reached the server"
        req = srv.requests[0]
        assert req.path == f"/hook/{PATH_TOKEN}?token={TOKEN}"
        assert base64.b64decode(req.headers["authorization"].split()[1]).decode() == f"bob:{PASSWORD}"
    # ... and shown nowhere
    assert sink.failed_batches == 1 and sink.dropped_events == 3
    assert "webhook http://bob:***@127.0.0.1" in logs and "HTTP Request" in logs and "boom at" in logs
    assert secret_parts_absent(logs), logs
    assert secret_parts_absent(repr(sink.cfg)) and secret_parts_absent(sink.cfg.model_dump_json())
    config = AppConfig.model_validate({"sinks": {}, "analyzers": {}})
    agg = Aggregator(config, sinks=[sink])
    health = agg.get_all_health_statuses()["sink:webhook"]
    assert health.error_message and secret_parts_absent(health.to_json().decode())


async def test_webhook_network_error_text_is_scrubbed() -> None:
    async with Server() as srv:
        port = srv.port
    url = f"http://bob:{PASSWORD}@127.0.0.1:{port}/hook?token={TOKEN}"  # the port is closed now
    sink, logs = await _fail_against(url)
    assert "ConnectError" in (sink.health_error or "")
    assert secret_parts_absent(sink.health_error or "") and secret_parts_absent(logs), logs
