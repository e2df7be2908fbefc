"""Scale-out with real processes and a real nats-server: two ``--simulate`` feed processes
(Binance and Bybit) and a consolidator process whose ``nats`` sink publishes summaries and
health as JSON, observed by a plain NATS client. One scenario, in order: both feeds' venues in
the summaries with each venue's levels equal to that feed's book at a publish; a consolidator
started last has every book within a second; a bad message is counted and ignored; ``kill -9``
of a feed excludes its venues as "feed silent" and its restart brings them back; ``kill -9`` of
nats-server and a restart on the same port and store recovers everything, no process restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats as nats_client
import pytest
import yaml

from aggcore import Aggregator
from aggcore.bus import BookMessage
from aggcore.models import BookState
from aggcore_plugin_nats.testing import NatsServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

PAIRS = ["BTC/USDT", "ETH/USDT"]
BUS = {"heartbeat_ms": 250, "silent_after_ms": 1500}


def bus(url: str) -> dict[str, Any]:
    return {"nats": {"servers": [url], "reconnect_wait_s": 0.2}, **BUS}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


class Proc:
    def __init__(self, name: str, config: Path, role: str, tmp: Path, simulate: bool = True) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "aggcore.cli", "run", str(config), "--role", role] + (["--simulate"] if simulate else [])
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Observer:
    """A plain NATS client: records the feeds' book messages, the consolidator's summaries and health."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], deque[BookMessage]] = defaultdict(lambda: deque(maxlen=400))
        self.summaries: list[tuple[float, dict[str, Any]]] = []
        self.health: dict[str, dict[str, Any]] = {}
        self.nc: Any = None
        self.dec = msgspec.msgpack.Decoder(BookMessage)

    async def start(self, url: str) -> None:
        self.nc = await nats_client.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)

        async def on_book(msg: Any) -> None:
            try:
                m = self.dec.decode(msg.data)
            except msgspec.DecodeError:
                return
            self.books[(m.venue, m.pair)].append(m)

        async def on_summary(msg: Any) -> None:
            self.summaries.append((time.monotonic(), json.loads(msg.data)["data"]))

        async def on_health(msg: Any) -> None:
            data = json.loads(msg.data)["data"]
            self.health[data["exchange"]] = data

        await self.nc.subscribe("aggcore.v1.book.>", cb=on_book)
        await self.nc.subscribe("aggcore.v1.summary.>", cb=on_summary)
        await self.nc.subscribe("aggcore.v1.health", cb=on_health)

    def summary_since(self, t0: float, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        for t, s in reversed(self.summaries):
            if t < t0:
                return None
            if pred(s):
                return s
        return None


async def until(pred: Callable[[], Any], what: str, timeout: float, procs: list[Proc] = []) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await anyio.sleep(0.05)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


def venue_levels_match_a_publish(summary: dict[str, Any], obs: Observer) -> None:
    """Each venue's levels in the summary are the top levels of one message its feed published."""
    pair = summary["symbol"]
    for venue in summary["venues"]:
        bids = [(lv["price"], lv["quantity"]) for lv in summary["bids"] if lv["exchange"] == venue]
        asks = [(lv["price"], lv["quantity"]) for lv in summary["asks"] if lv["exchange"] == venue]
        assert bids or asks
        msgs = list(obs.books[(venue, pair)])
        assert any(
            [tuple(x) for x in m.bids[: len(bids)]] == bids and [tuple(x) for x in m.asks[: len(asks)]] == asks
            for m in msgs
        ), f"{venue} {pair}: levels {bids[:2]}.. / {asks[:2]}.. match none of {len(msgs)} published books"


def both(s: dict[str, Any]) -> bool:
    return s["symbol"] == "BTC/USDT" and set(s["venues"]) == {"binance", "bybit"}


async def test_feeds_and_consolidator_over_a_real_nats_server(nats_srv: NatsServer, tmp_path: Path) -> None:
    url = nats_srv.url
    feeds = {
        "binance": write(tmp_path / "feed-binance.yaml", {"exchanges": {"binance": {"trading_pairs": PAIRS}}, "bus": bus(url)}),
        "bybit": write(tmp_path / "feed-bybit.yaml", {"exchanges": {"bybit": {"trading_pairs": PAIRS}}, "bus": bus(url)}),
    }
    consolidator_cfg: dict[str, Any] = {
        "bus": bus(url),
        "aggregation": {"max_price_levels": 10, "max_age_ms": 3000},
        "monitoring": {"health_check_interval_ms": 200},
        "sinks": {"nats": {"servers": [url], "events": ["summary", "health"]}},
    }
    obs = Observer()
    await obs.start(url)
    procs: list[Proc] = []
    try:
        fb = Proc("feed-binance", feeds["binance"], "feed", tmp_path)
        fy = Proc("feed-bybit", feeds["bybit"], "feed", tmp_path)
        procs += [fb, fy]
        await until(
            lambda: all(
                obs.books[(v, p)] and obs.books[(v, p)][-1].state == "LIVE" for v in ("binance", "bybit") for p in PAIRS
            ),
            "LIVE books from both feeds",
            30,
            procs,
        )

        # a consolidator started last has every book at once (from the stream), within a second
        agg = Aggregator({**consolidator_cfg, "sinks": {}}, role="consolidate")
        t0 = time.monotonic()
        async with agg:
            await until(
                lambda: agg.remote is not None and len(agg.remote.books) == 4
                and all(r.book.state is BookState.LIVE for r in agg.remote.books.values()),
                "all four books LIVE in an in-process consolidator",
                5,
            )  # fmt: skip
            took = time.monotonic() - t0
            assert took < 1.0, f"a late consolidator took {took:.2f}s to have every book"
            merged = agg.router.views["BTC/USDT"].merge(10, 3000)
            assert set(merged.venues) == {"binance", "bybit"}

        # the consolidator process: summaries with venues of both feeds, levels as published
        cons = Proc("consolidator", write(tmp_path / "consolidator.yaml", consolidator_cfg), "consolidate", tmp_path, simulate=False)
        procs.append(cons)
        t0 = time.monotonic()
        await until(lambda: obs.summary_since(t0, both), "a summary with both venues", 20, procs)
        await anyio.sleep(1.0)
        checked = [s for t, s in obs.summaries[-60:] if both(s)]
        assert len(checked) >= 5
        for s in checked:
            venue_levels_match_a_publish(s, obs)

        # a bad message on a book subject: counted, ignored, everything goes on
        await obs.nc.publish("aggcore.v1.book.binance.BTC-USDT", b"\xc1 not msgpack")
        await obs.nc.publish("aggcore.v1.book.binance.BTC-USDT", msgspec.msgpack.encode({"venue": "binance"}))
        await obs.nc.flush()
        await until(
            lambda: "bad messages ignored" in (obs.health.get("bus:nats", {}).get("error_message") or ""),
            "the bad message counted in health",
            5,
            procs,
        )
        assert obs.health["bus:nats"]["error_message"].startswith("2 bad messages ignored")
        t0 = time.monotonic()
        await until(lambda: obs.summary_since(t0, both), "summaries with both venues after the bad message", 5, procs)

        # kill -9 of a feed: its venue is excluded as "feed silent", and back after a restart
        fy.kill9()
        t_kill = time.monotonic()
        silent = await until(
            lambda: obs.summary_since(t_kill, lambda s: s["symbol"] == "BTC/USDT" and "feed silent" in s["excluded"].get("bybit", "")),
            "bybit excluded as feed silent",
            8,
            procs,
        )
        assert time.monotonic() - t_kill < 5 and silent["venues"] == ["binance"]
        fy.start()
        t0 = time.monotonic()
        await until(lambda: obs.summary_since(t0, both), "bybit back after its feed restarted", 30, procs)

        # kill -9 of nats-server, restart on the same port and store: everything recovers
        pids = {p.name: p.pid for p in procs}
        nats_srv.restart(down_s=1.0)
        t0 = time.monotonic()
        await until(lambda: obs.summary_since(t0, both), "both venues again after the server restart", 20, procs)
        await until(lambda: obs.health.get("bus:nats", {}).get("reconnects", 0) >= 1, "the loss counted in health", 5, procs)
        assert obs.health["bus:nats"]["connected"] is True
        assert all(p.alive() for p in procs) and {p.name: p.pid for p in procs} == pids
        await anyio.sleep(0.5)
        for s in [s for t, s in obs.summaries if t > t0 and both(s)][-10:]:
            venue_levels_match_a_publish(s, obs)
    finally:
        codes = {p.name: p.stop() for p in procs}
        await obs.nc.close()
    assert all(code == 0 for code in codes.values()), codes
