"""Kraken frame parsing and the book checksum: pure functions, no I/O.

WebSocket v2 (``wss://ws.kraken.com/v2``) frames are JSON objects:

- ``{"channel":"book","type":"snapshot"|"update","data":[{"symbol","bids","asks","checksum","timestamp"}]}``;
  levels are ``{"price": <number>, "qty": <number>}``; qty 0 deletes; ``data`` holds one entry.
- ``{"channel":"heartbeat"}`` (about once a second when nothing else is sent),
  ``{"channel":"status","type":"update","data":[{"system":"online"|"maintenance"|"cancel_only"|"post_only",...}]}``.
- Replies to requests: ``{"method":"subscribe","result":{...,"symbol":"BTC/USD"},"success":true,...}`` (one per
  symbol), ``{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD"}``,
  ``{"method":"pong","req_id":N}``.

Prices and quantities are JSON numbers carrying the engine's precision (``0.5660``); the checksum
needs those exact digits, so each number is re-formatted with the pair's ``price_precision`` /
``qty_precision`` (fast path, orjson), or, when a precision is unknown, read as its literal text.

WebSocket v1 (``wss://ws.kraken.com``, frozen) frames are arrays with string levels; they are parsed
by :func:`parse_v1` so the shared checksum routine can be checked on real v1 captures.

Checksum (v1 and v2): top 10 asks ascending then top 10 bids descending; for each level the price
string then the quantity string, each with ``.`` removed and leading zeros stripped; all
concatenated; CRC32 (zlib), unsigned 32-bit.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from aggcore.book import BookUpdate, OrderBook
from aggcore.errors import ParsingError

__all__ = [
    "CHECKSUM_DEPTH",
    "HEARTBEAT",
    "Event",
    "Heartbeat",
    "Instruments",
    "Pong",
    "Reply",
    "Status",
    "book_checksum",
    "checksum_levels",
    "formats_for",
    "parse",
    "parse_v1",
]

CHECKSUM_DEPTH = 10

#: per native symbol: (price format spec, quantity format spec), e.g. (".1f", ".8f")
Formats = Mapping[str, tuple[str, str]]


# -- checksum -------------------------------------------------------------------------------------------


#: a wire string's checksum digits, by the string: a book's top levels change a few at a time,
#: so nearly every string of a checksum was seen by the one before (cleared when it grows large)
_DIGITS: dict[str, str] = {}
_DIGITS_MAX = 65_536


def _digits(text: str) -> str:
    """``text`` without its decimal point and leading zeros (remembered in ``_DIGITS``)."""
    if len(_DIGITS) >= _DIGITS_MAX:
        _DIGITS.clear()
    digits = _DIGITS[text] = text.replace(".", "").lstrip("0")
    return digits


def checksum_levels(asks: Iterable[Sequence[str]], bids: Iterable[Sequence[str]]) -> int:
    """CRC32 of the top levels as wire strings: asks best (lowest) first, then bids best first."""
    get = _DIGITS.get
    parts: list[str] = []
    append = parts.append
    for levels in (asks, bids):
        for level in levels:
            price = level[0]
            append(get(price) or _digits(price))
            qty = level[1]
            append(get(qty) or _digits(qty))
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


#: a level's (price, quantity) wire strings -> their checksum digits, joined (bounded like ``_DIGITS``)
_PAIRS: dict[tuple[str, str], str] = {}


def _pair_digits(level: tuple[str, str]) -> str:
    if len(_PAIRS) >= _DIGITS_MAX:
        _PAIRS.clear()
    digits = _PAIRS[level] = _digits(level[0]) + _digits(level[1])
    return digits


def book_checksum(book: OrderBook) -> int:
    """The Kraken checksum of a book kept with ``keep_strings`` (``SyncRules.checksum``): what
    :func:`checksum_levels` gives for its top levels, each level's digits read from a cache
    (the book keeps a level's wire strings as one tuple while the level is unchanged)."""
    asks_raw = book.asks.raw
    bids_raw = book.bids.raw
    if asks_raw is None or bids_raw is None:
        raise ValueError("Kraken checksums need the wire strings: SyncRules(keep_strings=True)")
    get = _PAIRS.get
    parts = [get(level) or _pair_digits(level) for level in map(asks_raw.__getitem__, book.asks.prices(CHECKSUM_DEPTH))]
    parts += [get(level) or _pair_digits(level) for level in map(bids_raw.__getitem__, book.bids.prices(CHECKSUM_DEPTH))]
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


def formats_for(price_precision: int | None, qty_precision: int | None) -> tuple[str, str] | None:
    """Format specs for a pair's precisions, or None when either is unknown."""
    if price_precision is None or qty_precision is None:
        return None
    return f".{price_precision}f", f".{qty_precision}f"


# -- events other than book updates ------------------------------------------------------------------


class Event:
    """Base of the non-book messages :func:`parse` returns."""

    __slots__ = ()


class Heartbeat(Event):
    __slots__ = ()

    def __repr__(self) -> str:
        return "Heartbeat()"


HEARTBEAT = Heartbeat()


class Status(Event):
    """Channel ``status`` (v2) / ``systemStatus`` (v1): the trading engine's state."""

    __slots__ = ("system", "version", "connection_id")

    def __init__(self, system: str, version: str | None = None, connection_id: int | None = None) -> None:
        self.system = system
        self.version = version
        self.connection_id = connection_id

    def __repr__(self) -> str:
        return f"Status({self.system!r}, version={self.version!r})"


class Pong(Event):
    __slots__ = ("req_id",)

    def __init__(self, req_id: int | None) -> None:
        self.req_id = req_id


class Reply(Event):
    """A reply to a request (subscribe/unsubscribe), or a bare error message."""

    __slots__ = ("method", "success", "symbol", "channel", "error", "req_id")

    def __init__(
        self,
        method: str | None,
        success: bool,
        *,
        symbol: str | None = None,
        channel: str | None = None,
        error: str | None = None,
        req_id: int | None = None,
    ) -> None:
        self.method = method
        self.success = success
        self.symbol = symbol
        self.channel = channel
        self.error = error
        self.req_id = req_id

    def __repr__(self) -> str:
        return f"Reply({self.method!r}, success={self.success}, symbol={self.symbol!r}, error={self.error!r})"


class Instruments(Event):
    """Channel ``instrument``: ``pairs`` as the exchange lists them (snapshot or update)."""

    __slots__ = ("pairs", "snapshot")

    def __init__(self, pairs: list[dict[str, Any]], snapshot: bool) -> None:
        self.pairs = pairs
        self.snapshot = snapshot


Parsed = BookUpdate | Event


# -- v2 ---------------------------------------------------------------------------------------------------


def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _literal(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _limit(spec: str) -> float:
    # a decimal of at most 15 significant digits survives the trip through a float exactly
    return 10.0 ** (15 - int(spec[1:-1]))


def _exact_as_float(entry: dict[str, Any], fmt: tuple[str, str]) -> bool:
    """True when every number of ``entry`` has at most 15 significant digits at its precision."""
    plim = _LIMITS.get(fmt[0]) or _LIMITS.setdefault(fmt[0], _limit(fmt[0]))
    qlim = _LIMITS.get(fmt[1]) or _LIMITS.setdefault(fmt[1], _limit(fmt[1]))
    for side in (entry["bids"], entry["asks"]):
        for lv in side:
            if lv["qty"] >= qlim or lv["price"] >= plim:
                return False
    return True


_LIMITS: dict[str, float] = {}


def _exact_entry(frame: str | bytes, index: int) -> dict[str, Any]:
    """Entry ``index`` of ``data`` with every JSON number as its literal text (no float)."""
    text = frame.decode() if isinstance(frame, bytes) else frame
    entry: dict[str, Any] = json.loads(text, parse_float=str)["data"][index]
    return entry


def parse(frame: str | bytes, formats: Formats) -> list[Parsed]:
    """Parse one v2 frame into book updates and events (unknown channels give ``[]``)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ParsingError(f"kraken: frame is not JSON: {frame[:120]!r}", exchange="kraken") from exc
    if type(msg) is not dict:
        raise ParsingError(f"kraken: unexpected frame {frame[:120]!r}", exchange="kraken")
    channel = msg.get("channel")
    if channel == "book":
        snapshot = msg.get("type") == "snapshot"
        out: list[Parsed] = []
        for i, entry in enumerate(msg["data"]):
            symbol = entry["symbol"]
            fmt = formats.get(symbol)
            if fmt is not None and _exact_as_float(entry, fmt):
                fp, fq = fmt
                bids = [(format(lv["price"], fp), format(lv["qty"], fq)) for lv in entry["bids"]]
                asks = [(format(lv["price"], fp), format(lv["qty"], fq)) for lv in entry["asks"]]
            else:
                exact = _exact_entry(frame, i)
                bids = [(_literal(lv["price"]), _literal(lv["qty"])) for lv in exact["bids"]]
                asks = [(_literal(lv["price"]), _literal(lv["qty"])) for lv in exact["asks"]]
            out.append(
                BookUpdate(
                    symbol,
                    bids,
                    asks,
                    snapshot=snapshot,
                    checksum=entry.get("checksum"),
                    exchange_ts=_ts(entry.get("timestamp")),
                )
            )
        return out
    if channel == "heartbeat":
        return [HEARTBEAT]
    if channel == "status":
        data = msg.get("data") or [{}]
        d = data[0]
        return [Status(str(d.get("system", "unknown")), d.get("version"), d.get("connection_id"))]
    if channel == "instrument":
        data = msg.get("data") or {}
        return [Instruments(list(data.get("pairs") or []), msg.get("type") == "snapshot")]
    method = msg.get("method")
    if method == "pong":
        return [Pong(msg.get("req_id"))]
    error = msg.get("error") or msg.get("Error")
    if method is not None or error is not None:
        result = msg.get("result") or {}
        return [
            Reply(
                method,
                bool(msg.get("success", error is None)),
                symbol=msg.get("symbol") or result.get("symbol"),
                channel=result.get("channel"),
                error=str(error) if error is not None else None,
                req_id=msg.get("req_id"),
            )
        ]
    return []


# -- v1 (frozen; for real captures) ------------------------------------------------------------------


def parse_v1(frame: str | bytes) -> list[Parsed]:
    """Parse one v1 frame: ``[channelID, {"as","bs"} | {"a"},{"b","c"}, "book-N", "XBT/USD"]`` and events.

    Levels stay the wire strings ``[price, volume, timestamp(, "r")]``; ``c`` (quoted unsigned
    CRC32) is read from whichever book object carries it (the last one).
    """
    msg = orjson.loads(frame)
    if type(msg) is dict:
        event = msg.get("event")
        if event == "heartbeat":
            return [HEARTBEAT]
        if event == "systemStatus":
            return [Status(str(msg.get("status")), msg.get("version"), msg.get("connectionID"))]
        if event == "pong":
            return [Pong(msg.get("reqid"))]
        if event == "subscriptionStatus":
            ok = msg.get("status") in ("subscribed", "unsubscribed")
            sub = msg.get("subscription") or {}
            return [Reply(str(msg.get("status")), ok, symbol=msg.get("pair"), channel=sub.get("name"), error=msg.get("errorMessage"))]
        return []
    if type(msg) is not list or len(msg) < 4 or not str(msg[-2]).startswith("book"):
        return []
    symbol = msg[-1]
    bids: list[Any] = []
    asks: list[Any] = []
    snapshot = False
    checksum: int | None = None
    for obj in msg[1:-2]:
        if "as" in obj or "bs" in obj:
            snapshot = True
            asks.extend(obj.get("as", ()))
            bids.extend(obj.get("bs", ()))
        asks.extend(obj.get("a", ()))
        bids.extend(obj.get("b", ()))
        if "c" in obj:
            checksum = int(obj["c"])
    return [BookUpdate(symbol, bids, asks, snapshot=snapshot, checksum=checksum)]
