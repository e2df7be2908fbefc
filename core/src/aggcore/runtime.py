"""``aggcore run``: the process around an :class:`~aggcore.aggregator.Aggregator`.

Runs until SIGINT or SIGTERM, then stops reading, flushes sinks within a deadline and exits 0.
With ``--simulate`` it first starts, in-process, the fake exchange server that every
configured exchange's plugin ships (over loopback), points the connectors at them, and lets
them quote one simulated market (a latent price per pair that every venue follows), with a
sizeable cross-venue dislocation now and then.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

from .errors import ConfigError, PluginError
from .sink import Sink

if TYPE_CHECKING:
    from .bus import Role
    from .config import AppConfig
    from .plugins import PluginRegistry
    from .recording import Recorder
    from .testing.server import FakeExchange

__all__ = ["Simulation", "run_cli"]

log = logging.getLogger("aggcore")


def run_cli(
    config: "AppConfig",
    registry: "PluginRegistry",
    *,
    simulate: bool = False,
    live: bool = False,
    role: "Role | None" = None,
    record: str | None = None,
    record_only: bool = False,
    duration_s: float | None = None,
    record_options: dict[str, float] | None = None,
) -> int:
    """``aggcore run`` (``record``: also record every connector's traffic into that directory)
    and ``aggcore record`` (``record_only``: connectors and books, no sinks)."""
    try:
        return anyio.run(_main, config, registry, simulate, live, role, record, record_only, duration_s, record_options)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


async def _main(
    config: "AppConfig",
    registry: "PluginRegistry",
    simulate: bool,
    live: bool,
    role: "Role | None" = None,
    record: str | None = None,
    record_only: bool = False,
    duration_s: float | None = None,
    record_options: dict[str, float] | None = None,
) -> int:
    from .aggregator import Aggregator

    recorder: Recorder | None = None
    if record is not None:
        from .recording import Recorder, header_meta

        opts = record_options or {}
        recorder = Recorder(record, rotate_bytes=int(opts.get("rotate_bytes", 256e6)), rotate_s=opts.get("rotate_s", 3600.0))
    async with AsyncExitStack() as stack:
        if simulate and role != "consolidate":  # a consolidator runs no connectors: nothing to simulate
            sim = Simulation(config, registry)
            config = await stack.enter_async_context(sim)
        sinks: list[Sink] = []
        if record_only:
            config = config.model_copy(update={"sinks": {}})
        elif role == "feed":
            pass  # a feed runs no sinks: its books go to the bus
        elif live:
            sinks.append(_builtin_sink(registry, "console", {}))
        elif not any(s.enabled for s in config.sinks.values()):
            sinks.append(_builtin_sink(registry, "stdout", {}))
        agg = Aggregator(
            config,
            registry=registry,
            sinks=sinks,
            role=role,
            connector_io=recorder.connector_io if recorder is not None else None,
        )
        if recorder is not None:
            for name, connector in agg.connectors.items():
                recorder.describe(name, header_meta(config, registry, name))
                recorder.attach(connector)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await agg.start()
            log.info(
                "aggcore %s%s: %s; Ctrl-C to stop",
                "recording" if record_only else "running",
                f" as {role} over bus {agg.bus.name}" if agg.bus is not None else "",
                ", ".join(f"{n} ({len(c.config.trading_pairs)} pairs)" for n, c in agg.connectors.items()) or "no exchanges",
            )
            if recorder is not None:
                log.info("recording into %s", recorder.directory)
            try:
                async with anyio.create_task_group() as tg:
                    if recorder is not None:
                        tg.start_soon(recorder.run)  # the file writer (records wait in memory until it runs)
                    with anyio.move_on_after(duration_s if duration_s is not None else math.inf):
                        async for sig in signals:
                            log.info("%s received: stopping", signal.Signals(sig).name)
                            break
                    tg.cancel_scope.cancel()
            finally:
                await agg.stop()  # shields its own flush; must exit its task group in this scope
                if recorder is not None:
                    await recorder.close()
                    print(f"aggcore: {recorder.summary()}", file=sys.stderr, flush=True)
    return 0


def _builtin_sink(registry: "PluginRegistry", name: str, section: dict[str, Any]) -> Sink:
    cls = registry.sinks.get(name)
    if cls is None:
        raise PluginError(f"the built-in {name!r} sink is not available (disabled or failed to load)", plugin=name)
    return cls(cls.Config.model_validate(section))


class Simulation:
    """The fake servers of every configured exchange, quoting one simulated market.

    Every pair has one latent price (:class:`~aggcore.testing.market.Market`); each venue
    follows it with its own tick, spread, depth, lag and noise, so venues agree the way real
    ones do. About every ``dislocation_every_s`` seconds (``None``: never) one venue's price of
    one pair jumps by about ``dislocation_bp`` basis points and decays within seconds: a real
    cross-venue opportunity after typical taker fees.
    """

    def __init__(
        self,
        config: "AppConfig",
        registry: "PluginRegistry",
        *,
        seed: int = 7,
        rate_hz: float = 10.0,
        volatility: float = 0.4,
        dislocation_every_s: float | None = 30.0,
        dislocation_bp: float = 40.0,
    ) -> None:
        from .testing.market import Market

        self.config = config
        self.registry = registry
        self.seed = seed
        self.rate_hz = rate_hz
        self.market = Market(seed, volatility=volatility, dislocation_every_s=dislocation_every_s, dislocation_bp=dislocation_bp)
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
        await self._stack.__aenter__()
        try:
            exchanges = {}
            for i, (name, section) in enumerate(self.config.exchanges.items()):
                if not section.enabled:
                    exchanges[name] = section
                    continue
                fake = self._fake_class(name)(seed=self.seed + i, rate_hz=self.rate_hz, market=self.market)
                await self._stack.enter_async_context(fake)
                self.fakes[name] = fake
                exchanges[name] = section.model_copy(update={"ws_url": fake.ws_url, "rest_url": fake.rest_url})
                log.info("simulating %s on %s", name, fake.ws_url)
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        return self.config.model_copy(update={"exchanges": exchanges})

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.__aexit__(None, None, None)
