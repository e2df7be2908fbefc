"""A fake Bitstamp (WebSocket API v2 + REST) over real sockets on 127.0.0.1.

What it speaks, like the real exchange:

- ``bts:subscribe`` / ``bts:unsubscribe`` with one ``channel`` per frame, answered by
  ``bts:subscription_succeeded`` / ``bts:unsubscription_succeeded`` per channel. A diff channel
  of a known pair then carries ``diff_order_book_{pair}`` frames (only changed levels, full
  depth, each with its own ``microtimestamp``); any other well-formed lowercase channel, known
  pair or not, is acknowledged and then silent (as Bitstamp does for unknown pairs).
- Errors keep the socket open: ``Incorrect JSON format.`` (not JSON), ``Bad subscription
  string.`` (unknown event such as ``bts:ping``, no channel), ``Invalid channel provided.``
  (wrong case, slash forms, channels listed in ``reject``); all with ``"channel": ""``.
- ``bts:heartbeat`` is answered ``{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}``.
- Client frames over 512 bytes close the socket with 1009; the 1,025th subscription on one
  connection closes it without a word.
- ``request_reconnect()`` sends ``bts:request_reconnect`` and closes the socket a few seconds later.
- REST ``/api/v2/trading-pairs-info/`` and ``/api/v2/order_book/{pair}/`` (trailing slash
  optional). The snapshot lags the stream by ``rest_lag_steps`` steps (never to before the
  symbol's latest subscription), so buffered diffs both older and newer than the snapshot
  reach the client, including same-second-but-older ones; ``stale_snapshots = n`` serves the
  next n snapshots from ~64 steps back (a lagging REST cache). Zero sizes are spelled
  ``"0.00000000"``, ``"0.00000"`` or ``"0"`` at random.

Faults: DUPLICATE (the copy has the same microtimestamp), DISCONNECT, STALL, MALFORMED,
ERROR_REPLY (a ``bts:error`` naming the symbol's channel), REST_429 (with ``Retry-After``),
OVERSIZE_SNAPSHOT (a REST book with thousands of extra far levels). GAP, REORDER and
BAD_CHECKSUM cannot be expressed: Bitstamp has no sequence numbers and no checksum, so a lost
or reordered diff is invisible to any client. ``send_crossing(symbol)`` sends a diff that
crosses the book (the client must re-seed from REST).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session

from .messages import DIFF_PREFIX

__all__ = ["FakeBitstamp"]

_CHANNEL = re.compile(r"^(order_book|detail_order_book|diff_order_book|live_trades|live_orders)_[a-z0-9-]+$")
_ZEROS = ("0.00000000", "0.00000", "0")
MAX_CHANNELS = 1024


def _event(event: str, channel: str = "", data: Any = None) -> str:
    return orjson.dumps({"event": event, "channel": channel, "data": data}).decode()


def _error(message: str, channel: str = "", code: int | None = None) -> str:
    return _event("bts:error", channel, {"code": code, "message": message})


class FakeBitstamp(FakeExchange):
    """Bitstamp's public v2 protocol, for tests, the conformance suite and offline demos."""

    name = "bitstamp"
    # no sequence numbers and no checksum: no client can see a lost, reordered or corrupted diff
    # (the connector's periodic refresh repairs such books); no in-band snapshots; no HTTP 418
    supported_faults = frozenset(Fault) - {Fault.BAD_CHECKSUM, Fault.GAP, Fault.REORDER, Fault.REST_418, Fault.SNAPSHOT}
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        "btcusd": InstrumentSpec("BTC", "USD", mid=30000.0, tick=1.0, price_precision=0, qty_precision=8),
        "ethusd": InstrumentSpec("ETH", "USD", mid=2000.0, tick=0.1, price_precision=1, qty_precision=8),
    }
    ws_path = ""
    rest_path = ""
    max_size = 512  # "read limited at 513 bytes": bigger client frames close with 1009

    def __init__(self, *args: Any, rest_lag_steps: int = 0, reject: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rest_lag_steps = rest_lag_steps
        self.reject: set[str] = set(reject or ())  # channels refused with "Invalid channel provided."
        self._closers: set[asyncio.Task[None]] = set()
        self.stale_snapshots = 0  # the next N REST books come from ~64 steps back, whatever the subscription
        self._clock = 0
        self.mts: dict[str, int] = {s: self._tick_us() for s in self.books}
        self.sub_mts: dict[str, int] = {}
        self.history: dict[str, deque[tuple[int, dict[str, str], dict[str, str]]]] = {
            s: deque([(self.mts[s], dict(b.bids), dict(b.asks))], maxlen=max(rest_lag_steps + 1, 64)) for s, b in self.books.items()
        }

    def _tick_us(self) -> int:
        self._clock = max(self._clock + 1, time.time_ns() // 1000)
        return self._clock

    # -- REST ---------------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        path = path.rstrip("/")
        if path == "/api/v2/trading-pairs-info":
            return 200, [self._pair_info(sym, spec) for sym, spec in self.specs.items()]
        if path.startswith("/api/v2/order_book/"):
            pair = path[len("/api/v2/order_book/") :]
            if pair not in self.books:
                return 404, {"status": "error", "reason": f"Unknown currency pair: {pair}"}
            return 200, self.rest_snapshot(pair)
        return 404, {"status": "error", "reason": "Not found"}

    @staticmethod
    def _pair_info(sym: str, spec: InstrumentSpec) -> dict[str, Any]:
        return {
            "trading": spec.extra.get("trading", "Enabled"),
            "base_decimals": spec.qty_precision,
            "url_symbol": sym,
            "name": f"{spec.base}/{spec.quote}",
            "instant_and_market_orders": "Enabled",
            "minimum_order": f"10.0 {spec.quote}",
            "counter_decimals": spec.price_precision,
            "description": f"{spec.base} / {spec.quote}",
        }

    def rest_snapshot(self, pair: str) -> dict[str, Any]:
        """The REST book, ``rest_lag_steps`` behind the stream but not before the latest subscription."""
        pending = self.take_fault(Fault.OVERSIZE_SNAPSHOT, pair)
        if pending is not None:
            mts = self.mts[pair]
            bids, asks = self.books[pair].deep_snapshot(int(pending.params.get("levels", 20000)))
        else:
            history = self.history[pair]
            if self.stale_snapshots > 0:
                self.stale_snapshots -= 1
                mts, b, a = history[0]
            else:
                floor = self.sub_mts.get(pair, 0)
                eligible = [h for h in history if h[0] >= floor] or [history[-1]]
                mts, b, a = eligible[max(0, len(eligible) - 1 - self.rest_lag_steps)]
            bids = sorted(b.items(), key=lambda kv: -float(kv[0]))
            asks = sorted(a.items(), key=lambda kv: float(kv[0]))
        return {
            "timestamp": str(mts // 1_000_000),
            "microtimestamp": str(mts),
            "bids": [[p, q] for p, q in bids],
            "asks": [[p, q] for p, q in asks],
        }

    # -- WebSocket ------------------------------------------------------------------------------------
    def on_message(self, session: Session, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            session.send_soon(_error("Incorrect JSON format."))
            return
        event = msg.get("event") if isinstance(msg, dict) else None
        if event == "bts:heartbeat":
            session.send_soon(_event("bts:heartbeat", "", {"status": "success"}))
            return
        if event not in ("bts:subscribe", "bts:unsubscribe"):
            session.send_soon(_error("Bad subscription string."))
            return
        data = msg.get("data")
        channel = data.get("channel") if isinstance(data, dict) else None
        if not isinstance(channel, str) or not channel:
            session.send_soon(_error("Bad subscription string."))
            return
        if not _CHANNEL.match(channel) or channel in self.reject:
            session.send_soon(_error("Invalid channel provided."))
            return
        channels: set[str] = session.state.setdefault("channels", set())
        pair = channel[len(DIFF_PREFIX) :] if channel.startswith(DIFF_PREFIX) else None
        if event == "bts:unsubscribe":
            channels.discard(channel)
            if pair is not None:
                self.unsubscribe(session, pair)
            session.send_soon(_event("bts:unsubscription_succeeded", channel, {}))
            return
        channels.add(channel)
        if len(channels) > MAX_CHANNELS:
            session.ws.transport.abort()  # silently closed
            return
        session.send_soon(_event("bts:subscription_succeeded", channel, {}))
        if pair is not None and pair in self.books:
            self.sub_mts[pair] = self._clock
            self.subscribe(session, pair)

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        return _error(message, DIFF_PREFIX + symbol if symbol else "")

    # -- order flow -------------------------------------------------------------------------------------
    def on_step(self, symbol: str, changes: list[Change]) -> None:
        mts = self._tick_us()
        self.mts[symbol] = mts
        book = self.books[symbol]
        self.history[symbol].append((mts, dict(book.bids), dict(book.asks)))

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        if not changes:
            return []
        return [self._diff(symbol, self.mts[symbol], changes)]

    def _diff(self, symbol: str, mts: int, changes: list[Change]) -> str:
        rng = self.rng
        bids = [[c.price, c.qty if float(c.qty) else rng.choice(_ZEROS)] for c in changes if c.side == "bid"]
        asks = [[c.price, c.qty if float(c.qty) else rng.choice(_ZEROS)] for c in changes if c.side == "ask"]
        data = {"timestamp": str(mts // 1_000_000), "microtimestamp": str(mts), "bids": bids, "asks": asks}
        return orjson.dumps({"data": data, "channel": DIFF_PREFIX + symbol, "event": "data"}).decode()

    # -- exchange events tests can trigger ----------------------------------------------------------------
    def request_reconnect(self, close_after_s: float = 3.0) -> None:
        """Maintenance: ``bts:request_reconnect`` to every client, then close their sockets."""
        loop = asyncio.get_running_loop()

        async def close_later(session: Session) -> None:
            await asyncio.sleep(close_after_s)
            await session.ws.close(1001, "server restart")

        for session in list(self.sessions):
            session.send_soon(_event("bts:request_reconnect", "", None))
            task = loop.create_task(close_later(session))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    def send_crossing(self, symbol: str) -> None:
        """A diff (not applied to the truth) whose bid reaches the best ask: the client must re-seed."""
        book = self.books[symbol]
        price = book.fmt_price(int(round(book.best_ask() / book.tick)) + 1)
        frame = self._diff(symbol, self._tick_us(), [Change("bid", price, book.fmt_qty(1.0))])
        for session in self.sessions_for(symbol):
            session.send_soon(frame)
