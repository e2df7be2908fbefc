"""``--simulate`` serves the pairs the config asks for, at plausible prices, and says so when it
cannot (naming the simulator, not the exchange)."""

from __future__ import annotations

from typing import Any

import pytest

from aggcore import Aggregator
from aggcore.config import load_config
from aggcore.errors import ConfigError
from aggcore.plugins import load_plugins
from aggcore.runtime import Simulation
from aggcore.symbols import Instrument, SymbolTable
from aggcore.testing import wait_until
from aggcore.testing.market import reference_price

pytestmark = pytest.mark.anyio

PAIRS = {
    "binance": ["SOL/USDT", "DOGEUSDT"],
    "bybit": ["BTC/USDT:USDT", "XRPUSDT"],
    "okx": ["BTC-USDT-SWAP", "SOL-USDT"],
    "kraken": ["BTC/USDT", "XRP/USD"],
    "bitstamp": ["solusd"],
}


@pytest.fixture
def registry() -> Any:
    registry = load_plugins()
    missing = set(PAIRS) - set(registry.connectors)
    if missing:
        pytest.skip(f"plugins not installed: {', '.join(sorted(missing))}")
    return registry


async def test_any_pair_the_exchange_lists_gets_an_instrument_and_a_plausible_price(registry: Any) -> None:
    config = load_config({"exchanges": {name: {"trading_pairs": pairs} for name, pairs in PAIRS.items()}}, registry=registry)
    async with Simulation(config, registry) as simulated:
        async with Aggregator(simulated, registry=registry) as agg:

            def live() -> bool:
                return all(b.live for c in agg.connectors.values() for b in c.books.values()) and all(
                    len(c.books) == len(PAIRS[n]) for n, c in agg.connectors.items()
                )

            await wait_until(live, timeout=30, what="every configured pair LIVE")
            for name, connector in agg.connectors.items():
                for symbol, book in connector.books.items():
                    inst = connector.instrument(symbol)
                    ref = reference_price(inst.base if inst.base != "XBT" else "BTC", "USD")
                    assert ref is not None
                    best = book.book.bids.best()
                    assert best is not None and abs(best / ref - 1) < 0.02, f"{name} {symbol}: {best} vs {ref}"


async def test_a_pair_the_simulator_cannot_serve_is_an_error_naming_the_simulator(registry: Any) -> None:
    config = load_config(
        {"exchanges": {"binance": {"trading_pairs": ["FOO/USDT", "BTC/USDT"]}, "kraken": {"trading_pairs": ["BTC/USD:USD"]}}},
        registry=registry,
    )
    with pytest.raises(ConfigError) as info:
        async with Simulation(config, registry):
            pass
    assert [loc for loc, _ in info.value.errors] == ["exchanges.binance.trading_pairs[0]", "exchanges.kraken.trading_pairs[0]"]
    first, second = (msg for _, msg in info.value.errors)
    assert "--simulate cannot serve 'FOO/USDT': the simulator has no market price for FOO" in first
    assert "the simulated kraken lists no derivatives" in second


def test_suggestions_are_never_duplicated() -> None:
    # Kraken's symbols are spelled like pairs: each name once in "did you mean"
    table = SymbolTable([Instrument("BTC/USD", "BTC", "USD"), Instrument("ETH/USD", "ETH", "USD")])
    with pytest.raises(KeyError) as info:
        table.resolve("BTC/USDD")
    hint = str(info.value).split("did you mean ")[1]
    names = hint.rstrip("?'\"").split(", ")
    assert len(names) == len(set(names)) and "BTC/USD" in names


async def test_the_library_runs_offline_with_simulate_true(registry: Any) -> None:
    config = {"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}, "bitstamp": {"trading_pairs": ["BTC/USD"]}}}
    async with Aggregator(config, registry=registry, simulate=True) as agg:
        assert all(c.config.ws_url.startswith("ws://127.0.0.1:") for c in agg.connectors.values())  # type: ignore[union-attr]
        async for summary in agg.subscribe_summaries():
            if len(summary.venues) == 2:
                assert summary.spread is not None and abs(summary.bids[0].price / 60000 - 1) < 0.02
                break
    assert agg._simulation is None  # the fake exchanges are stopped with the aggregator


def test_the_simulation_section_configures_the_market(registry: Any) -> None:
    config = load_config(
        {"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}}, "simulation": {"seed": 3, "dislocation_every_s": None, "volatility": 0.8}},
        registry=registry,
    )
    sim = Simulation(config, registry)
    assert sim.market.dislocation_every_s is None and sim.market.volatility == 0.8 and sim.seed == 3
    with pytest.raises(ConfigError, match="simulation.dislocation_bp"):
        load_config({"simulation": {"dislocation_bp": -1}}, registry=registry)
