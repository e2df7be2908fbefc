"""The redis sink against a real redis-server on 127.0.0.1 (started per test, kill -9 restarts included)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import msgspec
import orjson
import pytest
import redis.asyncio as aioredis

from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.fanout import SinkRunner
from aggcore.plugins import load_plugins
from aggcore.models import ArbitrageOpportunity
from aggcore.testing.events import event_seq, json_field_gaps, payload_type, sample_books, sample_events, sample_metrics, unset_fields
from aggcore.testing.services import RedisServer, free_port, redis_server, write_through_restart
from aggcore_plugin_redis import RedisSink, RedisSinkConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(server.url)
    yield c
    await c.aclose()


def make(url: str, **kw: Any) -> RedisSink:
    cfg = {"url": url, "events": ["summary", "arbitrage", "health"], "batch_max_delay_ms": 5, "backoff_max_s": 0.3, **kw}
    return RedisSink(RedisSinkConfig.model_validate(cfg))


async def test_latest_state_keys_and_streams(server: RedisServer, client: aioredis.Redis) -> None:
    events = sample_events(400)
    sink = make(server.url, key_ttl_s=600)
    await sink.open()
    for k in range(0, len(events), 37):
        await sink.write(events[k : k + 37])
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0 and sink.health_error is None

    # the latest summary of every pair, the latest health of every venue, with a TTL
    latest: dict[str, Any] = {}
    health: dict[str, Any] = {}
    open_arbs: dict[str, Any] = {}
    for e in events:
        d = e.to_dict()["data"]
        if e.kind == "summary":
            latest[d["symbol"]] = d
        elif e.kind == "health":
            health[d["exchange"]] = d
        else:
            key = f"{d['symbol']}|{d['buy_exchange']}|{d['sell_exchange']}"
            if d["event"] == "closed":
                open_arbs.pop(key, None)
            else:
                open_arbs[key] = d
    for pair, d in latest.items():
        raw = await client.get(f"aggcore:summary:{pair}")
        assert raw is not None and orjson.loads(raw) == d
        assert 0 < await client.pttl(f"aggcore:summary:{pair}") <= 600_000
    for venue, d in health.items():
        assert orjson.loads(await client.get(f"aggcore:health:{venue}")) == d
    stored = await client.hgetall("aggcore:arbitrage:open")
    assert {k.decode(): orjson.loads(v) for k, v in stored.items()} == open_arbs

    # every event on its kind's stream, in order, once
    for kind in ("summary", "arbitrage", "health"):
        entries = await client.xrange(f"aggcore:stream:{kind}")
        want = [e for e in events if e.kind == kind]
        assert [orjson.loads(f[b"data"]) for _, f in entries] == [e.to_dict()["data"] for e in want]
        assert [float(f[b"ts"]) for _, f in entries] == [e.ts for e in want]


async def test_latest_book_and_metrics_keys(server: RedisServer, client: aioredis.Redis) -> None:
    events = sample_books(30) + sample_metrics(20)
    sink = make(server.url, events=["book", "metrics"])
    await sink.open()
    await sink.write(events)
    await sink.close()
    want: dict[str, Any] = {}
    for e in events:
        d = e.to_dict()["data"]
        key = f"aggcore:book:{d['venue']}:{d['pair']}" if e.kind == "book" else f"aggcore:metrics:{d['exchange']}:{d['symbol']}"
        want[key] = orjson.loads(orjson.dumps(d))  # JSON: the levels' (price, quantity) tuples become arrays
    for key, d in want.items():
        assert orjson.loads(await client.get(key)) == d
    assert await client.xlen("aggcore:stream:book") == 30 and await client.xlen("aggcore:stream:metrics") == 20


async def test_streams_are_capped(server: RedisServer, client: aioredis.Redis) -> None:
    sink = make(server.url, stream_maxlen=100, events=["summary"])
    await sink.open()
    for _ in range(10):
        await sink.write([e for e in sample_events(300) if e.kind == "summary"])
    await sink.close()
    n = await client.xlen("aggcore:stream:summary")
    assert 100 <= n < 400  # MAXLEN ~ trims whole nodes: about the cap, never unbounded


async def test_server_restart_mid_run_loses_nothing_uncounted(server: RedisServer, client: aioredis.Redis) -> None:
    events = [e for e in sample_events(3000) if e.kind != "health"]
    sink = make(server.url, max_pending_events=100_000, batch_max_events=50)
    await sink.open()
    await write_through_restart(sink, events, server, down_s=0.5, chunk=20, drain_s=20)
    await sink.close()
    assert sink.reconnects >= 1
    assert sink.dropped_events == 0 and sink.delivered_events == len(events)
    seqs = []
    for kind in ("summary", "arbitrage"):
        seqs += [event_seq(float(f[b"ts"])) for _, f in await client.xrange(f"aggcore:stream:{kind}")]
    assert sorted(seqs) == sorted(event_seq(e.ts) for e in events)  # every event exactly once
    assert sink.health_error is None and sink.last_error is not None and "disconnected" in sink.last_error


async def test_server_out_of_memory_holds_events_until_it_can_write_again(server: RedisServer, client: aioredis.Redis) -> None:
    sink = make(server.url, events=["summary"], backoff_max_s=0.1)
    await sink.open()
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("maxmemory", "1")  # every write is refused with OOM (a full disk behaves alike)
    events = [e for e in sample_events(200) if e.kind == "summary"]
    await sink.write(events)
    with anyio.fail_after(5):
        while sink.health_error is None:
            await anyio.sleep(0.02)
    assert "refuses writes for now: OutOfMemoryError" in sink.health_error
    assert sink.pending_events == len(events) and sink.dropped_events == 0
    await client.config_set("maxmemory", "0")  # room again
    with anyio.fail_after(10):
        while sink.pending_events:
            await anyio.sleep(0.02)
    await sink.close()
    assert sink.delivered_events == len(events) and sink.health_error is None
    assert await client.xlen("aggcore:stream:summary") == len(events)


async def test_bounded_buffer_while_down_counts_drops() -> None:
    port = free_port()
    sink = make(f"redis://127.0.0.1:{port}/0", max_pending_events=100, connect_timeout_s=0.5, close_timeout_s=0.5)
    await sink.open()  # nothing listens: not fatal, said in health
    assert sink.health_error is not None and f"cannot connect to redis redis://127.0.0.1:{port}/0" in sink.health_error
    events = sample_events(250)
    await sink.write(events)
    assert sink.pending_events <= 100 + sink.bcfg.batch_max_events
    await sink.close()
    assert sink.delivered_events == 0 and sink.dropped_events == len(events)
    assert "not written" in (sink.health_error or "")


async def test_unreachable_at_start_then_server_comes_up(tmp_path: Any) -> None:
    port = free_port()
    sink = make(f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.5)
    await sink.open()
    assert sink.health_error is not None
    events = sample_events(100)
    await sink.write(events)
    from aggcore.testing.services import require_binary

    server = RedisServer(require_binary("redis-server", "redis-server"), tmp_path, port)
    server.start()
    try:
        with anyio.fail_after(15):
            while sink.pending_events:
                await anyio.sleep(0.05)
        await sink.close()
        assert sink.delivered_events == 100 and sink.dropped_events == 0 and sink.health_error is None
    finally:
        server.stop()


async def test_password_is_a_secret_and_wrong_password_is_a_config_error(server: RedisServer, client: aioredis.Redis) -> None:
    await client.config_set("requirepass", "the-right-one")
    url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
    cfg = RedisSinkConfig.model_validate({"url": url})
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())
    sink = RedisSink(cfg)
    assert "hunter2" not in sink.describe() and "***@127.0.0.1" in sink.describe()
    with pytest.raises(ConfigError) as info:  # a wrong password: a lasting error, not retried
        await sink.open()
    assert "sinks.redis.url" in str(info.value) and "hunter2" not in str(info.value)
    runner = SinkRunner(RedisSink(cfg))
    await runner.run()  # through the runtime: shown in health, nothing else happens
    assert not runner.opened and "cannot open" in (runner.health_error or "") and "hunter2" not in (runner.health_error or "")


def test_config_errors_name_the_key() -> None:
    registry = load_plugins()
    assert registry.sinks["redis"] is RedisSink
    with pytest.raises(ConfigError) as info:
        load_config({"sinks": {"redis": {"url": "http://user:pw@x/0", "stream_maxlen": 0}}}, registry=registry)
    text = str(info.value)
    assert "sinks.redis.url" in text and "sinks.redis.stream_maxlen" in text and "pw@" not in text


KINDS = ("summary", "arbitrage", "health", "metrics", "book")


async def test_every_field_of_every_payload_type_read_back_equal(server: RedisServer, client: aioredis.Redis) -> None:
    """The JSON the sink stores (streams and latest-state keys) holds every field of the payload type,
    nested types included (derived from the msgspec type: a field added to a public type fails here
    until it is stored), and decodes back to a payload equal to the one published."""
    events = sorted(sample_events(500) + sample_books(40) + sample_metrics(30), key=lambda e: e.ts)
    assert unset_fields(events) == [], "give these fields a value in aggcore.testing.events"
    sink = make(server.url, events=list(KINDS))
    await sink.open()
    for k in range(0, len(events), 60):
        await sink.write(events[k : k + 60])
    await sink.close()
    assert sink.delivered_events == len(events) and sink.dropped_events == 0
    latest: dict[str, tuple[type[msgspec.Struct], Any]] = {}
    for kind in KINDS:
        T = payload_type(kind)  # type: ignore[arg-type]
        want = [e for e in events if e.kind == kind]
        entries = await client.xrange(f"aggcore:stream:{kind}")
        assert len(entries) == len(want)
        for (_, fields), e in zip(entries, want, strict=True):
            assert json_field_gaps(orjson.loads(fields[b"data"]), T) == []
            assert msgspec.json.decode(fields[b"data"], type=T) == e.payload  # every value
            assert float(fields[b"ts"]) == e.ts
        for e in want:
            p: Any = e.payload
            key = {
                "summary": f"aggcore:summary:{getattr(p, 'symbol', '')}",
                "health": f"aggcore:health:{getattr(p, 'exchange', '')}",
                "metrics": f"aggcore:metrics:{getattr(p, 'exchange', '')}:{getattr(p, 'symbol', '')}",
                "book": f"aggcore:book:{getattr(p, 'venue', '')}:{getattr(p, 'pair', '')}",
            }.get(kind)
            if key is not None:
                latest[key] = (T, p)
    for key, (T, p) in latest.items():  # the latest state of each, as a key
        raw = await client.get(key)
        assert raw is not None and json_field_gaps(orjson.loads(raw), T) == [] and msgspec.json.decode(raw, type=T) == p
    for raw in (await client.hgetall("aggcore:arbitrage:open")).values():
        assert json_field_gaps(orjson.loads(raw), ArbitrageOpportunity) == []
