"""Every hook in ``aggcore.hookspecs`` is documented in docs/plugins.md with its exact signature,
and called by some test; the documentation's example plugin really loads and works."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import PathDistribution
from pathlib import Path

import anyio
import pytest

import aggcore.hookspecs
import aggcore.models
from aggcore.plugins import load_plugins
from aggcore.sink import Event

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"


def hookspecs() -> dict[str, object]:
    marker = f"{aggcore.hookspecs.PROJECT}_spec"
    return {
        name: fn
        for name, fn in inspect.getmembers(aggcore.hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    }


def signature_text(name: str, fn: object) -> str:
    """``def name(params) -> return`` as written in hookspecs.py (string annotations unquoted)."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(
        p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {p.annotation}" for p in sig.parameters.values()
    )
    ret = sig.return_annotation
    return f"def {name}({params})" + ("" if ret is inspect.Signature.empty else f" -> {ret}")


def test_the_four_hooks_exist() -> None:
    assert set(hookspecs()) == {
        "aggcore_register_connectors",
        "aggcore_register_sinks",
        "aggcore_register_analyzers",
        "aggcore_register_buses",
    }


@pytest.mark.parametrize("name", sorted(hookspecs()))
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    doc = DOC.read_text()
    expected = signature_text(name, hookspecs()[name])
    assert expected in doc, f"docs/plugins.md must show `{expected}`"
    assert f"### `{name}`" in doc, f"docs/plugins.md needs a section for {name}"


@pytest.mark.parametrize("name", sorted(hookspecs()))
def test_hook_is_called_by_a_test(name: str) -> None:
    here = Path(__file__).resolve()
    files = [p for p in [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/*.py")] if p.resolve() != here]
    # implemented by a fake plugin and exercised through load_plugins / the manager
    users = [p for p in files if re.search(rf"\b{name}\b", p.read_text(errors="replace"))]
    assert users, f"no test implements or calls {name}"


def test_the_documented_example_plugin_loads_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    source = next(b for b in blocks if "class JsonlSink" in b)
    site = tmp_path / "site"
    (site / "aggcore_plugin_jsonl").mkdir(parents=True)
    (site / "aggcore_plugin_jsonl" / "__init__.py").write_text("")
    (site / "aggcore_plugin_jsonl" / "plugin.py").write_text(source)
    info = site / "aggcore_plugin_jsonl-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aggcore-plugin-jsonl\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[aggcore]\njsonl = aggcore_plugin_jsonl.plugin\n")
    monkeypatch.syspath_prepend(str(site))

    registry = load_plugins(entry_points=PathDistribution(info).entry_points, strict=True)
    assert registry.plugins[0].provides == ["sink:jsonl"]
    cls = registry.sinks["jsonl"]
    out = tmp_path / "events.jsonl"
    sink = cls(cls.Config.model_validate({"path": str(out)}))
    payload = aggcore.models.HealthStatus(exchange="x", is_healthy=True, last_update=None)

    async def go() -> None:
        await sink.open()
        await sink.write([Event("health", payload)])
        await sink.close()

    anyio.run(go)
    assert '"exchange":"x"' in out.read_text()
