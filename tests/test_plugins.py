"""Plugin loader: isolation per entry point, disable, strict, built-ins, no global state.

Fake plugins are real distributions written to ``tmp_path`` (a ``*.dist-info`` folder with
METADATA and entry_points.txt, plus the plugin module); their entry points come from
``importlib.metadata.PathDistribution`` and are injected with ``load_plugins(entry_points=...)``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from importlib.metadata import EntryPoint, PathDistribution
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path

import pytest

from aggcore.errors import PluginError
from aggcore.plugins import load_plugins

HEADER = """
from aggcore.hookspecs import hookimpl
from aggcore.connector import Connector, ConnectorConfig
from aggcore.sink import Sink, SinkConfig
from aggcore.analyzer import Analyzer
"""

GOOD_CONNECTOR = """
class FakeConnector(Connector):
    name = "{name}"

@hookimpl
def aggcore_register_connectors():
    return [FakeConnector]
"""


def make_plugin(
    root: Path, name: str, body: str, *, dist: str | None = None, version: str = "1.2.3"
) -> EntryPoint:
    """Write a one-module distribution under ``root``; return its entry point ``name``."""
    module = f"fakeplug_{name}_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(HEADER + textwrap.dedent(body).replace("{name}", name))
    dist = dist or f"aggcore-plugin-{name}"
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[aggcore]\n{name} = {module}\n")
    (ep,) = PathDistribution(info).entry_points
    return ep


@pytest.fixture
def plug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AGGCORE_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("AGGCORE_DISABLE_PLUGINS", raising=False)

    def factory(name: str, body: str = GOOD_CONNECTOR, **kw: str) -> EntryPoint:
        return make_plugin(tmp_path, name, body, **kw)

    return factory


def test_good_plugin_is_reported_with_distribution_version_and_provides(plug) -> None:  # type: ignore[no-untyped-def]
    reg = load_plugins(entry_points=[plug("alpha")])
    assert list(reg.connectors) == ["alpha"]
    (info,) = reg.plugins
    assert (info.name, info.distribution, info.version, info.status, info.builtin) == (
        "alpha", "aggcore-plugin-alpha", "1.2.3", "ok", False
    )
    assert info.provides == ["connector:alpha"]
    assert reg.failures == {}


def test_broken_import_is_isolated(plug) -> None:  # type: ignore[no-untyped-def]
    eps = [plug("broken", "raise RuntimeError('boom at import')"), plug("alpha")]
    reg = load_plugins(entry_points=eps)
    assert list(reg.connectors) == ["alpha"]
    bad = reg.failures["broken"]
    assert bad.distribution == "aggcore-plugin-broken" and bad.version == "1.2.3"
    assert "RuntimeError: boom at import" in bad.status
    assert bad.provides == []


@pytest.mark.parametrize(
    "body",
    [
        # marked as a hook implementation, but no such hook: pluggy's check_pending
        "@hookimpl\ndef aggcore_register_conectors():\n    return []\n",
        # the right prefix without the marker: caught by our own check
        "def aggcore_register_conectors():\n    return []\n",
        # the right name without the marker: pluggy would silently ignore it
        "def aggcore_register_connectors():\n    return []\n",
    ],
    ids=["marked", "unmarked", "not-marked-at-all"],
)
def test_misspelled_hook_is_reported(plug, body: str) -> None:  # type: ignore[no-untyped-def]
    reg = load_plugins(entry_points=[plug("typo", body), plug("alpha")])
    assert "typo" in reg.failures
    status = reg.failures["typo"].status
    assert "aggcore_register_conectors" in status or "@hookimpl" in status
    assert list(reg.connectors) == ["alpha"]
    assert reg.manager is not None and reg.manager.get_plugin("typo") is None  # unregistered


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@hookimpl\ndef aggcore_register_connectors():\n    return FakeConnector\n", "must return a list"),
        ("@hookimpl\ndef aggcore_register_connectors():\n    return ['binance']\n", "not a class"),
        ("@hookimpl\ndef aggcore_register_connectors():\n    return [FakeSink]\n", "not a Connector subclass"),
        ("@hookimpl\ndef aggcore_register_sinks():\n    return [FakeConnector]\n", "not a Sink subclass"),
        ("@hookimpl\ndef aggcore_register_analyzers():\n    return [Nameless]\n", "has no 'name'"),
        ("@hookimpl\ndef aggcore_register_sinks():\n    return [LaxSink]\n", "extra='forbid'"),
        ("@hookimpl\ndef aggcore_register_connectors():\n    raise ValueError('nope')\n", "raised ValueError: nope"),
    ],
)
def test_wrong_return_is_reported(plug, body: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    classes = """

class FakeConnector(Connector):
    name = "c"

class FakeSink(Sink):
    name = "s"

class Nameless(Analyzer):
    pass

class LaxConfig(SinkConfig):
    model_config = {"extra": "allow"}

class LaxSink(Sink):
    name = "lax"
    Config = LaxConfig

