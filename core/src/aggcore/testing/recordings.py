"""Reader for real exchange captures (the cryptofeed ``sample_data`` format).

The captures live outside the repository, in ``../shared/recordings`` next to the project
checkout (or wherever ``AGGCORE_RECORDINGS`` points); they are never copied into it. Tests
that use them call :func:`recording` (or the ``recording`` fixture), which skips with a clear
reason when the file is absent.

Format, one file per capture:

- ``EXCH.ws.N.0``: first line ``URL <-> CONNECT_TS``; ``URL <- TS: MSG`` is a frame the client
  sent; ``TS: MSG`` is a frame received from the exchange.
- ``EXCH.http.N.0`` and ``EXCH.0``: ``URL -> RECV_TS: BODY`` (REST calls) or
  ``configuration: {json}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HttpRecord", "Recording", "WsFrame", "find_recordings_dir", "recording", "recording_path"]


@dataclass(frozen=True, slots=True)
class WsFrame:
    ts: float
    text: str
    sent: bool  # True for frames the client sent (subscriptions)


@dataclass(frozen=True, slots=True)
class HttpRecord:
    url: str
    ts: float
    body: str


_SENT = re.compile(r"^(\S+) <- (\d+(?:\.\d+)?): (.*)$", re.S)
_RECV = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.S)
_HTTP = re.compile(r"^(\S+) -> (\d+(?:\.\d+)?): (.*)$", re.S)
_CONNECT = re.compile(r"^(\S+) <-> (\d+(?:\.\d+)?)$")


class Recording:
    """One capture file. ``frames()`` yields WebSocket frames, ``http()`` REST records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url: str | None = None
        self.connected_at: float | None = None

    def _lines(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if line:
                    yield line

    def frames(self, *, received_only: bool = True) -> Iterator[WsFrame]:
        for line in self._lines():
            m = _CONNECT.match(line)
            if m:
                self.url, self.connected_at = m.group(1), float(m.group(2))
                continue
            m = _SENT.match(line)
            if m:
                if not received_only:
                    yield WsFrame(float(m.group(2)), m.group(3), True)
                continue
            m = _RECV.match(line)
            if m:
                yield WsFrame(float(m.group(1)), m.group(2), False)

    def sent(self) -> list[str]:
        return [f.text for f in self.frames(received_only=False) if f.sent]

    def http(self) -> Iterator[HttpRecord]:
        for line in self._lines():
            m = _HTTP.match(line)
            if m:
                yield HttpRecord(m.group(1), float(m.group(2)), m.group(3))


def find_recordings_dir() -> Path | None:
    """``$AGGCORE_RECORDINGS``, else ``../shared/recordings`` next to the project root."""
    env = os.environ.get("AGGCORE_RECORDINGS")
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    here = Path.cwd().resolve()
    for base in (here, *here.parents, *Path(__file__).resolve().parents):
        candidate = base.parent / "shared" / "recordings"
        if candidate.is_dir() and (base / "pyproject.toml").exists():
            return candidate
    return None


def recording_path(name: str) -> Path | None:
    root = find_recordings_dir()
    if root is None:
        return None
    for candidate in (root / name, *root.glob(f"*/{name}")):
        if candidate.is_file():
            return candidate
    return None


def recording(name: str) -> Recording:
    """Open capture ``name`` (e.g. ``"BINANCE.ws.1.0"``); inside pytest, skip when it is absent."""
    path = recording_path(name)
    if path is None:
        import pytest

        pytest.skip(
            f"recording {name} not available: ../shared/recordings is absent next to the project "
            "(set AGGCORE_RECORDINGS to a folder of captures to run this test)"
        )
    return Recording(path)
