"""What the page shows, kept from the events the sink receives: bounded, encoded once.

:class:`DashboardState` holds the latest summary per pair (trimmed to ``depth`` levels), the
latest health and metrics per exchange, a short mid/spread history per pair, and the most
recent arbitrage events and log lines (resyncs, state changes, errors). Every item is encoded
as a Server-Sent-Events frame once, when it changes; each page's stream only copies the
frames it has not sent yet (:class:`Cursor`), so a hundred pages cost a hundred small
cursors, not a hundred copies of the state.

Nothing here touches a socket: it is fed by :meth:`DashboardState.apply` (the sink's
``write``) and read by the server's streams.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import orjson

from aggcore.credentials import redact_secrets
from aggcore.sink import Event

__all__ = ["Cursor", "DashboardState", "sse_frame"]

#: states from best to worst: an exchange's tile shows the worst of its books
STATE_ORDER = {"LIVE": 0, "SYNCING": 1, "RESYNCING": 2, "STALE": 3, "FAILED": 4}


def sse_frame(event: str, data: Any) -> bytes:
    """One Server-Sent-Events frame (orjson never writes a newline, so one ``data:`` line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _ts(value: object) -> float | None:
    """Seconds since the epoch from a datetime, a number (seconds) or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # RFC 3339, as Event.to_dict() writes datetimes
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _text(value: object) -> str | None:
    """Free text for the page (errors, reasons), scrubbed of every live credentialed URL's secrets."""
    return None if value is None else redact_secrets(str(value))


def _state_name(value: object) -> str:
    return str(getattr(value, "value", value))


@dataclass
class Cursor:
    """What one page has been sent: the version of every keyed item and the last log/arbitrage seq."""

    versions: dict[str, int] = field(default_factory=dict)
    arb_seq: int = 0
    log_seq: int = 0


class DashboardState:
    """The dashboard's bounded view of the event stream (see the module docstring)."""

    def __init__(
        self,
        *,
        depth: int = 10,
        history_s: float = 300.0,
        history_step_s: float = 0.25,
        feed_size: int = 200,
    ) -> None:
        self.depth = depth
        self.history_s = history_s
        self.history_step_s = history_step_s
        self.feed_size = feed_size
        self.started = time.time()
        # keyed items: key -> (version, encoded frame)
        self._frames: dict[str, tuple[int, bytes]] = {}
        self._version = 0
        self.summaries: dict[str, dict[str, Any]] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.history: dict[str, deque[tuple[float, float | None, float | None]]] = {}
        self._history_max = max(2, int(history_s / history_step_s) + 1)
        # append-only feeds: (seq, frame, item)
        self.arbs: deque[tuple[int, bytes, dict[str, Any]]] = deque(maxlen=feed_size)
        self.log: deque[tuple[int, bytes, dict[str, Any]]] = deque(maxlen=feed_size)
        self.open_arbs: dict[str, dict[str, Any]] = {}
        self._seq = 0
        # per exchange, for the log and rates: symbol -> (state, resyncs)
        self._books_seen: dict[str, dict[str, tuple[str, int]]] = {}
        self._errors_seen: dict[str, str | None] = {}
        self._msg_counts: dict[str, tuple[float, int]] = {}
        self._changed = anyio.Event()
        self.events_applied = 0

    # -- feeding ------------------------------------------------------------------------------------------
    def apply(self, events: Sequence[Event]) -> None:
        """Fold a batch of events into the state and wake the streams."""
        metrics: list[Event] = []
        for event in events:
            kind = event.kind
            if kind == "summary":
                self._summary(event)
            elif kind == "arbitrage":
                self._arbitrage(event)
            elif kind == "health":
                self._health(event)
            elif kind == "metrics":
                metrics.append(event)
            self.events_applied += 1
        if metrics:
            self._metrics(metrics)
        if events:
            self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_changed(self, timeout: float) -> None:
        """Return when the state changes, or after ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            await self._changed.wait()

    def _put(self, key: str, event: str, data: Any) -> None:
        self._version += 1
        self._frames[key] = (self._version, sse_frame(event, data))

    def _append(self, feed: deque[tuple[int, bytes, dict[str, Any]]], event: str, item: dict[str, Any]) -> None:
        self._seq += 1
        item["seq"] = self._seq
        feed.append((self._seq, sse_frame(event, item), item))

    def add_log(self, level: str, source: str, message: str, ts: float | None = None) -> None:
        item = {"ts": ts or time.time(), "level": level, "source": source, "message": redact_secrets(message)}
        self._append(self.log, "log", item)

    def _summary(self, event: Event) -> None:
        s: Any = event.payload
        depth = self.depth

        def levels(rows: Iterable[Any]) -> list[list[Any]]:
            out = []
            for i, lvl in enumerate(rows):
                if i >= depth:
                    break
                out.append([lvl.price, lvl.quantity, lvl.exchange])
            return out

        pair = str(s.symbol)
        ts = _ts(getattr(s, "timestamp", None)) or event.ts
        data = {
            "symbol": pair,
            "ts": ts,
            "mid": s.mid,
            "spread": s.spread,
            "best_bid": s.best_bid,
            "best_ask": s.best_ask,
            "crossed": bool(s.crossed),
            "venues": list(s.venues),
            "excluded": {str(k): _text(v) for k, v in dict(s.excluded).items()},
            "venue_age_ms": dict(s.venue_age_ms),
            "bids": levels(s.bids),
            "asks": levels(s.asks),
        }
        self.summaries[pair] = data
        self._put(f"summary:{pair}", "summary", data)
        hist = self.history.get(pair)
        if hist is None:
            hist = self.history[pair] = deque(maxlen=self._history_max)
        if not hist or ts - hist[-1][0] >= self.history_step_s:
            hist.append((ts, s.mid, s.spread))
        elif hist:
            hist[-1] = (hist[-1][0], s.mid, s.spread)  # the latest value of this step wins

    def _arbitrage(self, event: Event) -> None:
        data = event.to_dict()["data"]
        data["ts"] = _ts(data.get("timestamp")) or event.ts
        key = f"{data.get('symbol')}|{data.get('buy_exchange')}|{data.get('sell_exchange')}"
        data["key"] = key
        if data.get("event") == "closed":
            self.open_arbs.pop(key, None)
        else:
            self.open_arbs[key] = data
            while len(self.open_arbs) > self.feed_size:  # bounded even if closes were dropped
                self.open_arbs.pop(next(iter(self.open_arbs)))
        self._append(self.arbs, "arb", data)

    def _health(self, event: Event) -> None:
        h: Any = event.payload
        name = str(h.exchange)
        kind = str(getattr(h, "kind", "exchange"))
        ts = event.ts
        symbols: dict[str, dict[str, Any]] = {}
        worst = "LIVE"
        seen = self._books_seen.setdefault(name, {})
        for sym, sh in dict(getattr(h, "symbols", {}) or {}).items():
            state = _state_name(sh.state)
            if STATE_ORDER.get(state, 0) > STATE_ORDER.get(worst, 0):
                worst = state
            resyncs = int(getattr(sh, "resyncs", 0) or 0)
            why = _text(sh.error_message)
            symbols[str(sym)] = {
                "state": state,
                "why": why,
                "age_ms": sh.age_ms,
                "resyncs": resyncs,
                "gaps": int(getattr(sh, "gaps", 0) or 0),
                "checksum_failures": int(getattr(sh, "checksum_failures", 0) or 0),
                "last_update": _ts(sh.last_update),
            }
            before = seen.get(str(sym))
            if before is not None:
                if before[0] != state:
                    self.add_log(
                        "warn" if state != "LIVE" else "info",
                        name,
                        f"{sym}: {before[0]} -> {state}" + (f" ({why})" if why and state != "LIVE" else ""),
                        ts,
                    )
                if resyncs > before[1]:
                    n = resyncs - before[1]
                    self.add_log("warn", name, f"{sym}: {n} resync{'s' if n != 1 else ''}" + (f" ({why})" if why else ""), ts)
            seen[str(sym)] = (state, resyncs)
        error = _text(h.error_message)
        if error and error != self._errors_seen.get(name):
            self.add_log("error", name, str(error), ts)
        self._errors_seen[name] = error
        if kind == "exchange" and not symbols and not h.connected:
            worst = "SYNCING"
        data = {
            "exchange": name,
            "kind": kind,
            "ts": ts,
            "healthy": bool(h.is_healthy),
            "connected": bool(h.connected),
            "state": worst,
            "error": error,
            "reconnects": int(getattr(h, "reconnects", 0) or 0),
            "resyncs": int(getattr(h, "resyncs", 0) or 0),
            "checksum_failures": int(getattr(h, "checksum_failures", 0) or 0),
            "last_update": _ts(h.last_update),
            "symbols": symbols,
        }
        prev = self.health.get(name)
        if prev is not None:
            data["msg_rate"] = prev.get("msg_rate")
            data["update_rate"] = prev.get("update_rate")
        self.health[name] = data
        self._put(f"health:{name}", "health", data)

    def _metrics(self, events: list[Event]) -> None:
        """Per exchange: frames/s (book messages) and level updates/s, summed over its symbols."""
        per: dict[str, tuple[float, int, float]] = {}
        for event in events:
            m: Any = event.payload
            name = str(m.exchange)
            t, msgs, ups = per.get(name, (event.ts, 0, 0.0))
            per[name] = (max(t, event.ts), msgs + int(m.messages), ups + float(m.updates_per_second))
        for name, (ts, msgs, ups) in per.items():
            prev = self._msg_counts.get(name)
            self._msg_counts[name] = (ts, msgs)
            rate = None
            if prev is not None and ts > prev[0]:
                rate = max(0.0, (msgs - prev[1]) / (ts - prev[0]))
            data = {"exchange": name, "ts": ts, "messages": msgs, "msg_rate": rate, "update_rate": ups}
            self.metrics[name] = data
            health = self.health.get(name)
            if health is not None:
                health["msg_rate"], health["update_rate"] = rate, ups
            self._put(f"metrics:{name}", "metrics", data)

    # -- reading -------------------------------------------------------------------------------------------
    def hello(self) -> bytes:
        return sse_frame(
            "hello",
            {
                "depth": self.depth,
                "history_s": self.history_s,
                "server_time": time.time(),
                "started": self.started,
                "pairs": sorted(self.summaries),
            },
        )

    def initial(self, cursor: Cursor) -> bytes:
        """Everything a new page needs: histories, then every keyed item and the feeds."""
        parts = [self.hello()]
        for pair, hist in self.history.items():
            parts.append(sse_frame("history", {"symbol": pair, "points": list(hist)}))
        parts.append(self.pending(cursor))
        return b"".join(parts)

    def pending(self, cursor: Cursor) -> bytes:
        """The frames ``cursor`` has not been sent yet (and move it past them)."""
        parts: list[bytes] = []
        versions = cursor.versions
        for key, (version, frame) in self._frames.items():
            if versions.get(key, 0) < version:
                versions[key] = version
                parts.append(frame)
        for feed, attr in ((self.arbs, "arb_seq"), (self.log, "log_seq")):
            last = getattr(cursor, attr)
            if feed and feed[-1][0] > last:
                for seq, frame, _ in feed:
                    if seq > last:
                        parts.append(frame)
                setattr(cursor, attr, feed[-1][0])
        return b"".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as one JSON-able dict (``GET /state``)."""
        return {
            "summaries": self.summaries,
            "health": self.health,
            "metrics": self.metrics,
            "open_arbitrage": list(self.open_arbs.values()),
            "arbitrage": [item for _, _, item in self.arbs],
            "log": [item for _, _, item in self.log],
            "history": {pair: list(h) for pair, h in self.history.items()},
        }
