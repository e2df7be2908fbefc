"""The dashboard in a real browser: headless Chromium driven by Selenium against a --simulate run.

One scenario, step by step (the browser starts once): the ladder fills with levels from
several venues and every tile shows LIVE; a venue whose fake exchange is stopped turns STALE
or RESYNCING; an arbitrage row appears when the fakes are set to cross; the page says the
connection is lost when aggcore stops and recovers by itself when it starts again. Each step
saves a screenshot under ``test-artifacts/dashboard/`` (git-ignored).

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian ``chromium``, ``chromium-driver``;
``.ci/run`` installs them): skipped with the reason when missing, failed under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aggcore.aggregator import Aggregator
from aggcore.config import load_config
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.runtime import Simulation

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

ARTIFACTS = Path(os.environ.get("AGGCORE_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "test-artifacts")) / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
VENUES = ("binance", "bybit", "kraken")


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"a real browser is needed: missing {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _driver(profile: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


class Page:
    """Selenium calls run in a worker thread: the event loop keeps serving the page meanwhile."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def get(self, url: str) -> None:
        await anyio.to_thread.run_sync(self.driver.get, url)

    async def js(self, script: str) -> Any:
        return await anyio.to_thread.run_sync(self.driver.execute_script, script)

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await anyio.to_thread.run_sync(self.driver.save_screenshot, str(path))
        return path

    async def wait_for(self, script: str, check: Callable[[Any], bool], what: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.js(script)
            if check(value):
                return value
            await anyio.sleep(0.25)
        await self.shot(f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"the page never showed {what}; last seen: {value!r}")


TILES = "return Object.fromEntries(Array.from(document.querySelectorAll('.tile')).map(t => [t.dataset.venue, t.dataset.state]))"
LADDER = "return Array.from(document.querySelectorAll('#ladder tr.level')).map(r => r.dataset.venue)"
ARBS = "return Array.from(document.querySelectorAll('#arb-feed tr')).map(r => r.className)"
LADDER_TEXT = "return document.getElementById('ladder').innerText"
PAIRS = "return document.getElementById('pair-label').classList.contains('hidden') ? [] : Array.from(document.querySelectorAll('#pair option')).map(o => o.value)"
RATE = "return document.querySelector('.tile[data-venue=binance] .msgs .v')?.textContent"
LOST = "return !document.getElementById('lost').classList.contains('hidden')"


def _config(registry: PluginRegistry, port: int) -> Any:
    return load_config(
        {
            "exchanges": {
                "binance": {"trading_pairs": ["BTC/USDT", "ETH/USDT"]},
                "bybit": {"trading_pairs": ["BTC/USDT", "ETH/USDT"]},
                "kraken": {"trading_pairs": ["BTC/USD"]},
            },
            "aggregation": {"quote_groups": {"USD": ["USD", "USDT"]}, "max_age_ms": 2000},
            "monitoring": {"health_check_interval_ms": 500},
            "analyzers": {"summary": {}, "arbitrage": {"default_taker_fee": 0.0005}},
            "sinks": {"dashboard": {"port": port, "push_interval_ms": 100}},
        },
        registry=registry,
    )


def _cross(sim: Simulation, venue: str) -> None:
    """Move one venue's market 150 bp above the others (the simulation's public control): its
    bids cross their asks by more than the taker fees; it decays by itself within seconds."""
    fake = sim.fakes[venue]
    for sym in fake.books:
        spec = fake.specs[sym]
        sim.market.dislocate(venue, spec.base, spec.quote, 150.0)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    _need_browser()
    with tempfile.TemporaryDirectory(prefix="aggcore-chromium-") as profile:
        driver = await anyio.to_thread.run_sync(_driver, profile)
        try:
            yield Page(driver)
        finally:
            await anyio.to_thread.run_sync(driver.quit)


async def test_dashboard_in_a_real_browser(page: Page) -> None:
    registry = load_plugins()
    if "dashboard" not in registry.sinks:
        pytest.fail(f"the dashboard plugin did not load: {registry.why_missing('dashboard')}")

    sim = Simulation(_config(registry, 0), registry, dislocation_every_s=None)  # only the crossing we set
    async with sim as config:
        agg = Aggregator(config, registry=registry)
        await agg.start()
        try:
            port = agg.hub.sinks[0].sink.port  # type: ignore[attr-defined]
            await page.get(f"http://127.0.0.1:{port}/")

            # 1. the ladder fills with levels of several venues; every tile is LIVE
            await page.wait_for(LADDER, lambda v: len(set(v)) >= 2, "ladder levels from several venues")
            await page.wait_for(TILES, lambda v: all(v.get(x) == "LIVE" for x in VENUES), "LIVE on every tile")
            assert not await page.js(LOST)
            await page.wait_for(RATE, lambda v: v not in (None, "", "–"), "a message rate on binance's tile")
            await page.shot("1-live")

            # live without reloading: the ladder keeps changing while this page object stays
            await page.js("window.__sameDocument = true")
            seen: set[str] = set()
            await page.wait_for(
                LADDER_TEXT, lambda v: seen.add(v) or len(seen) >= 3, "the ladder changing by itself"
            )
            assert await page.js("return window.__sameDocument === true")

            # a pair picker when several pairs run
            pairs = await page.wait_for(PAIRS, lambda v: v == ["BTC/USD", "ETH/USD"], "the pair picker")
            assert pairs
            await page.js(
                "const s = document.getElementById('pair'); s.value = 'ETH/USD'; s.dispatchEvent(new Event('change'))"
            )
            await page.wait_for(
                "return document.getElementById('ladder-pair').textContent", lambda v: v == "ETH/USD", "ETH/USD's ladder"
            )
            await page.wait_for(LADDER, lambda v: len(set(v)) >= 2, "ETH/USD levels from several venues")
            await page.js(
                "const s = document.getElementById('pair'); s.value = 'BTC/USD'; s.dispatchEvent(new Event('change'))"
            )

            # 2. a venue whose fake exchange stops turns STALE or RESYNCING within seconds
            await sim.fakes["kraken"].stop()
            await page.wait_for(
                TILES, lambda v: v.get("kraken") in ("STALE", "RESYNCING"), "kraken STALE or RESYNCING", timeout=15
            )
            tiles = await page.js(TILES)
            assert tiles["binance"] == "LIVE" and tiles["bybit"] == "LIVE", tiles
            await page.wait_for(LADDER, lambda v: bool(v) and "kraken" not in v, "a ladder without kraken")
            await page.shot("2-venue-stopped")

            # 3. an arbitrage row appears when the fakes are set to cross
            _cross(sim, "bybit")
            await page.wait_for(ARBS, lambda v: any("opened" in c for c in v), "an opened arbitrage row")
            await page.shot("3-arbitrage")
        finally:
            await agg.stop()

        # 4. aggcore stops: the page says so; it starts again on the same port: the page recovers
        await page.wait_for(LOST, bool, "the connection-lost banner", timeout=10)
        await page.shot("4-connection-lost")
        agg = Aggregator(_config(registry, port).model_copy(update={"exchanges": config.exchanges}), registry=registry)
        await agg.start()
        try:
            await page.wait_for(LOST, lambda v: not v, "the page reconnected", timeout=15)
            await page.wait_for(TILES, lambda v: v.get("binance") == "LIVE", "binance LIVE after the restart")
            await page.wait_for(LADDER, lambda v: len(v) > 0, "the ladder after the restart")
            await page.shot("5-recovered")
        finally:
            await agg.stop()
