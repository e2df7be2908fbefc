"""Configuration: the specification example, YAML/JSON, substitution, overrides, errors, secrets.

Connectors come from fake plugins (real distributions written to ``tmp_path``), so these
tests do not depend on which exchange plugins are installed.
"""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from importlib.metadata import EntryPoint, PathDistribution
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from aggcore.config import AggregationConfig, AppConfig, load_config
from aggcore.errors import ConfigError
from aggcore.plugins import PluginRegistry, load_plugins

ROOT = Path(__file__).resolve().parents[1]

SPEC_EXAMPLE = """
{
  "exchanges": {
    "binance": {"enabled": true, "api_key": "your_api_key", "api_secret": "your_api_secret",
                "trading_pairs": ["BTCUSDT", "ETHUSDT"],
                "rate_limit": {"requests_per_second": 10, "burst_size": 20}},
    "bybit": {"enabled": true, "trading_pairs": ["BTCUSDT", "ETHUSDT"],
              "rate_limit": {"requests_per_second": 5, "burst_size": 10}}
  },
  "aggregation": {"summary_interval_ms": 1000, "max_price_levels": 20},
  "monitoring": {"health_check_interval_ms": 5000,
                 "metrics": {"enabled": true, "prometheus": {"enabled": true, "port": 9090}}}
}
"""

FAKE_PLUGIN = """
from pydantic import Field, SecretStr
from aggcore.hookspecs import hookimpl
from aggcore.connector import Connector, ConnectorConfig
from aggcore.sink import Sink, SinkConfig


class FakeConfig(ConnectorConfig):
    category: str = Field("spot", description="a plugin-specific key")


def connector(exchange):
    return type(exchange.title() + "Connector", (Connector,), {"name": exchange, "Config": FakeConfig})


class HookConfig(SinkConfig):
    url: str
    secret: SecretStr | None = None


class HookSink(Sink):
    name = "hook"
    Config = HookConfig


@hookimpl
def aggcore_register_connectors():
    return [connector(n) for n in NAMES]


@hookimpl
def aggcore_register_sinks():
    return [HookSink]
"""


def fake_entry_point(root: Path, names: list[str], *, body: str = FAKE_PLUGIN, ep_name: str = "fakes") -> EntryPoint:
    module = f"fakecfg_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(f"NAMES = {names!r}\n" + textwrap.dedent(body))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[aggcore]\n{ep_name} = {module}\n")
    (ep,) = PathDistribution(info).entry_points
    return ep


