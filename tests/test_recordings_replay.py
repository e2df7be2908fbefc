"""Real captures served to the real connectors over loopback (skipped when captures are absent)."""

from __future__ import annotations

import anyio
import pytest

from aggcore.models import BookState
from aggcore.plugins import load_plugins
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.recordings import recording
from aggcore.testing.replay import RecordingServer

pytestmark = pytest.mark.anyio


def test_reader_parses_every_line_of_a_capture() -> None:
    rec = recording("BINANCE.ws.1.0")
    frames = list(rec.frames(received_only=False))
    assert rec.url is not None and rec.url.startswith("wss://stream.binance.com")
    assert len(frames) == 265 and all(f.text.startswith("{") for f in frames)
    http = list(recording("BINANCE.http.0.0").http())
    assert len(http) == 4 and all("/api/v3/depth" in h.url for h in http)


async def _replay(plugin: str, ws: str, rest: list[str], pairs_from: str) -> dict[str, BookState]:
    registry = load_plugins(disabled=())
    if plugin not in registry.connectors:
        pytest.skip(f"plugin {plugin} not installed")
    server = RecordingServer.from_names(ws, rest=rest)
    # the pairs of the capture: the symbols its REST snapshots were taken for
    pairs = sorted({r.url.rstrip("/").rsplit("/", 1)[-1].split("symbol=")[-1].split("&")[0] for r in recording(pairs_from).http()})
    cls = registry.connectors[plugin]
    async with server:
        config = cls.Config.model_validate(
            {"ws_url": server.ws_url, "rest_url": server.rest_url, "trading_pairs": pairs, "stale_after_s": 30}
        )
        connector = cls(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(connector.run)
            await wait_until(lambda: server.done.is_set(), timeout=20, what="the capture to be played")
            await wait_until(lambda: bool(connector.books) and all(b.live for b in connector.books.values()), timeout=10)
            await anyio.sleep(0.2)
            states = {s: b.state for s, b in connector.books.items()}
            assert all(b.gaps == 0 and b.resyncs == 0 and b.crossed_books == 0 for b in connector.books.values()), {
                s: (b.gaps, b.resyncs, b.error) for s, b in connector.books.items()
            }
            assert not connector.pair_errors
            tg.cancel_scope.cancel()
    return states


async def test_binance_capture_served_to_the_binance_connector_syncs_every_book() -> None:
    states = await _replay("binance", "BINANCE.ws.1.0", ["BINANCE.0", "BINANCE.http.0.0"], "BINANCE.http.0.0")
    assert len(states) == 4 and set(states.values()) == {BookState.LIVE}


async def test_bitstamp_capture_served_to_the_bitstamp_connector_syncs_every_book() -> None:
    states = await _replay("bitstamp", "BITSTAMP.ws.1.0", ["BITSTAMP.0", "BITSTAMP.http.0.0"], "BITSTAMP.http.0.0")
    assert len(states) >= 2 and set(states.values()) == {BookState.LIVE}
