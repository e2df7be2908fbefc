"""docs/plugins.md's connector walkthrough is a working plugin: its files, written out as they
are in the docs, load as an entry point and pass conformance checks against their own fake."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from importlib.metadata import PathDistribution, entry_points
from pathlib import Path

import pytest

from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.testing.conformance import checks_for, run_check

pytestmark = pytest.mark.anyio

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"


def walkthrough_blocks() -> dict[str, str]:
    """file name -> code: each code block belongs to the file named at the start of the
    paragraph before it (`` `src/.../connector.py`: ... ``)."""
    text = DOC.read_text()
    section = text.split("## Writing an exchange connector: a walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    name = None
    lines = iter(section.splitlines())
    for line in lines:
        found = re.match(r"`([\w./-]+\.(?:py|toml))`", line)
        if found:
            name = found.group(1)
        elif line.startswith(("```python", "```toml")) and name is not None:
            code = []
            for body in lines:
                if body.startswith("```"):
                    break
                code.append(body)
            blocks[name] = "\n".join(code) + "\n"
            name = None
    return blocks


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginRegistry]:
    blocks = walkthrough_blocks()
    assert {"pyproject.toml", "src/aggcore_plugin_acme/connector.py", "src/aggcore_plugin_acme/fake.py", "tests/test_acme.py"} <= set(blocks)
    package = tmp_path / "aggcore_plugin_acme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("connector.py", "fake.py"):
        (package / name).write_text(blocks[f"src/aggcore_plugin_acme/{name}"])
    entry = re.search(r"\[project.entry-points.aggcore\]\n(\w+) = \"([\w.]+)\"", blocks["pyproject.toml"])
    assert entry is not None and entry.group(1) == "acme"
    info = tmp_path / "aggcore_plugin_acme-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aggcore-plugin-acme\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[aggcore]\nacme = {entry.group(2)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (ep,) = PathDistribution(info).entry_points
    builtins = [e for e in entry_points(group="aggcore") if e.value.startswith("aggcore.")]
    yield load_plugins(entry_points=[*builtins, ep], disabled=())
    for mod in [m for m in sys.modules if m.startswith("aggcore_plugin_acme")]:
        del sys.modules[mod]


@pytest.mark.parametrize("check", ["live", "truth", "symbols", "fault:gap", "fault:error_reply"])
async def test_the_walkthrough_plugin_passes_conformance_checks(acme: PluginRegistry, check: str) -> None:
    assert check in checks_for(acme, "acme")
    await run_check(acme, "acme", check)
