"""Every event is delivered or counted, per sink: produced = delivered + dropped (+ in flight).

A real Aggregator runs against the in-process toy exchange over sockets, with sinks that fail
in every way the runtime must account for: a write that raises, a sink stuck forever (its
buffer overflows, then the shutdown deadline cuts it), a webhook whose receiver answers 429
(batches retried past their budget), a webhook whose receiver hangs (requests time out and
are retried with the same ``webhook-id``), next to a healthy file sink. The equation is checked
from the runner's counters, from health, from a Prometheus scrape while running, and after stop.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from aggcore import Aggregator
from aggcore.builtins.sinks.webhook import WebhookSink
from aggcore.fanout import SinkRunner
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event, Sink, SinkConfig
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy

pytestmark = pytest.mark.anyio

DEADLINE = 0.6


def registry() -> PluginRegistry:
    builtins = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.")]
    toy = EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")
    return load_plugins(entry_points=[*builtins, toy], disabled=())


class Receiver:
    """An HTTP/1.1 receiver on 127.0.0.1: ``mode`` is ``429`` (always Too Many Requests) or
    ``hang`` (reads the request, never answers). Records the ``webhook-id`` of every request."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.ids: list[str] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "Receiver":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        if hasattr(self._server, "close_clients"):
            self._server.close_clients()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.ids.append(headers["webhook-id"])
                if self.mode == "hang":
                    await asyncio.sleep(3600)
                writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0.05\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


class FlakySink(Sink):
    """Every other write raises (a full disk, say): those batches are lost and must be counted."""

    name = "flaky"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.calls = 0
        self.received = 0

    async def write(self, events: Sequence[Event]) -> None:
        self.calls += 1
        await anyio.sleep(0.01)
        if self.calls % 2:
            raise OSError(28, "No space left on device")
        self.received += len(events)


class StuckSink(Sink):
    name = "stuck"

    async def write(self, events: Sequence[Event]) -> None:
        await anyio.sleep_forever()


def balanced(runner: SinkRunner) -> bool:
    return runner.produced == runner.delivered + runner.total_dropped + runner.in_flight


def scrape_equation(text: str, sink: str) -> tuple[float, float, float, float]:
    def value(pattern: str) -> float:
        total = 0.0
        for m in re.finditer(pattern + r" ([0-9.e+]+)", text):
            total += float(m.group(1))
        return total

    produced = value(rf'aggcore_sink_events_total\{{outcome="produced",sink="{sink}"\}}')
    delivered = value(rf'aggcore_sink_events_total\{{outcome="delivered",sink="{sink}"\}}')
    dropped = value(rf'aggcore_sink_dropped_total\{{reason="[a-z_]+",sink="{sink}"\}}')
    in_flight = value(rf'aggcore_sink_in_flight\{{sink="{sink}"\}}')
    return produced, delivered, dropped, in_flight