def builtin_entry_points() -> list[EntryPoint]:
    return [ep for ep in installed_entry_points(group="aggcore") if ep.dist is not None and ep.dist.name == "aggcore"]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginRegistry:
    """Built-ins plus fake connectors binance, bybit, kraken and a fake sink ``hook``."""
    for var in ("AGGCORE_DISABLE_PLUGINS", "AGGCORE_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    eps = builtin_entry_points() + [fake_entry_point(root, ["binance", "bybit", "kraken"])]
    reg = load_plugins(entry_points=eps, strict=True)
    return reg


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return dict(exc.value.errors)


# -- the specification example -------------------------------------------------------------------


def test_spec_example_loads_unchanged_and_means_what_it_says(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path, "config.json", SPEC_EXAMPLE)
    cfg = load_config(path, registry=registry, environ={})
    assert set(cfg.exchanges) == {"binance", "bybit"}
    binance, bybit = cfg.exchanges["binance"], cfg.exchanges["bybit"]
    assert type(binance).__name__ == "FakeConfig"  # validated by the plugin's own model
    assert binance.enabled and bybit.enabled
    assert binance.trading_pairs == ["BTCUSDT", "ETHUSDT"] == bybit.trading_pairs
    assert isinstance(binance.api_key, SecretStr) and binance.api_key.get_secret_value() == "your_api_key"
    assert binance.api_secret is not None and binance.api_secret.get_secret_value() == "your_api_secret"
    assert bybit.api_key is None
    assert (binance.rate_limit.requests_per_second, binance.rate_limit.burst_size) == (10, 20)
    assert (bybit.rate_limit.requests_per_second, bybit.rate_limit.burst_size) == (5, 10)
    assert cfg.aggregation.summary_interval_ms == 1000 and cfg.aggregation.max_price_levels == 20
    assert cfg.monitoring.health_check_interval_ms == 5000
    assert cfg.monitoring.metrics.enabled
    prom = cfg.monitoring.metrics.prometheus
    assert prom.enabled and prom.port == 9090 and prom.host == "127.0.0.1"
    # no analyzers section: summary and arbitrage run with their defaults; no sinks: runtime default
    assert list(cfg.analyzers) == ["summary", "arbitrage"]
    assert type(cfg.analyzers["summary"]) is registry.analyzers["summary"].Config
    assert cfg.sinks == {}


def test_spec_example_files_in_the_repo(registry: PluginRegistry) -> None:
    as_json = load_config(ROOT / "examples" / "spec.json", registry=registry, environ={})
    as_yaml = load_config(ROOT / "examples" / "spec.yaml", registry=registry, environ={})
    assert json.loads((ROOT / "examples" / "spec.json").read_text()) == json.loads(SPEC_EXAMPLE)
    assert as_json.model_dump() == as_yaml.model_dump()


def test_yaml_twin_and_dict_source(tmp_path: Path, registry: PluginRegistry) -> None:
    data = json.loads(SPEC_EXAMPLE)
    path = write(tmp_path, "config.yaml", yaml.safe_dump(data))
    from_yaml = load_config(path, registry=registry, environ={})
    from_dict = load_config(data, registry=registry, environ={})
    assert from_yaml.model_dump() == from_dict.model_dump()
    assert data == json.loads(SPEC_EXAMPLE)  # the caller's mapping is not modified


def test_demo_config_names_all_seven_exchanges_with_two_pairs() -> None:
    data = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    exchanges = data["exchanges"]
    assert set(exchanges) == {"binance", "bybit", "coinbase", "kraken", "okx", "cryptocom", "bitstamp"}
    assert all(len(section["trading_pairs"]) == 2 for section in exchanges.values())
    assert "sinks" not in data and {"aggregation", "monitoring"} <= set(data)


def test_defaults_without_a_file() -> None:
    cfg = AppConfig()
    assert cfg.aggregation == AggregationConfig()
    assert cfg.aggregation.max_age_ms == 5000 and cfg.aggregation.analyze_interval_ms == 10
    assert cfg.monitoring.metrics.prometheus.enabled is False
    assert cfg.logging.level == "INFO" and cfg.logging.format == "human"
    assert list(cfg.analyzers) == ["summary", "arbitrage"]


def test_explicit_analyzers_section_replaces_the_defaults(registry: PluginRegistry) -> None:
    cfg = load_config({"analyzers": {"arbitrage": {"min_profit_percentage": 0.1}}}, registry=registry, environ={})
    assert list(cfg.analyzers) == ["arbitrage"]
    assert cfg.analyzers["arbitrage"].min_profit_percentage == 0.1  # type: ignore[attr-defined]


# -- ${VAR} substitution -------------------------------------------------------------------------------


def test_every_substitution_form(registry: PluginRegistry) -> None:
    data = {
        "exchanges": {
            "binance": {
                "api_key": "${KEY}",
                "api_secret": "${SECRET:?set SECRET to the Binance API secret}",
                "ws_url": "wss://${HOST:-stream.example.com}:${PORT:-443}/ws",
                "rest_url": "${EMPTY:-https://api.example.com}",
                "category": "$${LITERAL}",
            }
        },
        "aggregation": {"max_price_levels": "${LEVELS}"},
    }
    env = {"KEY": "k-123", "SECRET": "s-456", "PORT": "9443", "EMPTY": "", "LEVELS": "7"}
    cfg = load_config(data, registry=registry, environ=env)
    b = cfg.exchanges["binance"]
    assert b.api_key is not None and b.api_key.get_secret_value() == "k-123"
    assert b.api_secret is not None and b.api_secret.get_secret_value() == "s-456"
    assert b.ws_url == "wss://stream.example.com:9443/ws"  # unset -> default; set -> value
    assert b.rest_url == "https://api.example.com"  # empty -> default
    assert b.category == "${LITERAL}"  # type: ignore[attr-defined]
    assert cfg.aggregation.max_price_levels == 7  # a substituted string is converted by the model


def test_missing_variables_are_errors_with_key_paths(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        """
        exchanges:
          binance:
            api_key: ${BINANCE_KEY}
            api_secret: ${BINANCE_SECRET:?export BINANCE_SECRET first}
            trading_pairs: ["${PAIR}", "ETH/USDT"]
            rest_url: ${bad name}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry=registry, environ={"BINANCE_SECRET": ""})
    errors = errors_of(caught)
    assert "environment variable BINANCE_KEY is not set" in errors["exchanges.binance.api_key"]
    assert errors["exchanges.binance.api_secret"] == "environment variable BINANCE_SECRET is not set: export BINANCE_SECRET first"
    assert "PAIR" in errors["exchanges.binance.trading_pairs[0]"]
    assert "invalid substitution" in errors["exchanges.binance.rest_url"]
    assert f"{path}: exchanges.binance.api_key: environment variable BINANCE_KEY" in str(caught.value)


# -- AGGCORE_SECTION__KEY overrides --------------------------------------------------------------------


def test_environment_overrides(registry: PluginRegistry) -> None:
    env = {
        "AGGCORE_AGGREGATION__MAX_PRICE_LEVELS": "10",
        "AGGCORE_EXCHANGES__BINANCE__ENABLED": "false",
        "AGGCORE_EXCHANGES__BYBIT__TRADING_PAIRS": '["BTC/USDT", "SOL/USDT"]',
        "AGGCORE_EXCHANGES__BINANCE__RATE_LIMIT__BURST_SIZE": "5",
        "AGGCORE_MONITORING__METRICS__PROMETHEUS__PORT": "9100",
        "AGGCORE_LOGGING__FORMAT": "json",
        "AGGCORE_STRICT_PLUGINS": "0",  # no "__": not an override
    }
    cfg = load_config(json.loads(SPEC_EXAMPLE), registry=registry, environ=env)
    assert cfg.aggregation.max_price_levels == 10
    assert cfg.exchanges["binance"].enabled is False
    assert cfg.exchanges["binance"].rate_limit.burst_size == 5
    assert cfg.exchanges["binance"].rate_limit.requests_per_second == 10  # the rest of the section stays
    assert cfg.exchanges["bybit"].trading_pairs == ["BTC/USDT", "SOL/USDT"]
    assert cfg.monitoring.metrics.prometheus.port == 9100 and cfg.monitoring.metrics.prometheus.enabled
    assert cfg.logging.format == "json"
    assert set(cfg.enabled_exchanges) == {"bybit"}


def test_override_errors_name_the_variable(registry: PluginRegistry) -> None:
    env = {"AGGCORE_AGGREGATION__MAX_PRICE_LEVELS": "many", "AGGCORE_AGGREGATION__NO_SUCH_KEY": "1"}
    with pytest.raises(ConfigError) as caught:
        load_config({}, registry=registry, environ=env)
    errors = errors_of(caught)
    assert "integer" in errors["aggregation.max_price_levels"]
    assert "(set by AGGCORE_AGGREGATION__MAX_PRICE_LEVELS)" in errors["aggregation.max_price_levels"]
    assert "unknown key" in errors["aggregation.no_such_key"]


# -- errors -----------------------------------------------------------------------------------------


def test_unknown_keys_are_rejected_with_their_key_path(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        """
        exchanges:
          binance:
            enabeld: true
            trading_pairs: [BTC/USDT]
            rate_limit: {requests_per_second: 10, burst: 20}
        aggregation:
          max_price_level: 20
        monitorin: {}
        sinks:
          hook: {url: "http://example.invalid", retries: 3}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry=registry, environ={})
    errors = errors_of(caught)
    assert set(errors) == {
        "exchanges.binance.enabeld",
        "exchanges.binance.rate_limit.burst",
        "aggregation.max_price_level",
        "monitorin",
        "sinks.hook.retries",
    }
    assert "did you mean 'enabled'" in errors["exchanges.binance.enabeld"]
    assert "category" in errors["exchanges.binance.enabeld"]  # the plugin's own keys are listed
    assert "did you mean 'burst_size'" in errors["exchanges.binance.rate_limit.burst"]
    assert "did you mean 'max_price_levels'" in errors["aggregation.max_price_level"]
    assert "did you mean 'monitoring'" in errors["monitorin"]
    message = str(caught.value)
    assert message.startswith(f"{path}: 5 configuration errors")
    assert f"{path}: exchanges.binance.enabeld: unknown key" in message


def test_wrong_values_name_the_list_index(registry: PluginRegistry) -> None:
    data = {
        "exchanges": {"binance": {"trading_pairs": ["BTC/USDT", 42, None]}},
        "aggregation": {"max_price_levels": 0},
        "monitoring": {"metrics": {"prometheus": {"port": "http"}}},
        "logging": {"format": "xml"},
        "sinks": {"hook": {}},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(data, registry=registry, environ={})
    errors = errors_of(caught)
    assert "valid string" in errors["exchanges.binance.trading_pairs[1]"]
    assert "exchanges.binance.trading_pairs[2]" in errors
    assert "greater than or equal to 1" in errors["aggregation.max_price_levels"]
    assert "integer" in errors["monitoring.metrics.prometheus.port"]
    assert "'human' or 'json'" in errors["logging.format"]
    assert errors["sinks.hook.url"] == "required key is missing"
    assert str(caught.value).startswith("<config>: 6 configuration errors")


def test_unknown_exchange_lists_installed_and_says_why_a_plugin_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        fake_entry_point(tmp_path, ["kraken", "bybit"]),
        fake_entry_point(tmp_path, [], body="raise ImportError('needs libfoo')", ep_name="okx"),
    ]
    reg = load_plugins(entry_points=eps, strict=False, disabled=[])
    data = {"exchanges": {"binance": {}, "okx": {}, "huobi": {"enabled": False}}}
    with pytest.raises(ConfigError) as caught:
        load_config(data, registry=reg, environ={})
    errors = errors_of(caught)
    assert set(errors) == {"exchanges.binance", "exchanges.okx"}  # a disabled, uninstalled one is fine
    assert "unknown exchange 'binance'" in errors["exchanges.binance"]
    assert "installed exchanges: bybit, kraken" in errors["exchanges.binance"]
    assert "aggcore-plugin-binance" in errors["exchanges.binance"]
    assert "plugin okx" in errors["exchanges.okx"] and "needs libfoo" in errors["exchanges.okx"]


def test_file_problems(tmp_path: Path, registry: PluginRegistry) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml", registry=registry, environ={})
    assert "file not found" in str(caught.value)
    bad_yaml = write(tmp_path, "bad.yaml", "exchanges:\n  binance: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad_yaml, registry=registry, environ={})
    assert "invalid YAML" in str(caught.value) and "line" in str(caught.value)
    bad_json = write(tmp_path, "bad.json", '{"exchanges": }')
    with pytest.raises(ConfigError) as caught:
        load_config(bad_json, registry=registry, environ={})
    assert "invalid JSON" in str(caught.value)
    not_a_mapping = write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError) as caught:
        load_config(not_a_mapping, registry=registry, environ={})
    assert "expected a mapping" in str(caught.value)
    assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, Exception)


