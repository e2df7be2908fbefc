"""Operator metrics: every documented metric exists in a scrape of a real ``--simulate`` run,
the Grafana dashboard queries only metrics that exist, and OpenMetrics is served on request."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggcore.plugins import load_plugins
from aggcore.telemetry import ERROR_KINDS, METRIC_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXCHANGES = ("kraken", "bitstamp", "coinbase")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, accept: str | None = None) -> tuple[str, str]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode()


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``aggcore run --simulate`` process with Prometheus on, scraped once it is LIVE."""
    if not set(EXCHANGES) <= set(load_plugins().connectors):
        pytest.skip(f"needs the {', '.join(EXCHANGES)} plugins")
    port = _free_port()
    config = tmp_path_factory.mktemp("metrics") / "config.json"
    config.write_text(
        json.dumps(
            {
                "exchanges": {name: {"trading_pairs": ["BTC/USD"]} for name in EXCHANGES},
                "aggregation": {"quote_groups": {"USD": ["USD", "USDT"]}},
                "monitoring": {"metrics": {"prometheus": {"enabled": True, "port": port}}},
                "sinks": {"file": {"path": str(config.parent / "events.jsonl"), "events": ["summary", "arbitrage"]}},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggcore.cli", "run", "--simulate", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 40
        text = ""
        while time.monotonic() < deadline:
            try:
                _, text = _get(url)
            except OSError:
                text = ""
            live = re.findall(r'^aggcore_book_state\{[^}]*state="LIVE"[^}]*\} 1', text, re.M)
            if len(live) == len(EXCHANGES) and "aggcore_mid{" in text and "aggcore_summary_latency_seconds_bucket{" in text:
                break
            time.sleep(0.5)
        ctype, openmetrics = _get(url, "application/openmetrics-text; version=1.0.0")
        yield {"text": text, "openmetrics": openmetrics, "openmetrics_type": ctype}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _names(text: str) -> set[str]:
    """Every sample name and every family name (``# TYPE``) in a scrape."""
    names = {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}
    names |= {m.group(1) for m in re.finditer(r"^# TYPE (\S+)", text, re.M)}
    return names


def _documented() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Metrics") :]
    following = re.search(r"^#{1,3} ", section[4:], re.M)  # the table ends at the next heading
    if following is not None:
        section = section[: following.start() + 4]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def test_every_documented_metric_is_scraped(scrape: dict[str, str]) -> None:
    names = _names(scrape["text"])
    documented = _documented()
    assert len(documented) >= 25
    missing = [n for n in documented if n not in names]
    assert not missing, f"documented in the README but not in a scrape: {missing}"
    for name in METRIC_NAMES:  # the code's own list is documented too (a counter's family has no _total)
        assert name in documented or f"{name}_total" in documented, f"{name} is not in the README's table"


def test_scrape_values_make_sense(scrape: dict[str, str]) -> None:
    text = scrape["text"]
    assert re.search(r'^aggcore_build_info\{[^}]*version="\d+\.\d+\.\d+[^"]*"[^}]*\} 1', text, re.M)
    assert re.search(r'^target_info\{[^}]*service_name="aggcore"', text, re.M)
    for exchange in EXCHANGES:
        for kind in ERROR_KINDS:  # pre-created at zero: rate() works from the first scrape
            assert re.search(rf'^aggcore_errors_total\{{[^}}]*exchange="{exchange}"[^}}]*kind="{kind}"', text, re.M), (exchange, kind)
        assert re.search(rf'^aggcore_exchange_up\{{exchange="{exchange}"\}} 1', text, re.M)
        # one state series per book, not one per state
        assert len(re.findall(rf'^aggcore_book_state\{{[^}}]*exchange="{exchange}"', text, re.M)) == 1
    bid = float(re.search(r'^aggcore_best_bid\{pair="BTC/USD"\} (\S+)', text, re.M).group(1))  # type: ignore[union-attr]
    ask = float(re.search(r'^aggcore_best_ask\{pair="BTC/USD"\} (\S+)', text, re.M).group(1))  # type: ignore[union-attr]
    mid = float(re.search(r'^aggcore_mid\{pair="BTC/USD"\} (\S+)', text, re.M).group(1))  # type: ignore[union-attr]
    assert bid > 0 and ask > 0 and mid == pytest.approx((bid + ask) / 2)
    assert re.search(r'^aggcore_summary_latency_seconds_bucket\{[^}]*pair="BTC/USD"', text, re.M)
    assert re.search(r"^process_resident_memory_bytes \d", text, re.M)
    assert re.search(r"^process_open_fds \d", text, re.M)


def test_openmetrics_on_request(scrape: dict[str, str]) -> None:
    assert scrape["openmetrics_type"].startswith("application/openmetrics-text")
    assert scrape["openmetrics"].rstrip().endswith("# EOF")
    assert "# TYPE aggcore_frames counter" in scrape["openmetrics"]


def test_grafana_dashboard_queries_only_existing_metrics(scrape: dict[str, str]) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    assert len(exprs) >= 15
    names = _names(scrape["text"])
    queried = {m for e in exprs for m in re.findall(r"\b((?:aggcore|process)_[a-z_]+)\b", e)}
    assert {"aggcore_book_state", "aggcore_book_age_seconds", "aggcore_spread", "aggcore_exchange_up"} <= queried
    missing = sorted(q for q in queried if q not in names)
    assert not missing, f"the Grafana dashboard queries metrics a scrape does not have: {missing}"
