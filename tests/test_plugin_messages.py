"""``aggcore plugins check`` and plugin errors as a plugin author meets them: an unknown check is
a usage error naming the valid ones, skipped checks are counted as skipped, a misspelled hook
gets a did-you-mean, and no internal class name shows."""

from __future__ import annotations

import textwrap
import uuid
from importlib.metadata import EntryPoint, PathDistribution
from pathlib import Path

import pytest

from aggcore.cli import main
from aggcore.plugins import load_plugins


def test_an_unknown_check_is_a_usage_error_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    if "binance" not in load_plugins().connectors:
        pytest.skip("the binance plugin is not installed")
    assert main(["plugins", "check", "binance", "--check", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown check 'nosuch'" in err and "live, truth, symbols" in err


def test_skipped_checks_are_reported_and_counted_as_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    if "binance" not in load_plugins().connectors:
        pytest.skip("the binance plugin is not installed")
    # Binance has no checksum (the fake cannot take part) and no in-band snapshot (the check skips)
    assert main(["plugins", "check", "binance", "--check", "fault:bad_checksum", "--check", "fault:lost_snapshot"]) == 0
    out = capsys.readouterr().out
    assert out.count("SKIP  binance") == 2 and "PASS" not in out
    assert out.strip().endswith("0 passed, 0 failed, 2 skipped")


def plugin(root: Path, name: str, body: str) -> EntryPoint:
    module = f"msgplug_{name}_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text("from aggcore.hookspecs import hookimpl\n" + textwrap.dedent(body))
    info = root / f"aggcore_plugin_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: aggcore-plugin-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[aggcore]\n{name} = {module}\n")
    (ep,) = PathDistribution(info).entry_points
    return ep


def test_a_misspelled_hook_gets_a_did_you_mean_without_internal_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AGGCORE_STRICT_PLUGINS", raising=False)
    ep = plugin(tmp_path, "typo", "@hookimpl\ndef aggcore_register_sink():\n    return []\n")
    registry = load_plugins(entry_points=[ep])
    status = registry.failures["typo"].status
    assert "'aggcore_register_sink' is not an aggcore hook (did you mean 'aggcore_register_sinks'?)" in status
    assert "_Rejected" not in status
    # strict: the command line's plugin error shows no internal class name either
    import aggcore.plugins

    real = aggcore.plugins.load_plugins
    monkeypatch.setattr(aggcore.plugins, "load_plugins", lambda strict=None: real(entry_points=[ep], strict=True))
    assert main(["plugins", "--strict-plugins"]) == 1
    err = capsys.readouterr().err
    assert "did you mean 'aggcore_register_sinks'" in err and "_Rejected" not in err
