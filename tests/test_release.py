"""Publishing: one version for every distribution, plugins pinned to the plugin API's range,
LICENSE files, shared metadata; and ``aggcore plugins`` warns about a plugin built for another
plugin API. (``python3 scripts/release.py check``, run by .ci/run, builds and installs them.)"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import aggcore
from aggcore.plugins import api_mismatch, load_plugins

ROOT = Path(__file__).resolve().parent.parent


def _release() -> object:
    spec = importlib.util.spec_from_file_location("aggcore_release", ROOT / "scripts" / "release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dists() -> list[Path]:
    return [ROOT / "core", *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]


def test_one_version_and_the_plugin_api_range_everywhere() -> None:
    release = _release()
    pin = "aggcore" + release.api_range(aggcore.PLUGIN_API)  # type: ignore[attr-defined]
    for dist in _dists():
        project = tomllib.loads((dist / "pyproject.toml").read_text())["project"]
        where = dist.relative_to(ROOT)
        if dist.name == "core":
            assert project["dynamic"] == ["version"], where
        else:
            assert project["version"] == aggcore.__version__, f"{where}: run python3 scripts/release.py sync"
            assert pin in project["dependencies"], f"{where}: plugins require {pin}"
        assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"], where
        assert (dist / "LICENSE").read_text() == (ROOT / "LICENSE").read_text(), where
        assert {"Homepage", "Repository", "Issues"} <= set(project["urls"]), where
        assert "Typing :: Typed" in project["classifiers"] and project["keywords"], where
        readme = (dist / project["readme"]).read_text()
        minimum = 20 if dist.name == "core" else 3  # core's README is the PyPI page users land on
        assert len(readme.splitlines()) >= minimum, f"{where}: the README is the PyPI page; it needs real content"


def test_sync_has_nothing_to_change() -> None:
    # sync() rewrites the files only when they differ: nothing may be out of date in the repository
    before = {p: p.read_bytes() for d in _dists() for p in (d / "pyproject.toml", d / "LICENSE")}
    changed = _release().sync()  # type: ignore[attr-defined]
    after = {p: p.read_bytes() for p in before}
    for path, data in before.items():  # put back anything it wrote before failing
        path.write_bytes(data)
    assert not changed and before == after, f"out of date (python3 scripts/release.py sync): {changed}"


def _fake_plugin(tmp_path: Path, requirement: str) -> Path:
    """An installed distribution (dist-info on sys.path) whose entry point needs ``requirement``."""
    site = tmp_path / "site"
    pkg = site / "oldplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from aggcore.hookspecs import hookimpl\n"
        "from aggcore.sink import Sink\n"
        "class OldSink(Sink):\n"
        "    name = 'oldsink'\n"
        "    async def write(self, batch): pass\n"
        "@hookimpl\n"
        "def aggcore_register_sinks():\n"
        "    return [OldSink]\n"
    )
    info = site / "oldplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: oldplug\nVersion: 1.0\nRequires-Dist: {requirement}\n"
    )
    (info / "entry_points.txt").write_text("[aggcore]\noldsink = oldplug\n")
    (info / "RECORD").write_text("")
    return site


def test_plugins_warns_about_another_plugin_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _fake_plugin(tmp_path, "aggcore<0.0.1")
    monkeypatch.syspath_prepend(str(site))
    info = next(p for p in load_plugins().plugins if p.name == "oldsink")
    assert info.ok  # it still loads: a warning, not a failure
    assert info.warning and "another plugin API" in info.warning and aggcore.__version__ in info.warning
    if _installed("aggcore-plugin-kraken"):
        assert api_mismatch("aggcore-plugin-kraken") is None
    out = subprocess.run(
        [sys.executable, "-m", "aggcore.cli", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])},
        timeout=60,
    )
    assert out.returncode == 0
    assert "oldsink" in out.stdout
    assert "another plugin API" in out.stderr and "oldplug" in out.stderr


def test_a_matching_plugin_has_no_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = _release()
    site = _fake_plugin(tmp_path, "aggcore" + release.api_range(aggcore.PLUGIN_API))  # type: ignore[attr-defined]
    monkeypatch.syspath_prepend(str(site))
    info = next(p for p in load_plugins().plugins if p.name == "oldsink")
    assert info.ok and info.warning is None


def _installed(name: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
