"""Webhook signatures verify with the official Standard Webhooks library (``standardwebhooks``),
for ``whsec_`` secrets (``Webhook(secret)``) and plain ones (``Webhook(secret.encode())``:
the library base64-decodes any string it is given)."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from aggcore.builtins.sinks.webhook import WebhookSink, WebhookSinkConfig
from aggcore.models import Summary
from aggcore.sink import Event

pytestmark = pytest.mark.anyio


async def received(secret: str) -> tuple[dict[str, str], bytes]:
    """One real POST from the sink to a receiver on 127.0.0.1: its headers and raw body."""
    got: asyncio.Future[tuple[dict[str, str], bytes]] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        if not got.done():
            got.set_result((headers, body))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = WebhookSink(WebhookSinkConfig.model_validate({"url": f"http://127.0.0.1:{port}/hook", "secret": secret, "batch_max_events": 1}))
    await sink.open()
    try:
        summary = Summary(symbol="BTC/USD", spread=1.0, bids=[], asks=[], timestamp=datetime.now(timezone.utc))
        await sink.write([Event("summary", summary)])
        return await asyncio.wait_for(got, 10)
    finally:
        await sink.close()
        server.close()


async def test_a_whsec_secret_verifies_with_the_official_library() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    headers, body = await received(secret)
    payload = Webhook(secret).verify(body, headers)
    assert payload["events"][0]["data"]["symbol"] == "BTC/USD"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"BTC", b"ETH"), headers)


async def test_a_plain_secret_verifies_with_the_official_library_given_its_bytes() -> None:
    secret = "correct horse battery staple"
    headers, body = await received(secret)
    assert Webhook(secret.encode()).verify(body, headers)["events"]  # the documented way
    with pytest.raises(WebhookVerificationError):
        Webhook(secret.encode() + b"x").verify(body, headers)
