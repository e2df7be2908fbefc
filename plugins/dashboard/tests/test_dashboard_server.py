"""The dashboard sink over real sockets on 127.0.0.1: routes, the event stream, telemetry on the
same port, the token, a port in use, a page that stops reading, and a hundred pages."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from datetime import datetime, timezone
from typing import Any

import anyio
import httpx
import orjson
import pytest

from aggcore.errors import ConfigError
from aggcore.models import PriceLevel, Summary
from aggcore.plugins import load_plugins
from aggcore.sink import Event
from aggcore.testing import wait_until
from aggcore_plugin_dashboard import DashboardConfig, DashboardSink

pytestmark = pytest.mark.anyio


def _summary(pair: str, mid: float, levels: int = 5) -> Event:
    now = datetime.now(timezone.utc)
    bids = [PriceLevel(mid - 1 - i, 1.0 + i, ("binance", "kraken")[i % 2], now) for i in range(levels)]
    asks = [PriceLevel(mid + 1 + i, 2.0 + i, ("kraken", "binance")[i % 2], now) for i in range(levels)]
    payload = Summary(
        symbol=pair, mid=mid, spread=2.0, best_bid=mid - 1, best_ask=mid + 1, venues=["binance", "kraken"],
        venue_age_ms={"binance": 1.0, "kraken": 2.0}, bids=bids, asks=asks, timestamp=now,
    )  # fmt: skip
    return Event("summary", payload)


async def _sink(**config: Any) -> DashboardSink:
    sink = DashboardSink(DashboardConfig(port=0, **config))
    await sink.open()
    return sink


async def _read_events(url: str, want: set[str], timeout: float = 10.0, **kw: Any) -> dict[str, list[Any]]:
    """Read the SSE stream until every event name in ``want`` was seen."""
    seen: dict[str, list[Any]] = {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        with anyio.fail_after(timeout):
            async with client.stream("GET", url, **kw) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                name = None
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        seen.setdefault(name, []).append(orjson.loads(line[6:]))
                        if want <= set(seen):
                            return seen
    return seen


async def test_routes_stream_and_telemetry_of_a_running_aggregator(aggregator_factory: Any, fake_exchange: Any) -> None:
    fake = await fake_exchange("binance", symbols=["BTCUSDT"], seed=3)
    agg = await aggregator_factory(
        {
            "exchanges": {"binance": fake.connector_config(trading_pairs=["BTC/USDT"])},
            "monitoring": {"health_check_interval_ms": 200},
            "sinks": {"dashboard": {"port": 0}},
        }
    )
    sink = agg.hub.sinks[0].sink
    assert isinstance(sink, DashboardSink)
    base = f"http://127.0.0.1:{sink.port}"
    await wait_until(lambda: "BTC/USDT" in sink.state.summaries and "binance" in sink.state.metrics, timeout=10)
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'src="static/app.js"' in page.text
        for asset in ("/static/app.js", "/static/style.css"):
            assert (await client.get(asset)).status_code == 200
        state = (await client.get("/state")).json()
        summary = state["summaries"]["BTC/USDT"]
        assert summary["bids"] and summary["asks"] and summary["venues"] == ["binance"]
        assert state["health"]["binance"]["state"] == "LIVE"
        # the operator's endpoints on the same port, from aggcore's telemetry
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "aggcore_messages" in metrics.text
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        # read-only
        assert (await client.post("/state")).status_code == 405
    seen = await _read_events(base + "/events", {"hello", "summary", "health", "metrics", "history"})
    assert seen["summary"][0]["symbol"] == "BTC/USDT"
    assert seen["health"][0]["exchange"] == "binance"


async def test_token_protects_the_data_routes() -> None:
    sink = await _sink(token="s3cret")
    try:
        sink.state.apply([_summary("BTC/USDT", 100.0)])
        base = f"http://127.0.0.1:{sink.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            assert (await client.get("/state")).status_code == 401
            assert (await client.get("/state?token=wrong")).status_code == 401
            assert (await client.get("/state?token=s3cret")).status_code == 200
            assert (await client.get("/state", headers={"Authorization": "Bearer s3cret"})).status_code == 200
            assert (await client.get("/events")).status_code == 401
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/readyz")).status_code == 401
            # the probe and the page's code hold no data: no token
            assert (await client.get("/healthz")).status_code in (200, 503)
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/static/app.js")).status_code == 200
        seen = await _read_events(base + "/events?token=s3cret", {"hello", "summary"})
        assert seen["summary"][0]["symbol"] == "BTC/USDT"
        assert "s3cret" not in repr(sink.cfg)
    finally:
        await sink.close()


async def test_a_port_in_use_fails_start_naming_host_and_port(aggregator_factory: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{port}: address already in use"):
            await aggregator_factory({"exchanges": {}, "sinks": {"dashboard": {"port": port}}})


def test_cli_dashboard_flag_port_in_use_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("exchanges:\n  binance:\n    trading_pairs: [BTC/USDT]\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "aggcore.cli", "run", str(config), "--simulate", "--dashboard", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in proc.stderr


def test_cli_dashboard_flag_adds_the_sink() -> None:
    from aggcore.cli import with_dashboard
    from aggcore.config import load_config

    registry = load_plugins()
    config = load_config({"exchanges": {}, "sinks": {"dashboard": {"depth": 5}}}, registry=registry)
    out = with_dashboard(config, registry, "9123")
    section = out.sinks["dashboard"]
    assert isinstance(section, DashboardConfig)
    assert (section.host, section.port, section.depth) == ("127.0.0.1", 9123, 5)
    assert with_dashboard(config, registry, "0.0.0.0:80").sinks["dashboard"].port == 80  # type: ignore[attr-defined]
    assert with_dashboard(config, registry, "[::1]:81").sinks["dashboard"].host == "::1"  # type: ignore[attr-defined]
    for bad in ("http", "host:", "1:99999"):
        with pytest.raises(ConfigError, match=r"--dashboard .*\[HOST:\]PORT"):
            with_dashboard(config, registry, bad)


def _stalled_client(port: int) -> socket.socket:
    """A page that opens the stream and then reads nothing (a tiny receive window)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


