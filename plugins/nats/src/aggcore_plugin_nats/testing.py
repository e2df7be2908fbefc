"""A real ``nats-server`` with JetStream for tests and benchmarks: 127.0.0.1, a free port, a
temporary store; ``restart()`` kills it with SIGKILL and starts it again on the same port and
store. A missing binary skips the test with the reason (fails it under ``CI=true``;
``scripts/install-services.sh`` installs the Debian package ``nats-server``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggcore.testing.services import ServerProcess, serve

__all__ = ["NatsServer", "nats_server"]


class NatsServer(ServerProcess):
    """``nats-server -js``: JetStream with its file store in the server's directory."""

    log_name = "nats"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self, log: Path) -> list[str]:
        return [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.dir / "js"), "-l", str(log)]


@contextmanager
def nats_server() -> Iterator[NatsServer]:
    with serve(NatsServer, "nats-server", "nats-server") as server:
        yield server
