"""Pure parsing of Coinbase frames: no I/O, no state (msgspec for book frames, orjson for the rest).

Advanced Trade market-data envelope (every frame, all channels)::

    {"channel": "l2_data", "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z",
     "sequence_num": 0, "events": [{"type": "snapshot", "product_id": "BTC-USD",
     "updates": [{"side": "bid", "event_time": "...", "price_level": "21921.73",
                  "new_quantity": "0.06317902"}, ...]}]}

- ``l2_data`` events are ``snapshot`` (replace the book) or ``update`` (absolute sizes, zero in
  any spelling deletes); sides are ``bid`` and ``offer``. One frame may carry several events,
  one product each. There is no checksum.
- ``sequence_num`` is one counter per connection across all channels (checked by the connector).
- ``subscriptions`` events list the cumulative subscription set per channel (the ack).
- ``heartbeats`` events carry ``heartbeat_counter`` (an integer, some clients see a string).
- Errors are ``{"type": "error", "message": "..."}`` (no envelope, no ``sequence_num``).

:func:`parse_exchange` parses the Exchange feed's ``level2_batch`` shapes (``snapshot`` with
``bids``/``asks``, ``l2update`` with ``changes``), the format of the retired Pro feed recordings.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

import msgspec
import orjson
from aggcore.book import BookUpdate
from aggcore.errors import ParsingError

__all__ = ["Message", "parse", "parse_exchange", "parse_timestamp"]

#: a level's side -> whether it is a bid (``bid`` and ``offer`` are the protocol's; the others are read too)
_IS_BID = {"bid": True, "buy": True, "offer": False, "ask": False, "sell": False}
_second_cache: dict[str, float] = {}


def parse_timestamp(text: str | None) -> float | None:
    """``2024-10-08T09:10:36.04370306Z`` -> seconds since the epoch (nanosecond digits allowed)."""
    if not text or len(text) < 19:
        return None
    head = text[:19]
    base = _second_cache.get(head)
    if base is None:
        try:
            base = datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return None
        if len(_second_cache) > 64:
            _second_cache.clear()
        _second_cache[head] = base
    tail = text[19:].rstrip("Z")
    if tail.startswith("."):
        digits = tail[1:].split("+", 1)[0].split("-", 1)[0]
        if digits.isdigit():
            return base + int(digits) / float(10 ** len(digits))
    return base


class Message:
    """One parsed frame. ``books`` holds the l2 updates (``BookUpdate.symbol`` is the product id
    as the frame states it); ``subscriptions`` the ack's channel -> products; ``error`` the text of
    an error frame; ``heartbeat`` the heartbeat counter."""

    __slots__ = ("channel", "seq", "timestamp", "books", "subscriptions", "error", "heartbeat")

    def __init__(self, channel: str, seq: int | None, timestamp: float | None) -> None:
        self.channel = channel
        self.seq = seq
        self.timestamp = timestamp
        self.books: list[BookUpdate] = []
        self.subscriptions: dict[str, list[str]] | None = None
        self.error: str | None = None
        self.heartbeat: int | None = None

    def __repr__(self) -> str:
        return f"Message({self.channel!r}, seq={self.seq}, books={self.books}, error={self.error!r})"


def _levels(updates: list[dict[str, Any]], product: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []
    for u in updates:
        side = u["side"]
        level = (u["price_level"], u["new_quantity"])
        is_bid = _IS_BID.get(side)
        if is_bid is None:
            raise ParsingError(f"l2_data {product}: unknown side {side!r}", exchange="coinbase")
        (bids if is_bid else asks).append(level)
    return bids, asks


class _Update(msgspec.Struct, gc=False):  # never in a cycle: not tracked by the GC
    side: str
    price_level: float
    new_quantity: float


class _Event(msgspec.Struct, gc=False):
    type: str
    product_id: str
    updates: list[_Update] | None = None


class _L2Frame(msgspec.Struct, gc=False):
    channel: Literal["l2_data"]
    timestamp: str | None = None
    sequence_num: int | None = None
    events: list[_Event] | None = None


# typed decoding of l2_data frames (nearly every frame): strict off turns the price and
# quantity strings into the same floats as ``float()``; anything else (other channels, errors,
# odd fields or levels) fails here and takes the general path below, as before.
_L2 = msgspec.json.Decoder(_L2Frame, strict=False)
_FAST_FAILS = (msgspec.ValidationError, msgspec.DecodeError)


def _decode_l2(frame: str | bytes) -> Message | None:
    """The fast path of :func:`parse`: an ``l2_data`` frame with numeric levels, else None."""
    try:
        f = _L2.decode(frame)
    except _FAST_FAILS:
        return None
    out = Message("l2_data", f.sequence_num, parse_timestamp(f.timestamp))
    ts = out.timestamp
    for ev in f.events or ():
        kind = ev.type
        if kind != "snapshot" and kind != "update":
            continue  # new event types may appear: ignore what we do not know
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for u in ev.updates or ():
            is_bid = _IS_BID.get(u.side)
            if is_bid is None:
                return None  # the general path raises the error
            (bids if is_bid else asks).append((u.price_level, u.new_quantity))
        out.books.append(BookUpdate(ev.product_id, bids, asks, snapshot=kind == "snapshot", exchange_ts=ts, numeric=True))
    return out


def parse(frame: str | bytes) -> Message:
    """Parse one Advanced Trade frame. Raises ``ParsingError`` (or ``ValueError``/``KeyError``)
    on frames that are not what the protocol says."""
    fast = _decode_l2(frame)
    if fast is not None:
        return fast
    return _parse_any(frame)


def _parse_any(frame: str | bytes) -> Message:
    """:func:`parse` without the typed fast path (every frame; levels as they came)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ParsingError(f"frame is not JSON: {str(frame)[:120]!r}", exchange="coinbase") from exc
    if not isinstance(msg, dict):
        raise ParsingError(f"frame is not a JSON object: {str(frame)[:120]!r}", exchange="coinbase")
    if msg.get("type") == "error":
        out = Message("error", msg.get("sequence_num"), None)
        parts = [str(msg[k]) for k in ("message", "reason") if msg.get(k)]
        out.error = ": ".join(parts) or "error without a message"
        return out
    channel = msg.get("channel") or msg.get("type") or ""
    out = Message(channel, msg.get("sequence_num"), parse_timestamp(msg.get("timestamp")))
    events = msg.get("events") or ()
    if channel == "l2_data":
        ts = out.timestamp
        for ev in events:
            product = ev["product_id"]
            kind = ev.get("type")
            if kind != "snapshot" and kind != "update":
                continue  # new event types may appear: ignore what we do not know
            bids, asks = _levels(ev.get("updates") or [], product)
            out.books.append(BookUpdate(product, bids, asks, snapshot=kind == "snapshot", exchange_ts=ts))
    elif channel == "subscriptions":
        subs: dict[str, list[str]] = {}
        for ev in events:
            for name, products in (ev.get("subscriptions") or {}).items():
                subs.setdefault(name, []).extend(products or [])
        out.subscriptions = subs
    elif channel == "heartbeats":
        for ev in events:
            counter = ev.get("heartbeat_counter")
            if counter is not None:
                out.heartbeat = int(counter)
    return out


def parse_exchange(frame: str | bytes) -> BookUpdate | None:
    """Exchange feed ``level2``/``level2_batch`` (and retired Pro) frames -> a BookUpdate, else None.

    ``snapshot``: ``bids``/``asks`` as ``[price, size]``; ``l2update``: ``changes`` as
    ``[side, price, size]`` with side ``buy``/``sell``.
    """
    msg = orjson.loads(frame)
    kind = msg.get("type")
    if kind == "snapshot":
        return BookUpdate(msg["product_id"], msg["bids"], msg["asks"], snapshot=True, exchange_ts=parse_timestamp(msg.get("time")))
    if kind == "l2update":
        bids = []
        asks = []
        for side, price, size in msg["changes"]:
            if side == "buy":
                bids.append((price, size))
            elif side == "sell":
                asks.append((price, size))
            else:
                raise ParsingError(f"l2update: unknown side {side!r}", exchange="coinbase")
        return BookUpdate(msg["product_id"], bids, asks, exchange_ts=parse_timestamp(msg.get("time")))
    return None
