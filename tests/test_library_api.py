"""Library API edges a new user meets: an unconfigured pair is an error (None means "not ready
yet"), and the first metrics reading already has a rate."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import pytest

from aggcore import Aggregator, UnknownPairError
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy

pytestmark = pytest.mark.anyio


def registry() -> PluginRegistry:
    builtins = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.")]
    toy = EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")
    return load_plugins(entry_points=[*builtins, toy], disabled=())


async def test_an_unconfigured_pair_is_an_error_and_a_configured_one_is_none_until_ready() -> None:
    async with FakeToy(seed=4, rate_hz=100) as fake:
        section = fake.connector_config(stale_after_s=5, trading_pairs=["BTC/USDT"])
        agg = Aggregator({"exchanges": {"toy": section}}, registry=registry())
        assert agg.get_summary("BTC/USDT") is None  # configured, not started: not ready yet
        with pytest.raises(UnknownPairError, match=r"'DOGE/USDT' is not configured.*configured pairs: BTC/USDT"):
            agg.get_summary("DOGE/USDT")
        with pytest.raises(UnknownPairError):
            agg.subscribe_summaries("DOGE/USDT")
        with pytest.raises(LookupError):  # also a LookupError
            agg.get_summary("ETH/USDT")
        async with agg:
            await wait_until(lambda: agg.get_summary("BTC/USDT") is not None, what="a summary")
            assert agg.get_summary("BTCUSDT") is not None  # the exchange's spelling
            with pytest.raises(UnknownPairError):
                agg.get_summary("ETHUSDT")


async def test_the_first_metrics_reading_has_a_rate() -> None:
    async with FakeToy(seed=5, rate_hz=100) as fake:
        section = fake.connector_config(stale_after_s=5, trading_pairs=["BTC/USDT"])
        async with Aggregator({"exchanges": {"toy": section}}, registry=registry()) as agg:
            books = agg.connectors["toy"].books
            await wait_until(lambda: bool(books) and all(b.level_updates > 100 for b in books.values()), what="updates")
            first = agg.get_all_metrics()  # the first call: a rate since start, not 0.0
            assert first and all(m.level_updates > 100 and m.updates_per_second > 0 for m in first), first
