"""``aggcore run``: the process around an :class:`~aggcore.aggregator.Aggregator`.

Runs until SIGINT or SIGTERM, then stops reading, flushes sinks within a deadline and exits 0.
With ``--simulate`` it first starts, in-process, the fake exchange server that every
configured exchange's plugin ships (over loopback), points the connectors at them, and keeps
their markets drifting around a shared reference price, so spreads move and cross-venue
arbitrage appears now and then.
"""

from __future__ import annotations

import math
import logging
import random
import signal
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

from .errors import ConfigError, PluginError
from .sink import Sink
from .symbols import normalize_asset

if TYPE_CHECKING:
    from .config import AppConfig
    from .recording import Recorder
    from .plugins import PluginRegistry
    from .testing.server import FakeExchange

__all__ = ["Simulation", "run_cli"]

log = logging.getLogger("aggcore")

#: reference prices of the demo markets, by base asset
REFERENCE = {"BTC": 60000.0, "ETH": 3000.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15, "LTC": 80.0}


def run_cli(
    config: "AppConfig",
    registry: "PluginRegistry",
    *,
    simulate: bool = False,
    live: bool = False,
    record: str | None = None,
    record_only: bool = False,
    duration_s: float | None = None,
) -> int:
    """``aggcore run`` (``record``: also record into that directory) and ``aggcore record``
    (``record_only``: connectors and books only, no sinks)."""
    try:
        return anyio.run(_main, config, registry, simulate, live, record, record_only, duration_s)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


async def _main(
    config: "AppConfig",
    registry: "PluginRegistry",
    simulate: bool,
    live: bool,
    record: str | None = None,
    record_only: bool = False,
    duration_s: float | None = None,
) -> int:
    from .aggregator import Aggregator

    recorder: Recorder | None = None
    if record is not None:
        from .recording import Recorder, header_meta

        recorder = Recorder(record)
    async with AsyncExitStack() as stack:
        if simulate:
            sim = Simulation(config, registry)
            config = await stack.enter_async_context(sim)
        sinks: list[Sink] = []
        if record_only:
            config = config.model_copy(update={"sinks": {}})
        elif live:
            sinks.append(_builtin_sink(registry, "console", {}))
        elif not any(s.enabled for s in config.sinks.values()):
            sinks.append(_builtin_sink(registry, "stdout", {}))
        agg = Aggregator(
            config,
            registry=registry,
            sinks=sinks,
            connector_io=recorder.connector_io if recorder is not None else None,
        )
        if recorder is not None:
            for name, connector in agg.connectors.items():
                recorder.describe(name, header_meta(config, registry, name))
                recorder.attach(connector)
        async with anyio.create_task_group() as tg:
            if recorder is not None:
                tg.start_soon(recorder.run)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                await agg.start()
                log.info(
                    "aggcore %s: %s; Ctrl-C to stop",
                    "recording" if record_only else "running",
                    ", ".join(f"{n} ({len(c.config.trading_pairs)} pairs)" for n, c in agg.connectors.items()) or "no exchanges",
                )
                if recorder is not None:
                    log.info("recording into %s", recorder.directory)
                try:
                    with anyio.move_on_after(duration_s if duration_s is not None else math.inf):
                        async for sig in signals:
                            log.info("%s received: stopping", signal.Signals(sig).name)
                            break
                finally:
                    await agg.stop()  # shields its own flush; must exit its task group in this scope
                    if recorder is not None:
                        await recorder.close()
                        print(f"aggcore: {recorder.summary()}", file=sys.stderr, flush=True)
                    tg.cancel_scope.cancel()
    return 0


def _builtin_sink(registry: "PluginRegistry", name: str, section: dict[str, Any]) -> Sink:
    cls = registry.sinks.get(name)
    if cls is None:
        raise PluginError(f"the built-in {name!r} sink is not available (disabled or failed to load)", plugin=name)
    return cls(cls.Config.model_validate(section))


class Simulation:
    """The fake servers of every configured exchange, drifting around shared reference prices."""

    def __init__(self, config: "AppConfig", registry: "PluginRegistry", *, seed: int = 7, rate_hz: float = 10.0) -> None:
        self.config = config
        self.registry = registry
        self.seed = seed
        self.rate_hz = rate_hz
        self.fakes: dict[str, FakeExchange] = {}
        self._stack = AsyncExitStack()

    def _fake_class(self, name: str) -> "type[FakeExchange]":
        cls = self.registry.connectors.get(name)
        try:
            if cls is None:
                raise LookupError(f"no connector plugin {name!r}")
            return cls.load_fake()
        except LookupError as exc:
            raise ConfigError(f"exchanges.{name}: --simulate needs the plugin's fake server: {exc}") from None

    async def __aenter__(self) -> "AppConfig":
        from .testing.market import GenBook

        await self._stack.__aenter__()
        exchanges = {}
        for i, (name, section) in enumerate(self.config.exchanges.items()):
            if not section.enabled:
                exchanges[name] = section
                continue
            fake = self._fake_class(name)(seed=self.seed + i, rate_hz=self.rate_hz)
            for sym, book in list(fake.books.items()):
                spec = fake.specs[sym]
                ref = REFERENCE.get(normalize_asset(spec.base))
                if ref is None:
                    continue
                # a tick of about 0.2 bp of the price, so spreads look like a real market's
                tick = max(spec.tick, 10 ** math.floor(math.log10(ref * 2e-5)))
                fake.books[sym] = GenBook(
                    mid=ref,
                    tick=tick,
                    price_precision=spec.price_precision,
                    qty_precision=spec.qty_precision,
                    depth=book.depth,
                    seed=self.seed * 1000 + i * 17 + len(sym),
                )
            await self._stack.enter_async_context(fake)
            self.fakes[name] = fake
            exchanges[name] = section.model_copy(update={"ws_url": fake.ws_url, "rest_url": fake.rest_url})
            log.info("simulating %s on %s", name, fake.ws_url)
        # the drift task has its own cancel scope: cancelling the task group's scope from
        # __aexit__ would also cancel the host task while it stops the fake servers
        self._drift_scope = anyio.CancelScope()
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        tg.start_soon(self._drift)
        return self.config.model_copy(update={"exchanges": exchanges})

    async def __aexit__(self, *exc: object) -> None:
        self._drift_scope.cancel()
        await self._stack.__aexit__(None, None, None)

    async def _drift(self) -> None:
        """A shared random walk per asset; each venue's mid wanders around it (mean-reverting),
        so venues disagree by a few basis points and, now and then, by more than the fees."""
        with self._drift_scope:
            await self._drift_loop()

    async def _drift_loop(self) -> None:
        rng = random.Random(self.seed)
        refs = dict(REFERENCE)
        offsets: dict[tuple[str, str], float] = {}
        while True:
            await anyio.sleep(0.1)
            for asset in refs:
                refs[asset] *= 1 + rng.gauss(0, 0.0002)
            for name, fake in self.fakes.items():
                for sym, book in fake.books.items():
                    asset = normalize_asset(fake.specs[sym].base)
                    ref = refs.get(asset)
                    if ref is None:
                        continue
                    key = (name, sym)
                    # venues agree, but now and then one is dislocated by
                    # ~0.5% that decays within seconds: cross-venue arbitrage after fees
                    off = offsets.get(key, 0.0) * 0.9
                    if abs(off) < 0.0003:
                        off = 0.0
                    if rng.random() < 0.002:
                        off += rng.choice((-1, 1)) * 0.005
                    offsets[key] = off
                    book.mid = ref * (1 + off)