"""
    reg = load_plugins(entry_points=[plug("wrong", classes + body), plug("alpha")])
    assert expected in reg.failures["wrong"].status
    assert list(reg.connectors) == ["alpha"] and reg.sinks == {} and reg.analyzers == {}


def test_registration_is_all_or_nothing(plug) -> None:  # type: ignore[no-untyped-def]
    body = GOOD_CONNECTOR + "\n@hookimpl\ndef aggcore_register_sinks():\n    return [42]\n"
    reg = load_plugins(entry_points=[plug("half", body)])
    assert reg.connectors == {} and "half" in reg.failures


def test_duplicate_name_keeps_the_first_and_names_it(plug) -> None:  # type: ignore[no-untyped-def]
    first = plug("alpha")
    second = plug("beta", GOOD_CONNECTOR, dist="someone-else")
    # beta registers a connector called "beta" normally; make it claim "alpha" instead
    dup = plug("gamma", GOOD_CONNECTOR.replace('"{name}"', '"alpha"'))
    reg = load_plugins(entry_points=[dup, second, first])
    assert set(reg.connectors) == {"alpha", "beta"}
    assert reg.connectors["alpha"].__module__ == first.value
    status = reg.failures["gamma"].status
    assert "connector name 'alpha' is already taken by plugin alpha (aggcore-plugin-alpha 1.2.3)" in status


def test_same_plugin_name_twice_is_reported(plug) -> None:  # type: ignore[no-untyped-def]
    a = plug("alpha")
    b = plug("alpha", GOOD_CONNECTOR.replace('"{name}"', '"other"'), dist="fork-of-alpha")
    reg = load_plugins(entry_points=[a, b])
    assert list(reg.connectors) == ["alpha"]
    assert "already taken" in reg.failures["alpha"].status
    assert reg.failures["alpha"].distribution == "fork-of-alpha"


def test_disabled_by_argument_and_by_environment(plug, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    eps = [plug("alpha"), plug("beta")]
    reg = load_plugins(entry_points=eps, disabled=["alpha"])
    assert list(reg.connectors) == ["beta"]
    assert {p.name: p.status for p in reg.plugins} == {"alpha": "disabled", "beta": "ok"}
    assert reg.failures == {}
    assert reg.why_missing("alpha") is not None and "disabled" in reg.why_missing("alpha")  # type: ignore[operator]

    monkeypatch.setenv("AGGCORE_DISABLE_PLUGINS", " beta , alpha")
    reg = load_plugins(entry_points=eps)
    assert reg.connectors == {}
    assert all(p.status == "disabled" for p in reg.plugins)


def test_builtins_are_entry_points_and_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGGCORE_DISABLE_PLUGINS", raising=False)
    builtin = {ep.name for ep in installed_entry_points(group="aggcore") if ep.dist and ep.dist.name == "aggcore"}
    assert builtin == {"stdout", "file", "webhook", "console", "summary", "arbitrage"}
    reg = load_plugins(strict=False)
    infos = {p.name: p for p in reg.plugins if p.builtin}
    assert set(infos) == builtin
    assert infos["stdout"].provides == ["sink:stdout"] and infos["summary"].provides == ["analyzer:summary"]
    assert {"stdout", "file", "webhook", "console"} <= set(reg.sinks)
    assert {"summary", "arbitrage"} <= set(reg.analyzers)

    monkeypatch.setenv("AGGCORE_DISABLE_PLUGINS", "stdout,summary")
    reg = load_plugins(strict=False)
    assert "stdout" not in reg.sinks and "summary" not in reg.analyzers
    assert "file" in reg.sinks


def test_strict_reraises_with_the_cause(plug, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    eps = [plug("alpha"), plug("broken", "raise RuntimeError('boom')")]
    with pytest.raises(PluginError) as caught:
        load_plugins(entry_points=eps, strict=True)
    err = caught.value
    assert (err.plugin, err.distribution, err.version) == ("broken", "aggcore-plugin-broken", "1.2.3")
    assert "boom" in str(err)
    assert isinstance(err.__cause__, Exception)

    monkeypatch.setenv("AGGCORE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError):
        load_plugins(entry_points=eps)
    # an explicit strict=False wins over the environment
    assert "broken" in load_plugins(entry_points=eps, strict=False).failures


def test_fresh_manager_per_call(plug) -> None:  # type: ignore[no-untyped-def]
    eps = [plug("alpha")]
    one, two = load_plugins(entry_points=eps), load_plugins(entry_points=eps)
    assert one.manager is not two.manager
    assert one.connectors["alpha"] is two.connectors["alpha"]


def test_the_hooks_are_called_through_the_manager(plug) -> None:  # type: ignore[no-untyped-def]
    body = """
class S(Sink):
    name = "s1"

class A(Analyzer):
    name = "a1"

class C(Connector):
    name = "c1"

@hookimpl
def aggcore_register_connectors():
    return [C]

@hookimpl
def aggcore_register_sinks():
    return [S]

@hookimpl
def aggcore_register_analyzers():
    return [A]
"""
    reg = load_plugins(entry_points=[plug("multi", body)])
    assert reg.plugins[0].provides == ["connector:c1", "sink:s1", "analyzer:a1"]
    assert reg.manager is not None
    hook = reg.manager.hook
    assert [c.name for (cs,) in [hook.aggcore_register_connectors()] for c in cs] == ["c1"]
    assert [c.name for (cs,) in [hook.aggcore_register_sinks()] for c in cs] == ["s1"]
    assert [c.name for (cs,) in [hook.aggcore_register_analyzers()] for c in cs] == ["a1"]


def test_nothing_is_loaded_at_import_time() -> None:
    code = (
        "import sys, aggcore, aggcore.plugins, aggcore.config, aggcore.cli\n"
        "loaded = [m for m in sys.modules if m.startswith(('aggcore.builtins', 'aggcore_plugin_'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