async def test_produced_equals_delivered_plus_counted_drops_for_every_failing_sink(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    async with FakeToy(seed=21, rate_hz=200) as fake, Receiver("429") as receiver:
        flaky = FlakySink(SinkConfig(events=["summary", "health"]))
        stuck = StuckSink(SinkConfig(buffer_size=25, events=["summary", "health"]))
        cfg: dict[str, Any] = {
            "exchanges": {"toy": fake.connector_config(stale_after_s=5)},
            "monitoring": {"health_check_interval_ms": 100, "metrics": {"prometheus": {"enabled": True, "port": 0}}},
            "sinks": {
                "file": {"path": str(out), "events": ["summary", "health"]},
                "webhook": {
                    "url": receiver.url, "events": ["summary", "health"], "batch_max_events": 20,
                    "batch_max_delay_ms": 20, "timeout_s": 1, "retry_budget_s": 0.25, "retry_max_attempts": 50,
                    "buffer_size": 200,
                },
            },
        }  # fmt: skip
        agg = Aggregator(cfg, registry=registry(), sinks=[flaky, stuck])
        await agg.start()
        try:
            runners = {r.name: r for r in agg.hub.sinks}
            await wait_until(
                lambda: runners["flaky"].drops["write_error"] > 0
                and runners["stuck"].drops["buffer_full"] > 0
                and agg.hub.sinks[1].sink.dropped_events > 0,
                timeout=15,
                what="every failure mode seen",
            )
            for runner in runners.values():
                assert balanced(runner), (runner.name, runner.accounting())
            health = agg.get_all_health_statuses()
            assert "write_error" not in (health["sink:flaky"].error_message or "")  # worded for people:
            assert "write error" in (health["sink:flaky"].error_message or "")
            assert "buffer full" in (health["sink:stuck"].error_message or "")
            assert "sink " in (health["sink:webhook"].error_message or "")  # dropped by the sink (budget)
            assert "429" in (health["sink:webhook"].error_message or "")
            assert health["sink:file"].is_healthy
            for name in ("flaky", "stuck", "webhook", "file"):  # the equation, in health too
                ev = health[f"sink:{name}"].events
                assert ev["produced"] == ev["delivered"] + ev["dropped"] + ev["in_flight"], (name, ev)
                assert ev["dropped"] == sum(v for k, v in ev.items() if k.startswith("dropped_"))
            assert health["sink:flaky"].events["dropped_write_error"] > 0
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{agg.metrics_port}/metrics")).text
            for name in ("flaky", "stuck", "webhook", "file"):
                produced, delivered, dropped, in_flight = scrape_equation(text, name)
                assert produced > 0 and produced == delivered + dropped + in_flight, (name, produced, delivered, dropped, in_flight)
            assert 'aggcore_sink_dropped_total{reason="write_error",sink="flaky"}' in text
        finally:
            await agg.stop(flush_deadline_s=DEADLINE)
        for runner in runners.values():
            assert runner.in_flight == 0 and balanced(runner), (runner.name, runner.accounting())
            assert runner.produced > 0
        stuck_runner = runners["stuck"]
        assert stuck_runner.drops["shutdown"] > 25  # its full buffer and the write it hangs in, cut by the deadline
        assert stuck_runner.delivered == 0
        assert runners["flaky"].delivered == flaky.received > 0
        assert runners["file"].total_dropped == 0  # nothing is produced for sinks once stop() began
        assert runners["file"].delivered == out.read_bytes().count(b"\n") == runners["file"].produced
        assert runners["webhook"].delivered == 0 and runners["webhook"].sink.dropped_events > 0


async def test_hanging_receiver_duplicates_bounded_by_attempts_and_everything_counted() -> None:
    async with FakeToy(seed=22, rate_hz=200) as fake, Receiver("hang") as receiver:
        webhook = WebhookSink(
            WebhookSink.Config.model_validate(
                {
                    "url": receiver.url, "events": ["summary", "health"], "batch_max_events": 10,
                    "batch_max_delay_ms": 20, "timeout_s": 0.1, "retry_budget_s": 5, "retry_max_attempts": 3,
                    "backoff_initial_s": 0.01, "backoff_max_s": 0.02, "buffer_size": 50,
                }
            )
        )  # fmt: skip
        cfg = {"exchanges": {"toy": fake.connector_config(stale_after_s=5)}, "monitoring": {"health_check_interval_ms": 100}}
        agg = Aggregator(cfg, registry=registry(), sinks=[webhook])
        await agg.start()
        runner = agg.hub.sinks[0]
        try:
            await wait_until(lambda: webhook.failed_batches >= 2, timeout=15, what="batches given up")
            assert balanced(runner), runner.accounting()
        finally:
            await agg.stop(flush_deadline_s=DEADLINE)
        assert runner.in_flight == 0 and balanced(runner), runner.accounting()
        assert runner.delivered == 0 and runner.total_dropped == runner.produced > 0
        # a timed-out request may have reached the receiver: retried with the same webhook-id,
        # each batch at most retry_max_attempts times
        per_id = Counter(receiver.ids)
        assert per_id and max(per_id.values()) <= 3
        assert any(n > 1 for n in per_id.values())


class HalfSink(Sink):
    """Writes the first 3 events of every batch, then fails (SinkError says how many got out)."""

    name = "half"

    async def write(self, events: Sequence[Event]) -> None:
        from aggcore.errors import SinkError

        if len(events) > 3:
            raise SinkError("disk full after 3 events", delivered=3)


async def test_a_write_failing_partway_counts_its_first_events_as_delivered() -> None:
    from aggcore.models import Metrics

    runner = SinkRunner(HalfSink(SinkConfig(events=["metrics"])))
    m = Metrics(exchange="x", symbol="A/B", updates_per_second=0, latency_ms=0, error_count=0, last_update=None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        for _ in range(5):
            runner.put(Event("metrics", m))
        await wait_until(lambda: runner.errors == 1)
        assert runner.delivered == 3 and runner.drops["write_error"] == 2 and balanced(runner)
        tg.cancel_scope.cancel()
    assert runner.finish() == 0 and runner.produced == 5