async def _flood(sink: DashboardSink, until: Any, timeout: float) -> None:
    """Publish large summaries of several pairs until ``until()`` holds."""
    mid = 100.0
    with anyio.fail_after(timeout):
        while not until():
            mid += 0.5
            await sink.write([_summary(f"P{i}/USD", mid + i, levels=100) for i in range(5)])
            await anyio.sleep(0.01)


async def test_a_page_that_stops_reading_is_dropped_and_others_go_on() -> None:
    sink = await _sink(push_interval_ms=10, send_timeout_s=1.0, depth=100)
    assert sink.server is not None
    server = sink.server
    try:
        stalled = _stalled_client(sink.port or 0)
        received = 0

        async def reader() -> None:
            nonlocal received
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("GET", f"http://127.0.0.1:{sink.port}/events") as resp:
                    async for chunk in resp.aiter_bytes():
                        received += len(chunk)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await wait_until(lambda: server.clients == 2, timeout=5)
            await _flood(sink, lambda: server.dropped_clients >= 1, timeout=30)
            await wait_until(lambda: server.clients == 1, timeout=5)  # the reading page is still served
            before = received
            await _flood(sink, lambda: received > before + 100_000, timeout=10)
            tg.cancel_scope.cancel()
        # the server closed the stalled page's connection (what the kernel still buffers, then EOF)
        stalled.settimeout(5)
        while stalled.recv(1 << 20):
            pass
        stalled.close()
    finally:
        await sink.close()


async def test_a_hundred_pages_cost_bounded_memory() -> None:
    sink = await _sink(push_interval_ms=50, send_timeout_s=1.0, depth=100, max_clients=100)
    assert sink.server is not None
    server = sink.server
    clients: list[socket.socket] = []
    try:
        sink.state.apply([_summary(f"P{i}/USD", 100.0 + i, levels=100) for i in range(5)])
        gc.collect()
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(100):
            clients.append(_stalled_client(sink.port or 0))
        await wait_until(lambda: server.clients == 100, timeout=20)
        # the 101st page is refused, not queued
        async with httpx.AsyncClient(timeout=5) as client:
            extra = await client.get(f"http://127.0.0.1:{sink.port}/events")
        assert extra.status_code == 503 and "max_clients 100" in extra.text
        # every page stops reading while the market moves: all are dropped, memory stays bounded
        await _flood(sink, lambda: server.dropped_clients >= 100, timeout=60)
        _, peak = tracemalloc.get_traced_memory()
        await wait_until(lambda: server.clients == 0, timeout=5)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # at most ~ one transport buffer (64 KiB) plus one push (~30 KiB) per page while they were open
        assert peak - base < 100 * 200_000, f"peak {peak - base} bytes above the baseline"
        assert after - base < 5_000_000, f"{after - base} bytes still held after every page was dropped"
    finally:
        for c in clients:
            c.close()
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        await sink.close()


async def test_a_non_loopback_address_without_a_token_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        caplog.clear()
        sink = DashboardSink(DashboardConfig(host=host, port=0))
        await sink.open()
        await sink.close()
        assert ("not meant to face the internet" in caplog.text) is warned, host
