"""Serve a real capture to a plugin's real connector, over loopback.

:class:`RecordingServer` answers REST calls with the recorded bodies (matched by path and
query) and, to every WebSocket client, plays the recorded frames in order, ignoring what the
client subscribes. Point any connector at it with ``ws_url``/``rest_url`` and the plugin's
parser, sync rules and the engine run on what the exchange really sent::

    server = RecordingServer.from_names("BINANCE.ws.1.0", rest=["BINANCE.0", "BINANCE.http.0.0"])
    async with server:
        config = {"ws_url": server.ws_url, "rest_url": server.rest_url, "trading_pairs": [...]}

Frames are played as fast as the socket takes them, right after the client connects, so a
REST-snapshot exchange buffers them while its recorded snapshot is fetched and then syncs
them against it, exactly as live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection

from .recordings import HttpRecord, Recording, recording
from .server import FakeExchange, Session

__all__ = ["RecordingServer"]


class RecordingServer(FakeExchange):
    name = "recording"
    supported_faults = frozenset()

    def __init__(
        self,
        frames: Iterable[str],
        http: Iterable[HttpRecord] = (),
        *,
        close_when_done: bool = False,
    ) -> None:
        super().__init__(symbols=[], rate_hz=0)
        self.frames = list(frames)
        self.records: list[tuple[str, dict[str, str], str]] = []
        for rec in http:
            parts = urlsplit(rec.url)
            self.records.append((parts.path, dict(parse_qsl(parts.query)), rec.body))
        self.close_when_done = close_when_done
        self.sent = 0
        self.done = asyncio.Event()

    @classmethod
    def from_names(cls, ws: str, rest: Iterable[str] = (), **kwargs: Any) -> "RecordingServer":
        """Open captures by name (skips the calling test when they are absent)."""
        frames = [f.text for f in recording(ws).frames()]
        http: list[HttpRecord] = []
        for name in rest:
            http.extend(recording(name).http())
        return cls(frames, http, **kwargs)

    @classmethod
    def from_recordings(cls, ws: Recording, rest: Iterable[Recording] = (), **kwargs: Any) -> "RecordingServer":
        http = [r for rec in rest for r in rec.http()]
        return cls([f.text for f in ws.frames()], http, **kwargs)

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        best: tuple[int, str] | None = None
        for rpath, rquery, body in self.records:
            if rpath.rstrip("/") != path.rstrip("/"):
                continue
            score = sum(1 for k, v in query.items() if rquery.get(k) == v) - sum(
                1 for k, v in rquery.items() if k not in ("limit", "depth", "sz") and query.get(k) != v
            ) * 10
            if best is None or score > best[0]:
                best = (score, body)
        if best is None or best[0] < 0:
            return 404, {"error": f"no recorded response for {path}?{query}"}
        return 200, best[1]

    def on_message(self, session: Session, text: str) -> None:
        pass  # subscriptions are ignored: the capture is what it is

    def delta_frames(self, session: Session, symbol: str, changes: list[Any]) -> list[str]:
        return []

    async def _handle(self, ws: ServerConnection) -> None:
        player = asyncio.get_running_loop().create_task(self._play(ws))
        try:
            await super()._handle(ws)
        finally:
            player.cancel()

    async def _play(self, ws: ServerConnection) -> None:
        await asyncio.sleep(0.05)
        session = next((s for s in self.sessions if s.ws is ws), None)
        for text in self.frames:
            if session is not None:
                session.send_soon(text)
            else:
                await ws.send(text)
            self.sent += 1
            if self.sent % 200 == 0:
                await asyncio.sleep(0)
        if session is not None:
            while not session.queue.empty():
                await asyncio.sleep(0.01)
        self.done.set()
        if self.close_when_done:
            await ws.close(1000, "end of recording")
