"""``aggcore`` as a process, the way a new user meets it: Ctrl-C or SIGTERM at any moment exits
0 without a traceback, a closed stdout pipe ends the run, ``--format json``, ``python -m aggcore``
and a ``--version`` that loads nothing it does not need."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aggcore.plugins import load_plugins

CONFIG = {"exchanges": {"kraken": {"trading_pairs": ["BTC/USD"]}}, "aggregation": {"summary_interval_ms": 200}}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    if "kraken" not in load_plugins().connectors:
        pytest.skip("the kraken plugin is not installed")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def aggcore(*args: str, stdout: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggcore", *args], stdout=stdout, stderr=subprocess.PIPE, text=True, env=ENV
    )


def handles_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM yet (Linux: /proc/PID/status SigCgt)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # no /proc: fall back to the delay alone
    mask = int(next(line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


# moments of start-up, counted from when aggcore's own code runs (the interpreter's start-up
# before that is out of any program's hands): plugin loading, the simulated exchanges
# starting, the connectors connecting
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_exits_0_without_a_traceback(config: Path, sig: signal.Signals, delay: float) -> None:
    proc = aggcore("run", "--simulate", str(config))
    try:
        deadline = time.monotonic() + 20
        while not handles_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_the_run_ends_when_its_stdout_pipe_closes(config: Path) -> None:
    """``aggcore run ... | head -1``: the reader goes away, the run stops by itself with 0."""
    proc = aggcore("run", "--simulate", str(config), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert " summary BTC/USD " in first
        proc.stdout.close()
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "stdout closed: stopping" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_format_json_switches_the_default_stdout_output_to_json_lines(config: Path) -> None:
    proc = aggcore("run", "--simulate", str(config), "--format", "json", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        event = json.loads(proc.stdout.readline())
        assert event["kind"] == "summary" and event["data"]["symbol"] == "BTC/USD"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_python_dash_m_aggcore_and_a_version_that_loads_no_plugins() -> None:
    out = subprocess.run([sys.executable, "-m", "aggcore", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("aggcore ")
    # --version imports neither the plugins nor pydantic, msgspec or the runtime
    probe = (
        "import sys\n"
        "from aggcore.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydantic', 'msgspec', 'httpx', 'anyio', 'aggcore.plugins', 'aggcore.models') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_an_interrupt_that_a_callback_swallows_during_start_up_prints_no_traceback() -> None:
    """A signal's exception raised inside a ``__del__`` or a weakref callback (an import lock's,
    seen in CI) cannot propagate: Python reports it as unraisable, with a traceback. The start-up
    hook drops an interrupt (the runtime stops on the recorded signal) and passes anything else on."""
    from aggcore import cli

    seen: list[Any] = []

    class Interrupted:
        def __del__(self) -> None:
            raise cli._Interrupted

    class Broken:
        def __del__(self) -> None:
            raise ValueError("a real bug")

    before = sys.unraisablehook
    sys.unraisablehook = cli._quiet_interrupts(seen.append)
    try:
        Interrupted()  # collected at once: its __del__'s exception is unraisable
        Broken()
    finally:
        sys.unraisablehook = before
    assert [type(u.exc_value) for u in seen] == [ValueError]
    # main() puts the hook in place for start-up only
    assert cli.main(["plugins", "--json"]) == 0
    assert sys.unraisablehook is before