# -- secrets ----------------------------------------------------------------------------------------

SECRETS = ("sk-live-AAAA", "sk-live-BBBB", "whsec-CCCC")


def test_secrets_never_appear_in_repr_dump_or_logs(registry: PluginRegistry, caplog: pytest.LogCaptureFixture) -> None:
    data: dict[str, Any] = {
        "exchanges": {"binance": {"api_key": "${K}", "api_secret": SECRETS[1]}},
        "sinks": {"hook": {"url": "http://example.invalid", "secret": SECRETS[2]}},
    }
    caplog.set_level(logging.DEBUG)
    cfg = load_config(data, registry=registry, environ={"K": SECRETS[0]})
    logging.getLogger("aggcore.test").info("config: %s / %r", cfg, cfg)
    shown = [repr(cfg), str(cfg), cfg.model_dump_json(), json.dumps(cfg.model_dump(mode="json")), caplog.text]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text
    assert cfg.sinks["hook"].secret.get_secret_value() == SECRETS[2]  # type: ignore[attr-defined]


def test_secrets_never_appear_in_errors(registry: PluginRegistry, caplog: pytest.LogCaptureFixture) -> None:
    data = {
        "exchanges": {"binance": {"api_key": {"value": SECRETS[0]}, "api_secrett": SECRETS[1], "depth": SECRETS[2]}},
    }
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as caught:
        load_config(data, registry=registry, environ={})
    assert set(dict(caught.value.errors)) == {
        "exchanges.binance.api_key",
        "exchanges.binance.api_secrett",
        "exchanges.binance.depth",
    }
    for text in (str(caught.value), repr(caught.value), repr(caught.value.errors), caplog.text):
        for secret in SECRETS:
            assert secret not in text
