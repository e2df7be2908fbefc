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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .errors import AggregatorError, ConfigError, PluginError
from .sink import Sink

if TYPE_CHECKING:
    from .bus import Role
    from .config import AppConfig
    from .plugins import PluginRegistry
    from .recording import Recorder
    from .testing.server import FakeExchange, InstrumentSpec

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
    stdout_format: Literal["human", "json"] | None = None,
    interrupted: Callable[[], bool] | None = None,
    record_options: dict[str, float] | None = None,
) -> int:
    """``aggcore run`` (``record``: also record every connector's traffic into that directory)
    and ``aggcore record`` (``record_only``: connectors and books, no sinks).

    Runs until SIGINT/SIGTERM (at any moment, also during start-up), until stdout closes or
    for ``duration_s``; returns the exit code, 0 for all of these. ``interrupted``: whether a
    signal already came before the runtime's own handlers were in place (it stops at once)."""
    try:
        return anyio.run(
            _main, config, registry, simulate, live, role, record, record_only, duration_s, stdout_format, interrupted, record_options
        )
    except KeyboardInterrupt:  # a signal in the instant before the handlers were in place
        return 0
    except BaseExceptionGroup as group:
        # start() runs inside a task group: report its one error (a port in use is a
        # ConfigError, exit 2) as itself, not as a group
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if inner is group or not isinstance(inner, (AggregatorError, KeyboardInterrupt)):
            raise
        if isinstance(inner, KeyboardInterrupt):
            return 0
        raise inner from None


