"""A real ``nats-server`` with JetStream for tests and benchmarks: 127.0.0.1, a free port, a
temporary store; ``restart()`` kills it with SIGKILL and starts it again on the same port and
store. A missing binary skips the test with the reason (fails it under ``CI=true``;
``scripts/install-services.sh`` installs the Debian package ``nats-server``)."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggcore.testing.services import _wait_port, free_port, require_binary

__all__ = ["NatsServer", "nats_server"]


class NatsServer:
    def __init__(self, binary: str, directory: Path, port: int) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.dir / f"nats-{self.starts}.log"
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.dir / "js"), "-l", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
        """kill -9, wait ``down_s``, start again on the same port and store."""
        self.stop(hard=True)
        time.sleep(down_s)
        self.start()


@contextmanager
def nats_server() -> Iterator[NatsServer]:
    binary = require_binary("nats-server", "nats-server")
    with tempfile.TemporaryDirectory(prefix="aggcore-nats-") as d:
        server = NatsServer(binary, Path(d), free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()
