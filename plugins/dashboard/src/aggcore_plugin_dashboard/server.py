"""The dashboard's HTTP server: Starlette on uvicorn, one Server-Sent-Events stream per page.

Routes (all ``GET``; the server changes nothing):

- ``/``: the page (``static/index.html``), ``/static/...``: its script and stylesheet;
- ``/events``: the live stream (``text/event-stream``). A new stream first gets everything
  the page needs, then, at most every ``push_interval_ms``, only what changed since its last
  push (conflated: a slow page skips intermediate states, never sees stale ones);
- ``/state``: the same state as one JSON document;
- ``/metrics``, ``/healthz``, ``/readyz`` when ``metrics`` is on: exactly what aggcore's
  telemetry endpoint serves (:meth:`aggcore.telemetry.Telemetry.route`).

With ``token`` set, ``/events``, ``/state``, ``/metrics`` and ``/readyz`` need it (``?token=``
or ``Authorization: Bearer``); the page's code and ``/healthz`` hold no data and do not.

Bounded: at most ``max_clients`` streams (more get 503); a stream whose page stops reading
is dropped after ``send_timeout_s`` (its connection is aborted, so the unsent bytes are freed
at once, and it is counted in ``dropped_clients``).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .state import Cursor, DashboardState

if TYPE_CHECKING:
    from aggcore.telemetry import Telemetry

__all__ = ["DashboardServer", "STATIC_DIR"]

log = logging.getLogger("aggcore.sink.dashboard")

STATIC_DIR = Path(str(files("aggcore_plugin_dashboard") / "static"))

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
}


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: aggcore's runtime owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardServer:
    """The ASGI app and its uvicorn server on an already bound socket."""

    def __init__(
        self,
        state: DashboardState,
        *,
        token: str | None = None,
        telemetry: "Telemetry | None" = None,
        serve_metrics: bool = True,
        max_clients: int = 100,
        push_interval_s: float = 0.25,
        send_timeout_s: float = 10.0,
        keepalive_s: float = 15.0,
    ) -> None:
        self.state = state
        self.token = token
        self.telemetry = telemetry
        self.serve_metrics = serve_metrics
        self.max_clients = max_clients
        self.push_interval_s = push_interval_s
        self.send_timeout_s = send_timeout_s
        self.keepalive_s = keepalive_s
        self.clients = 0
        self.clients_total = 0
        self.dropped_clients = 0
        self.refused_clients = 0
        self._last_drop_log = -1e9
        self._unlogged_drops = 0
        self.closing = False
        self._server: _Uvicorn | None = None
        self.app = self._build_app()

    # -- the app ------------------------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        routes: list[Route | Mount] = [
            Route("/", self._index, methods=["GET", "HEAD"]),
            Route("/state", self._state, methods=["GET"]),
            Route("/events", _Endpoint(self._events), methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]
        if self.serve_metrics:
            for path in ("/metrics", "/healthz", "/readyz"):
                routes.append(Route(path, self._telemetry, methods=["GET"]))
        return Starlette(routes=routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.token is not None and not _public(scope.get("path", "")):
            if not self._authorized(scope):
                await Response("unauthorized: pass ?token=... or 'Authorization: Bearer ...'\n", 401, media_type="text/plain")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        given: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value.lower().startswith(b"bearer "):
                given = value[7:].decode("latin-1").strip()
        if given is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [None])[0]
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def _index(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_HEADERS)

    async def _state(self, request: Request) -> Response:
        body = self.state.snapshot()
        body["clients"] = self.clients
        body["dropped_clients"] = self.dropped_clients
        return Response(orjson.dumps(body), media_type="application/json", headers=_HEADERS)

    async def _telemetry(self, request: Request) -> Response:
        if self.telemetry is None:
            return JSONResponse({"error": "telemetry is not available"}, 503)
        status, ctype, body = await self.telemetry.route_async(request.url.path, request.headers.get("accept", ""))
        return Response(body, int(status.split()[0]), headers={"Content-Type": ctype, "Cache-Control": "no-store"})

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing or self.clients >= self.max_clients:
            self.refused_clients += 1
            await Response(
                f"too many dashboard pages open (max_clients {self.max_clients})\n", 503, media_type="text/plain"
            )(scope, receive, send)
            return
        self.clients += 1
        self.clients_total += 1
        try:
            await self._stream(scope, receive, send)
        finally:
            self.clients -= 1

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"x-accel-buffering", b"no")]
        headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
        cursor = Cursor()
        state = self.state
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_disconnect)
            # retry: the browser reconnects 1 s after losing the stream
            first = b"retry: 1000\n\n" + state.initial(cursor)
            if not await self._send(scope, send, {"type": "http.response.start", "status": 200, "headers": headers}):
                tg.cancel_scope.cancel()
                return
            if not await self._send(scope, send, {"type": "http.response.body", "body": first, "more_body": True}):
                tg.cancel_scope.cancel()
                return
            while not self.closing:
                await state.wait_changed(self.keepalive_s)
                if self.closing:
                    break
                body = state.pending(cursor) or b"event: ping\ndata: {}\n\n"
                if not await self._send(scope, send, {"type": "http.response.body", "body": body, "more_body": True}):
                    tg.cancel_scope.cancel()
                    return
                await anyio.sleep(self.push_interval_s)  # conflate: at most one push per interval
            await self._send(scope, send, {"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()

    async def _send(self, scope: Scope, send: Send, message: Message) -> bool:
        """Send within ``send_timeout_s``; a page that stops reading is dropped (False)."""
        with anyio.move_on_after(self.send_timeout_s) as timer:
            await send(message)
        if not timer.cancelled_caught:
            return True
        self.dropped_clients += 1
        client = scope.get("client")
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:  # at most one line per 10 s, however many pages stall
            more = f" ({self._unlogged_drops} more since the last report)" if self._unlogged_drops else ""
            log.warning(
                "dashboard: dropped a page at %s that read nothing for %.0fs%s",
                f"{client[0]}:{client[1]}" if client else "?",
                self.send_timeout_s,
                more,
            )
            self._last_drop_log, self._unlogged_drops = now, 0
        else:
            self._unlogged_drops += 1
        self._abort(client)
        await anyio.sleep(0)  # let the transport report the lost connection before we return
        return False

    def _abort(self, client: Any) -> None:
        """Abort the page's connection: its unsent bytes are freed now (close() would keep them)."""
        server = self._server
        if server is None or client is None:
            return
        for conn in list(getattr(server.server_state, "connections", ())):
            if tuple(getattr(conn, "client", None) or ()) == tuple(client):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()

    # -- running -------------------------------------------------------------------------------------------
    async def serve(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (already bound and listening) until :meth:`shutdown`."""
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_config=None,
            log_level="warning",  # aggcore logs the address itself; uvicorn's start/stop lines are noise
            access_log=False,
            timeout_graceful_shutdown=1,
            ws="none",
        )
        self._server = _Uvicorn(config)
        if self.closing:  # shut down before the server task even ran
            return
        await self._server.serve(sockets=[sock])

    def shutdown(self) -> None:
        """Ask every stream to end and the server to stop."""
        self.closing = True
        self.state.notify()
        if self._server is not None:
            self._server.should_exit = True


def _public(path: str) -> bool:
    """What needs no token: the liveness probe and the page's code (it holds no data)."""
    return path in ("/", "/healthz") or path.startswith("/static/")


class _Endpoint:
    """A raw ASGI endpoint (Starlette's ``Route`` passes scope/receive/send straight through)."""

    def __init__(self, fn: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.fn = fn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fn(scope, receive, send)
