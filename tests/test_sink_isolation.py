"""A sink that blocks forever never delays books or other sinks, and never holds up stop().

A real Aggregator runs against the in-process toy exchange over sockets, with a sink that
never returns from ``write`` next to the built-in ``file`` sink (configured by name, as a user
would) and a collecting sink.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import anyio
import pytest

from aggcore import Aggregator
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event, Sink, SinkConfig
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy

pytestmark = pytest.mark.anyio

FLUSH_DEADLINE = 0.5


def registry() -> PluginRegistry:
    builtins = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.")]
    toy = EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")
    return load_plugins(entry_points=[*builtins, toy], disabled=())


def config(fake: FakeToy, out: Path) -> dict[str, Any]:
    return {
        "exchanges": {"toy": fake.connector_config(stale_after_s=5, reconnect_min_s=0.05)},
        "aggregation": {"max_price_levels": 5},
        "monitoring": {"health_check_interval_ms": 100},
        "sinks": {"file": {"path": str(out), "events": ["summary", "health"]}},
    }


class BlockingSink(Sink):
    name = "blocking"

    def __init__(self, config: SinkConfig, *, block_close: bool = False) -> None:
        super().__init__(config)
        self.block_close = block_close
        self.calls = 0

    async def write(self, events: Sequence[Event]) -> None:
        self.calls += 1
        await anyio.sleep_forever()

    async def close(self) -> None:
        if self.block_close:
            await anyio.sleep_forever()


class CollectingSink(Sink):
    name = "collecting"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.events: list[Event] = []
        self.closed = False

    async def write(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def close(self) -> None:
        self.closed = True


def file_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def test_a_sink_blocked_forever_isolated_counted_and_stop_is_bounded(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    async with FakeToy(seed=11, rate_hz=200) as fake:
        blocking = BlockingSink(SinkConfig(buffer_size=20, events=["summary", "arbitrage", "health"]))
        collecting = CollectingSink(SinkConfig(events=["summary", "health"]))
        agg = Aggregator(config(fake, out), registry=registry(), sinks=[blocking, collecting])
        await agg.start()
        try:
            book = None
            await wait_until(lambda: len(collecting.events) > 30, timeout=10, what="events reach the collecting sink")
            await wait_until(lambda: file_lines(out) > 10, timeout=5, what="events reach the file sink")
            assert blocking.calls == 1  # stuck in its first write

            # while it stays blocked: books keep updating, the other sinks keep receiving
            book = agg.connectors["toy"].books["BTCUSDT"]
            seen, lines, msgs = len(collecting.events), file_lines(out), book.messages
            await anyio.sleep(0.5)
            assert book.messages > msgs
            assert len(collecting.events) > seen and file_lines(out) > lines
            assert book.live

            # drops are counted, and health says so
            runner = next(r for r in agg.hub.sinks if r.name == "blocking")
            assert runner.dropped > 0 and len(runner.buffer) == 20
            health = agg.get_all_health_statuses()
            assert not health["sink:blocking"].is_healthy
            assert "dropped" in (health["sink:blocking"].error_message or "")
            assert health["sink:file"].is_healthy and health["sink:collecting"].is_healthy
            assert health["toy"].is_healthy
        finally:
            t0 = time.monotonic()
            await agg.stop(flush_deadline_s=FLUSH_DEADLINE)  # not under fail_after: start()'s task group is outside it
            elapsed = time.monotonic() - t0
        assert elapsed < FLUSH_DEADLINE + 0.4, f"stop() took {elapsed:.2f}s with a {FLUSH_DEADLINE}s flush deadline"
        assert collecting.closed
        # the file sink was flushed and closed: every line is complete JSON
        data = out.read_bytes()
        assert data.endswith(b"\n")
        kinds = {json.loads(line)["kind"] for line in data.splitlines()}
        assert kinds == {"summary", "health"}


async def test_stop_is_bounded_by_one_deadline_with_several_stuck_sinks(tmp_path: Path) -> None:
    async with FakeToy(seed=12, rate_hz=100) as fake:
        stuck = [BlockingSink(SinkConfig(buffer_size=5, events=["summary", "health"]), block_close=True) for _ in range(2)]
        stuck[1].name = "blocking2"  # type: ignore[misc]
        agg = Aggregator(config(fake, tmp_path / "e.jsonl"), registry=registry(), sinks=list(stuck))
        await agg.start()
        await wait_until(lambda: all(s.calls == 1 for s in stuck), timeout=10, what="both sinks stuck")
        await anyio.sleep(0.2)
        t0 = time.monotonic()
        await agg.stop(flush_deadline_s=FLUSH_DEADLINE)
        elapsed = time.monotonic() - t0
        assert elapsed < FLUSH_DEADLINE + 0.4, f"stop() took {elapsed:.2f}s with a {FLUSH_DEADLINE}s flush deadline"


class FlakySink(Sink):
    name = "flaky"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.calls = 0

    async def write(self, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk full")


async def test_a_write_error_is_counted_and_clears_after_a_success() -> None:
    from aggcore.fanout import SinkRunner
    from aggcore.models import Metrics

    runner = SinkRunner(FlakySink(SinkConfig(events=["metrics"])))
    m = Metrics(exchange="x", symbol="A/B", updates_per_second=0, latency_ms=0, error_count=0, last_update=None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        runner.put(Event("metrics", m))
        await wait_until(lambda: runner.errors == 1)
        assert "disk full" in (runner.health_error or "")
        runner.put(Event("metrics", m))
        await wait_until(lambda: runner.written == 1)
        assert runner.health_error is None and runner.errors == 1
        tg.cancel_scope.cancel()
