"""Pure parsing of Bitstamp WebSocket v2 frames and REST bodies (no I/O).

Frames the server sends (verbatim shapes, see the protocol reference):

- diff:  ``{"data": {"timestamp": "1641343691", "microtimestamp": "1641343691406478",
  "bids": [["3800.71", "1.76200000"], ...], "asks": []}, "channel": "diff_order_book_ethusd",
  "event": "data"}`` -- only changed levels, quantity is the new absolute size, a zero
  (``"0.00000000"``, ``"0.00000"`` or ``"0"``) deletes the level;
- top-100 full book on ``order_book_{pair}`` (same data shape, each frame replaces the book);
- ack: ``{"event": "bts:subscription_succeeded", "channel": "diff_order_book_sgbeur", "data": {}}``
  (one per channel), ``bts:unsubscription_succeeded`` likewise;
- heartbeat reply: ``{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}``;
- maintenance: ``{"event": "bts:request_reconnect", "channel": "", "data": null}`` (``data`` may
  also be ``""`` or ``{}``);
- errors: ``{"event": "bts:error", "channel": "", "data": {"code": null, "message": "..."}}``.

There are no sequence numbers and no checksum: a diff's ``microtimestamp`` (an integer, in
microseconds) is its position, so ``BookUpdate.first == last == microtimestamp``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aggcore.book import BookUpdate

__all__ = [
    "DIFF_PREFIX",
    "FULL_PREFIX",
    "Ack",
    "BtsError",
    "Heartbeat",
    "Other",
    "ReconnectRequest",
    "Unsubscribed",
    "diff_channel",
    "parse",
    "parse_snapshot",
]

DIFF_PREFIX = "diff_order_book_"
FULL_PREFIX = "order_book_"
_DIFF_LEN = len(DIFF_PREFIX)
_FULL_LEN = len(FULL_PREFIX)


def diff_channel(symbol: str) -> str:
    """The channel carrying ``symbol``'s full-depth diffs (``diff_order_book_btcusd``)."""
    return DIFF_PREFIX + symbol


def symbol_of(channel: str) -> str | None:
    """The pair of a book channel, or None for other channels."""
    if channel.startswith(DIFF_PREFIX):
        return channel[_DIFF_LEN:]
    if channel.startswith(FULL_PREFIX):
        return channel[_FULL_LEN:]
    return None


class Ack:
    """``bts:subscription_succeeded`` for one channel."""

    __slots__ = ("channel", "symbol")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.symbol = symbol_of(channel)


class Unsubscribed:
    """``bts:unsubscription_succeeded`` for one channel."""

    __slots__ = ("channel", "symbol")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.symbol = symbol_of(channel)


class Heartbeat:
    """The server's answer to our ``bts:heartbeat``."""

    __slots__ = ("status",)

    def __init__(self, status: str | None) -> None:
        self.status = status


class ReconnectRequest:
    """``bts:request_reconnect``: maintenance, reconnect within a few seconds."""

    __slots__ = ()


class BtsError:
    """``bts:error``. ``channel`` is usually ``""`` (the error answers our oldest pending request)."""

    __slots__ = ("code", "message", "channel", "symbol")

    def __init__(self, code: int | str | None, message: str, channel: str) -> None:
        self.code = code
        self.message = message
        self.channel = channel
        self.symbol = symbol_of(channel) if channel else None


class Other:
    """Anything else (trades, order events of channels we do not use)."""

    __slots__ = ("event", "channel")

    def __init__(self, event: str, channel: str) -> None:
        self.event = event
        self.channel = channel


Message = BookUpdate | Ack | Unsubscribed | Heartbeat | ReconnectRequest | BtsError | Other


def _book(symbol: str, data: dict[str, Any], snapshot: bool) -> BookUpdate:
    mts = int(data["microtimestamp"])
    return BookUpdate(
        symbol,
        data["bids"],
        data["asks"],
        snapshot=snapshot,
        first=mts,
        last=mts,
        exchange_ts=mts / 1e6,
    )


class _BookData(msgspec.Struct, gc=False):  # never in a cycle: not tracked by the GC
    microtimestamp: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class _BookFrame(msgspec.Struct, gc=False):
    event: str
    channel: str
    data: _BookData


# typed decoding of book frames (nearly every frame): strict off turns the price/size strings
# (and the microtimestamp string) into the same numbers as ``float()``/``int()``; anything else
# (acks, heartbeats, errors, odd or invalid levels) fails here and takes the general path below.
_BOOK = msgspec.json.Decoder(_BookFrame, strict=False)
_FAST_FAILS = (msgspec.ValidationError, msgspec.DecodeError)


def parse(frame: str | bytes) -> Message:
    """One WebSocket frame -> a :class:`BookUpdate` (book channels) or an event object.

    Raises ``ValueError``/``KeyError``/``TypeError`` on frames that are not Bitstamp's shape
    (the connector reports them as parsing errors).
    """
    try:
        f = _BOOK.decode(frame)
    except _FAST_FAILS:
        return _parse_any(frame)
    if f.event == "data":
        channel = f.channel
        d = f.data
        mts = d.microtimestamp
        if channel.startswith(DIFF_PREFIX):
            return BookUpdate(channel[_DIFF_LEN:], d.bids, d.asks, first=mts, last=mts, exchange_ts=mts / 1e6, numeric=True)
        if channel.startswith(FULL_PREFIX):
            return BookUpdate(channel[_FULL_LEN:], d.bids, d.asks, snapshot=True, first=mts, last=mts, exchange_ts=mts / 1e6, numeric=True)
    return _parse_any(frame)


def _parse_any(frame: str | bytes) -> Message:
    msg = orjson.loads(frame)
    event = msg["event"]
    channel = msg.get("channel") or ""
    if event == "data":
        if channel.startswith(DIFF_PREFIX):
            return _book(channel[_DIFF_LEN:], msg["data"], False)
        if channel.startswith(FULL_PREFIX):
            return _book(channel[_FULL_LEN:], msg["data"], True)
        return Other(event, channel)
    if event == "bts:subscription_succeeded":
        return Ack(channel)
    if event == "bts:unsubscription_succeeded":
        return Unsubscribed(channel)
    if event == "bts:heartbeat":
        data = msg.get("data")
        return Heartbeat(data.get("status") if isinstance(data, dict) else None)
    if event == "bts:request_reconnect":
        return ReconnectRequest()
    if event == "bts:error":
        data = msg.get("data")
        if isinstance(data, dict):
            return BtsError(data.get("code"), str(data.get("message") or "bts:error"), channel)
        return BtsError(None, str(data or "bts:error"), channel)
    return Other(str(event), channel)


def parse_snapshot(symbol: str, body: bytes | str | dict[str, Any]) -> BookUpdate:
    """REST ``GET /api/v2/order_book/{pair}/`` -> a snapshot at its ``microtimestamp``.

    Body: ``{"timestamp": "1641343695", "microtimestamp": "1641343695572693",
    "bids": [["0.14695", "4567.41344936"], ...], "asks": [...]}`` (full depth, best first).
    """
    data = body if isinstance(body, dict) else orjson.loads(body)
    return _book(symbol, data, True)
