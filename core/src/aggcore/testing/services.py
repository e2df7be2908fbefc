"""Real servers for tests: PostgreSQL and Redis on 127.0.0.1, a free port and a temporary directory.

Each is a context manager that starts the server, waits until it accepts connections, and stops
it (also when the test fails); ``restart()`` kills it the hard way and starts it again on the
same port and directory, to test a sink across a server restart. A missing binary skips the
test with the reason, except under ``CI=true``, where it fails (``scripts/install-services.sh``
installs the Debian packages ``postgresql-15`` and ``redis-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerProcess",
    "free_port",
    "postgres_server",
    "redis_server",
    "require_binary",
    "serve",
    "write_through_restart",
]

PG_BIN = Path(os.environ.get("AGGCORE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_binary(path: str | Path, package: str) -> str:
    """The binary's path; else skip the test (fail it under CI=true) naming the Debian package."""
    import pytest

    found = shutil.which(str(path)) if not os.path.isabs(str(path)) else (str(path) if os.access(path, os.X_OK) else None)
    if found is None:
        reason = f"{path} not found: install the Debian package {package} (scripts/install-services.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:] if log and log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ServerProcess:
    """A server binary run as a child process on 127.0.0.1:``port`` with its files in ``directory``.

    Subclasses give :meth:`command` (and ``url``); ``start()`` waits until the port accepts
    connections, ``stop(hard=True)`` is a kill -9, ``restart()`` starts again on the same port and
    directory. Used for Redis here and for NATS by ``aggcore_plugin_nats.testing``.
    """

    log_name = "server"

    def __init__(self, binary: str, directory: Path, port: int) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self, log: Path) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.starts += 1
        log = self.dir / f"{self.log_name}-{self.starts}.log"
        self.proc = subprocess.Popen(self.command(log), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, 10, self.proc, log)

    def stop(self, *, hard: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """kill -9, wait ``down_s``, start again on the same port and directory."""
        self.stop(hard=True)
        time.sleep(down_s)
        self.start()


S = TypeVar("S", bound=ServerProcess)


@contextmanager
def serve(cls: type[S], binary: str, package: str) -> Iterator[S]:
    """Run ``cls`` on a free port in a temporary directory for the ``with`` block; a missing
    ``binary`` skips the test naming the Debian ``package`` (fails it under ``CI=true``)."""
    path = require_binary(binary, package)
    with tempfile.TemporaryDirectory(prefix=f"aggcore-{cls.log_name}-") as d:
        server = cls(path, Path(d), free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


class RedisServer(ServerProcess):
    """``redis-server`` with an append-only file (``appendfsync always``: what it acknowledged survives a kill -9)."""

    log_name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, log: Path) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", str(log)]  # fmt: skip


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    with serve(RedisServer, "redis-server", "redis-server") as server:
        yield server


class PostgresServer:
    """A PostgreSQL cluster (``initdb -A trust``, user ``aggcore``); run as user ``postgres`` when we are root."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.data = directory / "data"
        self.log = directory / "log"

    @property
    def dsn(self) -> str:
        return f"postgresql://aggcore@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # the server refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "aggcore", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", opts, "start")
        _wait_port(self.port, 10)

    def stop(self, mode: str = "fast") -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def restart(self, down_s: float = 0.0) -> None:
        """Stop with ``-m immediate`` (no clean shutdown, like a crash), wait ``down_s``, start again."""
        self.stop("immediate")
        time.sleep(down_s)
        self.start()


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    require_binary(PG_BIN / "initdb", "postgresql-15")
    if os.geteuid() == 0:
        require_binary("runuser", "util-linux")
    with tempfile.TemporaryDirectory(prefix="aggcore-pg-") as d:
        os.chmod(d, 0o755)
        server = PostgresServer(Path(d), free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")


class _Restartable(Protocol):
    def restart(self, down_s: float = 0.0) -> None: ...


async def write_through_restart(
    sink: Any, events: Sequence[Any], server: _Restartable, *, down_s: float, chunk: int, pause_s: float = 0.002,
    drain_s: float = 30.0,
) -> None:
    """Write ``events`` to ``sink`` while ``server`` is killed and started again (in a thread):
    a fifth of them first, then a few at a time until the sink reports the dead server
    (``health_error``), then the rest while the server is away and after it is back; returns
    once the restart is done and the sink's buffer is empty (``pending_events`` 0). The caller
    then checks what reached the server: everything once, or counted as dropped."""
    done = threading.Event()

    def restart() -> None:
        server.restart(down_s=down_s)
        done.set()

    first = len(events) // 500 * 100  # a multiple of the chunk sizes
    for k in range(0, first, chunk):
        await sink.write(events[k : k + chunk])
        await anyio.sleep(pause_s)
    threading.Thread(target=restart, daemon=True).start()
    k = first
    with anyio.fail_after(30):  # keep writing, slowly, until the sink has met the dead server
        while sink.health_error is None:
            assert k < len(events), "the server never went away while events were written"
            await sink.write(events[k : k + 5])
            k += 5
            await anyio.sleep(0.01)
        for k in range(k, len(events), chunk):  # the rest, while the server is away and after it is back
            await sink.write(events[k : k + chunk])
            await anyio.sleep(pause_s)
        while not done.is_set():
            await anyio.sleep(0.05)
    with anyio.fail_after(drain_s):
        while sink.pending_events:
            await anyio.sleep(0.05)
