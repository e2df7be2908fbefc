"""The ``aggcore`` command: ``plugins`` and ``validate`` (and ``run`` up to the runtime).

Plugins are discovered for real: a fake distribution (``*.dist-info`` + module) is written to
``tmp_path`` and put on ``sys.path``, where ``importlib.metadata`` finds its entry points.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from aggcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = {"stdout", "file", "webhook", "console", "summary", "arbitrage"}

FAKE = """
from aggcore.hookspecs import hookimpl
from aggcore.connector import Connector


class FakeExConnector(Connector):
    name = "fakeex"


@hookimpl
def aggcore_register_connectors():
    return [FakeExConnector]
"""


def install(site: Path, dist: str, ep_name: str, source: str) -> None:
    module = dist.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.9\n")
    (info / "entry_points.txt").write_text(f"[aggcore]\n{ep_name} = {module}\n")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger; put it back so later tests see pytest's set-up."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on sys.path with the ``fakeex`` connector and a broken plugin installed."""
    for var in ("AGGCORE_DISABLE_PLUGINS", "AGGCORE_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "site"
    root.mkdir()
    install(root, "aggcore-plugin-fakeex", "fakeex", FAKE)
    install(root, "aggcore-plugin-broken", "broken", "raise ImportError('missing dependency: libfoo')\n")
    monkeypatch.syspath_prepend(str(root))
    return root


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- plugins ----------------------------------------------------------------------------------------


def test_plugins_all_json(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--all", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert BUILTINS <= set(rows)
    assert rows["stdout"] == {
        "name": "stdout",
        "distribution": "aggcore",
        "version": rows["stdout"]["version"],
        "provides": ["sink:stdout"],
        "status": "ok",
        "builtin": True,
        "entry_point": "aggcore.builtins.stdout_plugin",
        "warning": None,
    }
    assert rows["fakeex"]["distribution"] == "aggcore-plugin-fakeex" and rows["fakeex"]["version"] == "0.9"
    assert rows["fakeex"]["provides"] == ["connector:fakeex"] and rows["fakeex"]["status"] == "ok"
    assert rows["broken"]["provides"] == [] and "missing dependency: libfoo" in rows["broken"]["status"]


def test_plugins_without_all_hides_builtins(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"fakeex", "broken"} <= names and not names & BUILTINS


def test_plugins_table(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "PROVIDES", "STATUS"]
    fakeex = next(line for line in out if line.startswith("fakeex "))
    assert fakeex.split() == ["fakeex", "aggcore-plugin-fakeex", "0.9", "connector:fakeex", "ok"]
    assert any(line.startswith("stdout ") and "sink:stdout" in line for line in out)


def test_plugins_disabled_and_strict(site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGGCORE_DISABLE_PLUGINS", "broken,stdout")
    assert main(["plugins", "--all", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["status"] == rows["stdout"]["status"] == "disabled"

    monkeypatch.delenv("AGGCORE_DISABLE_PLUGINS")
    assert main(["--strict-plugins", "plugins"]) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "aggcore-plugin-broken" in err and "libfoo" in err
    assert main(["plugins", "--strict-plugins"]) == 1  # the option also works after the command


# -- validate ---------------------------------------------------------------------------------------


def test_validate_ok(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        """
        exchanges:
          fakeex: {trading_pairs: [BTC/USDT, ETH/USDT]}
        aggregation: {max_price_levels: 5}
        sinks:
          file: {}
        """,
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out and "fakeex (2 pairs)" in out


def test_validate_reports_every_error_with_its_key_path(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        """
        exchanges:
          fakeex:
            trading_pairs: [BTC/USDT, 7.5]
            enabeld: true
          broken: {}
        aggregation:
          max_price_level: 20
        """,
    )
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert f"{path}: exchanges.fakeex.trading_pairs[1]: Input should be a valid string" in err
    assert f"{path}: exchanges.fakeex.enabeld: unknown key (did you mean 'enabled'?)" in err
    assert f"{path}: aggregation.max_price_level: unknown key (did you mean 'max_price_levels'?)" in err
    assert f"{path}: exchanges.broken: unknown exchange 'broken'" in err and "libfoo" in err
    assert f"{path}: 4 errors" in err


def test_validate_missing_file(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_validate_spec_example_against_the_installed_plugins(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed state: exit 0 with Binance and Bybit installed, else 2 naming exactly the missing ones."""
    monkeypatch.delenv("AGGCORE_DISABLE_PLUGINS", raising=False)
    installed = {ep.name for ep in entry_points(group="aggcore")}
    code = main(["validate", str(ROOT / "examples" / "spec.json")])
    captured = capsys.readouterr()
    missing = sorted({"binance", "bybit"} - installed)
    if not missing:
        assert code == 0, captured.err
        assert "binance (2 pairs), bybit (2 pairs)" in captured.out
    else:
        assert code == 2
        named = {line.split(": ")[1] for line in captured.err.splitlines() if "unknown exchange" in line}
        assert named == {f"exchanges.{name}" for name in missing}


# -- run (up to the runtime) --------------------------------------------------------------------------


def test_run_with_a_bad_config_exits_2_before_starting(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "monitoring: {health_check_interval_ms: soon}\n")
    assert main(["run", str(path), "--log-format", "json"]) == 2
    assert "monitoring.health_check_interval_ms" in capsys.readouterr().err


def test_run_hands_config_and_registry_to_the_runtime(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aggcore.runtime

    seen: dict[str, object] = {}

    def fake_run_cli(
        config: object, registry: object, *, simulate: bool, live: bool, role: object = None, **kwargs: object
    ) -> int:
        seen.update(config=config, registry=registry, simulate=simulate, live=live, role=role)
        return 0

    monkeypatch.setattr(aggcore.runtime, "run_cli", fake_run_cli)
    path = write(tmp_path, "exchanges: {fakeex: {trading_pairs: [BTC/USDT]}}\nlogging: {level: DEBUG}\n")
    assert main(["run", str(path), "--simulate"]) == 0
    assert seen["simulate"] is True and seen["live"] is False
    assert list(seen["config"].exchanges) == ["fakeex"]  # type: ignore[attr-defined]
    assert "fakeex" in seen["registry"].connectors  # type: ignore[attr-defined]


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    assert main(["--log-level", "LOUD", "plugins"]) == 2
    assert "unknown log level" in capsys.readouterr().err


def test_plugins_check_runs_the_conformance_suite_on_an_installed_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    from aggcore.cli import main
    from aggcore.plugins import load_plugins

    if "binance" not in load_plugins().connectors:
        pytest.skip("the binance plugin is not installed")
    assert main(["plugins", "check", "binance", "--check", "live", "--check", "fault:gap"]) == 0
    out = capsys.readouterr().out
    assert "PASS  binance live" in out and "PASS  binance fault:gap" in out and "2 passed, 0 failed" in out


def test_plugins_check_unknown_plugin_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from aggcore.cli import main

    assert main(["plugins", "check", "nosuchexchange"]) == 2
    assert "no connector plugin 'nosuchexchange'" in capsys.readouterr().err
