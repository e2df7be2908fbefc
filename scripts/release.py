#!/usr/bin/env python3
"""Release tooling for every distribution in this repository (core and ``plugins/*``).

    python3 scripts/release.py sync                 # write the shared metadata into every pyproject.toml
    python3 scripts/release.py set-version 0.2.0    # one version for all, and the plugins' aggcore range
    python3 scripts/release.py check [--out DIR]    # build, twine check, plain-pip install, smoke run

The version lives in one place, ``core/src/aggcore/_version.py`` (``__version__`` and
``PLUGIN_API``); core reads it at build time (hatch) and ``sync``/``set-version`` copy it into
each plugin, which also requires ``aggcore>=<PLUGIN_API>.0,<next minor>`` (the plugin API it was
built for). ``tests/test_release.py`` fails when a distribution disagrees. ``check`` is what CI
runs: it builds every wheel and sdist, runs ``twine check``, installs core and the Kraken plugin
with plain pip into a fresh virtual environment from those files only, and runs ``aggcore
plugins``, ``aggcore validate`` and a short ``aggcore run --simulate`` there.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "core" / "src" / "aggcore" / "_version.py"
URLS = {
    "Homepage": "https://github.com/aggcore/aggcore",
    "Documentation": "https://github.com/aggcore/aggcore#readme",
    "Repository": "https://github.com/aggcore/aggcore",
    "Issues": "https://github.com/aggcore/aggcore/issues",
    "Changelog": "https://github.com/aggcore/aggcore/releases",
}
CLASSIFIERS = [
    "Development Status :: 4 - Beta",
    "Framework :: AnyIO",
    "Intended Audience :: Developers",
    "Intended Audience :: Financial and Insurance Industry",
    "License :: OSI Approved :: MIT License",
    "Operating System :: OS Independent",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3 :: Only",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Topic :: Office/Business :: Financial :: Investment",
    "Topic :: System :: Networking",
    "Typing :: Typed",
]
KEYWORDS = ["crypto", "order book", "L2", "market data", "websocket", "exchange", "aggregator", "arbitrage"]
SMOKE_PLUGIN = "kraken"


def read_version() -> tuple[str, str]:
    text = VERSION_FILE.read_text()
    version = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    api = re.search(r'^PLUGIN_API = "([^"]+)"', text, re.M)
    if not version or not api:
        sys.exit(f"{VERSION_FILE}: __version__ or PLUGIN_API not found")
    return version.group(1), api.group(1)


def api_range(api: str) -> str:
    major, minor = (int(x) for x in api.split(".")[:2])
    return f">={major}.{minor}.0,<{major}.{minor + 1}" if major == 0 else f">={major}.{minor}.0,<{major + 1}"


def distributions() -> list[Path]:
    return [ROOT / "core"] + sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _toml_list(items: list[str], indent: str = "    ") -> str:
    return "[\n" + "".join(f'{indent}"{item}",\n' for item in items) + "]"


def _set_key(text: str, key: str, value: str) -> str:
    """Replace ``key = ...`` (one line or a bracketed list) in the [project] table, or add it."""
    project = re.search(r"^\[project\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert project, "no [project] table"
    body = project.group(1)
    pattern = re.compile(rf"^{re.escape(key)} = (\[[^\n]*\]|\[\n.*?^\]|[^\n]*)\n", re.M | re.S)
    line = f"{key} = {value}\n"
    body = pattern.sub(lambda _: line, body, count=1) if pattern.search(body) else body.rstrip("\n") + "\n" + line
    if not body.endswith("\n\n"):
        body = body.rstrip("\n") + "\n\n"
    return text[: project.start(1)] + body + text[project.end(1) :]


def _set_table(text: str, header: str, lines: list[str]) -> str:
    block = f"[{header}]\n" + "".join(f"{line}\n" for line in lines) + "\n"
    pattern = re.compile(rf"^\[{re.escape(header)}\]\n.*?(?=^\[|\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block


def sync(version: str | None = None) -> list[Path]:
    """Write version, aggcore range, license files, URLs, classifiers and keywords everywhere."""
    current, api = read_version()
    if version is not None and version != current:
        text = VERSION_FILE.read_text()
        VERSION_FILE.write_text(re.sub(r'^__version__ = "[^"]+"', f'__version__ = "{version}"', text, flags=re.M))
        current = version
    pin = f"aggcore{api_range(api)}"
    changed = []
    license_text = (ROOT / "LICENSE").read_text()
    for dist in distributions():
        path = dist / "pyproject.toml"
        text = original = path.read_text()
        if dist.name == "core":
            text = re.sub(r'^version = "[^"]+"\n', "", text, flags=re.M)
            text = _set_key(text, "dynamic", '["version"]')
            text = _set_table(text, "tool.hatch.version", ['path = "src/aggcore/_version.py"'])
        else:
            text = _set_key(text, "version", f'"{current}"')
            text = re.sub(r'"aggcore(?:[<>=!~][^"]*)?"', f'"{pin}"', text, count=1)
        text = _set_key(text, "license", '"MIT"')
        text = _set_key(text, "license-files", '["LICENSE"]')
        text = _set_key(text, "keywords", _toml_list(KEYWORDS))
        text = _set_key(text, "classifiers", _toml_list(CLASSIFIERS))
        text = _set_table(text, "project.urls", [f'{k} = "{v}"' for k, v in URLS.items()])
        if text != original:
            path.write_text(text)
            changed.append(path)
        if not (dist / "LICENSE").exists() or (dist / "LICENSE").read_text() != license_text:
            (dist / "LICENSE").write_text(license_text)
            changed.append(dist / "LICENSE")
    return changed


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def check(out: Path | None) -> int:
    stale = sync()
    if stale:
        print("release: metadata was out of date; run `python3 scripts/release.py sync` and commit:", *stale, sep="\n  ")
        return 1
    version, _ = read_version()
    uv = [shutil.which("uv")] if shutil.which("uv") else [sys.executable, "-m", "uv"]
    work = Path(tempfile.mkdtemp(prefix="aggcore-release-"))
    dist = out or work / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    run([*uv, "build", "--all-packages", "--out-dir", str(dist)], cwd=ROOT)  # type: ignore[list-item]
    files = sorted(f for f in dist.iterdir() if f.suffix == ".whl" or f.name.endswith(".tar.gz"))
    expected = {d.name for d in distributions()}
    wheels = [f for f in files if f.suffix == ".whl"]
    sdists = [f for f in files if f.name.endswith(".tar.gz")]
    if len(wheels) != len(expected) or len(sdists) != len(expected):
        print(f"release: expected a wheel and an sdist for each of {len(expected)} distributions, got {[f.name for f in files]}")
        return 1
    bad = [f.name for f in files if f"-{version}" not in f.name]
    if bad:
        print(f"release: files without version {version}: {bad}")
        return 1
    run([*uv, "tool", "run", "twine", "check", "--strict", *map(str, files)])  # type: ignore[list-item]

    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    core_whl = next(f for f in wheels if f.name.startswith("aggcore-"))
    plugin_whl = next(f for f in wheels if f.name.startswith(f"aggcore_plugin_{SMOKE_PLUGIN}-"))
    # the two distributions from these files only; their third-party dependencies from the index
    run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(core_whl), str(plugin_whl)])
    exe = venv / "bin" / "aggcore"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    listing = run([str(exe), "plugins", "--json"], capture_output=True, env=env).stdout
    if f'"{SMOKE_PLUGIN}"' not in listing:
        print("release: `aggcore plugins` does not list the plugin:", listing)
        return 1
    config = work / "smoke.yaml"
    config.write_text(f"exchanges:\n  {SMOKE_PLUGIN}:\n    trading_pairs: [BTC/USD]\n")
    run([str(exe), "validate", str(config)], env=env, cwd=work)
    proc = subprocess.Popen(
        [str(exe), "run", "--simulate", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work
    )
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if "BTC/USD" in line]
    print(f"release: `aggcore run --simulate` exited {proc.returncode} after {len(lines)} summary lines")
    if proc.returncode != 0 or not lines:
        print(stdout[-2000:], stderr[-4000:], sep="\n")
        return 1
    print(f"release: {len(files)} files for {version} built, checked and installed with plain pip: OK")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/release.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="write the shared metadata and the version into every pyproject.toml")
    sv = sub.add_parser("set-version", help="set one version for every distribution")
    sv.add_argument("version")
    ck = sub.add_parser("check", help="build, twine check, install with plain pip, smoke run")
    ck.add_argument("--out", type=Path, help="keep the built files here")
    args = parser.parse_args()
    if args.command == "sync":
        for path in sync():
            print("updated", path.relative_to(ROOT))
        return 0
    if args.command == "set-version":
        for path in sync(args.version):
            print("updated", path.relative_to(ROOT))
        return 0
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