class _Stop:
    """Why and when to stop: a signal, the stdout sink's reader went away, the duration ended."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.startup: anyio.CancelScope | None = None

    def set(self, reason: str) -> None:
        if self.event.is_set():
            return
        log.info("%s: stopping", reason)
        self.event.set()
        if self.startup is not None:
            self.startup.cancel()  # a signal during start-up: stop starting, then clean up


async def _main(
    config: "AppConfig",
    registry: "PluginRegistry",
    simulate: bool,
    live: bool,
    role: "Role | None" = None,
    record: str | None = None,
    record_only: bool = False,
    duration_s: float | None = None,
    stdout_format: Literal["human", "json"] | None = None,
    interrupted: Callable[[], bool] | None = None,
    record_options: dict[str, float] | None = None,
) -> int:
    stop = _Stop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if interrupted is not None and interrupted():
                stop.set("interrupted during start-up")
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    async for sig in signals:  # later signals while stopping are ignored
                        stop.set(f"{signal.Signals(sig).name} received")

                tg.start_soon(watch)
                try:
                    await _serve(
                        config, registry, simulate, live, role, record, record_only, duration_s, stdout_format, stop, record_options
                    )
                finally:
                    tg.cancel_scope.cancel()
    finally:
        # closing the receiver restores the default actions (SIGTERM: exit 143): put back what
        # was there (the CLI's handlers), so a signal during the last instant is clean too
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    return 0


async def _serve(
    config: "AppConfig",
    registry: "PluginRegistry",
    simulate: bool,
    live: bool,
    role: "Role | None",
    record: str | None,
    record_only: bool,
    duration_s: float | None,
    stdout_format: Literal["human", "json"] | None,
    stop: _Stop,
    record_options: dict[str, float] | None = None,
) -> None:
    from .aggregator import Aggregator
    from .builtins.sinks.console import ConsoleSink
    from .builtins.sinks.stdout import StdoutSink

    recorder: Recorder | None = None
    if record is not None:
        from .recording import Recorder, header_meta

        opts = record_options or {}
        recorder = Recorder(record, rotate_bytes=int(opts.get("rotate_bytes", 256e6)), rotate_s=opts.get("rotate_s", 3600.0))
    async with AsyncExitStack() as stack:
        # start-up that waits (the simulated exchanges) runs in a scope a signal cancels; the
        # aggregator's own start does not wait and opens its task group outside that scope
        with anyio.CancelScope() as startup:
            stop.startup = startup
            if simulate and role != "consolidate":  # a consolidator runs no connectors: nothing to simulate
                sim = Simulation(config, registry)
                config = await stack.enter_async_context(sim)
        stop.startup = None
        if stop.event.is_set():
            return
        if stdout_format is not None and "stdout" in config.sinks:  # --format applies to a configured stdout sink too
            section = config.sinks["stdout"].model_copy(update={"format": stdout_format})
            config = config.model_copy(update={"sinks": {**config.sinks, "stdout": section}})
        sinks: list[Sink] = []
        if record_only:
            config = config.model_copy(update={"sinks": {}})
        elif role == "feed":
            pass  # a feed runs no sinks: its books go to the bus
        elif live:
            sinks.append(_builtin_sink(registry, "console", {}))
        elif not any(s.enabled for s in config.sinks.values()):
            sinks.append(_builtin_sink(registry, "stdout", {"format": stdout_format or "human"}))
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
        async with anyio.create_task_group() as tg:
            if recorder is not None:
                tg.start_soon(recorder.run)
            try:
                await agg.start()
                for runner in agg.hub.sinks:
                    if isinstance(runner.sink, StdoutSink):  # nobody reads stdout any more: stop the run
                        runner.sink.on_closed = lambda: stop.set("stdout closed")
                    elif isinstance(runner.sink, ConsoleSink):  # --live: q quits
                        runner.sink.on_quit = lambda: stop.set("q pressed")
                log.info(
                    "aggcore %s%s: %s; Ctrl-C to stop",
                    "recording" if record_only else "running",
                    f" as {role} over bus {agg.bus.name}" if agg.bus is not None else "",
                    ", ".join(f"{n} ({len(c.config.trading_pairs)} pairs)" for n, c in agg.connectors.items()) or "no exchanges",
                )
                if recorder is not None:
                    log.info("recording into %s", recorder.directory)
                with anyio.move_on_after(duration_s if duration_s is not None else math.inf):
                    await stop.event.wait()
            finally:
                await agg.stop()  # shields its own flush; must exit its task group in this scope
                if recorder is not None:
                    await recorder.close()
                    print(f"aggcore: {recorder.summary()}", file=sys.stderr, flush=True)
                tg.cancel_scope.cancel()


def _builtin_sink(registry: "PluginRegistry", name: str, section: dict[str, Any]) -> Sink:
    cls = registry.sinks.get(name)
    if cls is None:
        raise PluginError(f"the built-in {name!r} sink is not available (disabled or failed to load)", plugin=name)
    return cls(cls.Config.model_validate(section))


class Simulation:
    """The fake servers of every configured exchange, quoting one simulated market.

    Every pair has one latent price (:class:`~aggcore.testing.market.Market`); each venue
    follows it with its own tick, spread, depth, lag and noise, so venues agree the way real
    ones do. About every ``simulation.dislocation_every_s`` seconds (``null``: never) one
    venue's price of one pair jumps by about ``dislocation_bp`` basis points and fades within
    ``dislocation_duration_s``: a real cross-venue opportunity after typical taker fees. The
    config's ``simulation`` section sets these, the seed, the volatility and the rate.
    """

    def __init__(self, config: "AppConfig", registry: "PluginRegistry", **overrides: float | None) -> None:
        """``overrides``: keys of the ``simulation`` section that replace the config's
        (``dislocation_every_s=None`` for a market without dislocations)."""
        from .testing.market import Market

        self.config = config
        self.registry = registry
        unknown = set(overrides) - set(type(config.simulation).model_fields)
        if unknown:
            raise TypeError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
        sim = config.simulation.model_copy(update=overrides)  # the config's simulation section
        self.seed = sim.seed
        self.rate_hz = sim.rate_hz
        self.market = Market(
            sim.seed,
            volatility=sim.volatility,
            dislocation_every_s=sim.dislocation_every_s,
            dislocation_bp=sim.dislocation_bp,
            dislocation_duration_s=sim.dislocation_duration_s,
        )
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
        # every configured pair of every exchange first: all problems reported together
        plans: dict[str, tuple[type[FakeExchange], dict[str, InstrumentSpec]]] = {}
        errors: list[tuple[str, str]] = []
        for name, section in self.config.exchanges.items():
            if section.enabled:
                fake_cls = self._fake_class(name)
                plans[name] = (fake_cls, self._instruments(name, fake_cls, section, errors))
        if errors:
            raise ConfigError("; ".join(f"{loc}: {msg}" for loc, msg in errors), errors=errors)
        await self._stack.__aenter__()
        try:
            exchanges = {}
            for i, (name, section) in enumerate(self.config.exchanges.items()):
                if name not in plans:
                    exchanges[name] = section
                    continue
                fake_cls, instruments = plans[name]
                fake = fake_cls(seed=self.seed + i, rate_hz=self.rate_hz, market=self.market, symbols=instruments)
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

    @staticmethod
    def _instruments(
        name: str, fake_cls: "type[FakeExchange]", section: Any, errors: list[tuple[str, str]]
    ) -> "dict[str, InstrumentSpec]":
        """An instrument for every configured pair, at a plausible price; one error per pair
        the simulator cannot serve (naming the simulator: the real exchange may list it)."""
        out: dict[str, InstrumentSpec] = {}
        for i, text in enumerate(section.trading_pairs):
            try:
                key, spec = fake_cls.simulated_instrument(text)
            except LookupError as exc:
                errors.append((f"exchanges.{name}.trading_pairs[{i}]", f"--simulate cannot serve {text!r}: {exc}"))
                continue
            out[key] = spec
        return out
