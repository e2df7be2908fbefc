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
needs those exact digits, so book frames are decoded (msgspec) with each number as its literal
text. Text with exactly the pair's ``price_precision`` / ``qty_precision`` decimals is used as it
is; any other (the docs' examples strip zeros: ``0.566``) is formatted with the precision where
a float holds it exactly; with no precision known, the literal text is used.

WebSocket v1 (``wss://ws.kraken.com``, frozen) frames are arrays with string levels; they are parsed
by :func:`parse_v1` so the shared checksum routine can be checked on real v1 captures.

Checksum (v1 and v2): top 10 asks ascending then top 10 bids descending; for each level the price
string then the quantity string, each with ``.`` removed and leading zeros stripped; all
concatenated; CRC32 (zlib), unsigned 32-bit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
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
    "level_digits",
    "parse",
    "parse_v1",
]

CHECKSUM_DEPTH = 10

#: per native symbol: (price format spec, quantity format spec), e.g. (".1f", ".8f")
Formats = Mapping[str, tuple[str, str]]


# -- checksum -------------------------------------------------------------------------------------------


#: a wire string's checksum digits, by the string, for :func:`checksum_levels` (the fake's
#: checksums): a book's top levels change a few at a time, so nearly every string of a checksum
#: was seen by the one before (cleared when it grows large)
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


def level_digits(price: str, qty: str) -> str:
    """A level's checksum digits, the price's then the quantity's, each without its decimal
    point and leading zeros: what a Kraken book keeps per level (``SyncRules.level_text``), made
    once when the level is applied, so that a checksum joins ten values per side."""
    return price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")


def book_checksum(book: OrderBook) -> int:
    """The Kraken checksum of a book kept with ``keep_strings`` (``SyncRules.checksum``): what
    :func:`checksum_levels` gives for its top levels, each level's digits as the book keeps them
    (:func:`level_digits`; from the wire strings when the book keeps those)."""
    asks = book.asks
    bids = book.bids
    asks_raw = asks.raw
    bids_raw = bids.raw
    if asks_raw is None or bids_raw is None:
        raise ValueError("Kraken checksums need the wire strings: SyncRules(keep_strings=True)")
    parts = list(map(asks_raw.__getitem__, asks.prices(CHECKSUM_DEPTH)))
    parts += map(bids_raw.__getitem__, bids.prices(CHECKSUM_DEPTH))
    if asks.text is not level_digits or bids.text is not level_digits:
        parts = [level_digits(*level) for level in parts]
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


#: per format spec (".8f"): (where its decimal point sits, counted from the end, or 0 for none;
#: the bound under which a number survives the trip through a float)
_SPECS: dict[str, tuple[int, float]] = {}


def _spec(spec: str) -> tuple[int, float]:
    places = int(spec[1:-1])
    known = _SPECS[spec] = (places + 1 if places > 0 else 0, _limit(spec))
    return known


def _wire(value: Any, spec: str, bound: float) -> str:
    """A number whose text lacks the pair's precision (or an integer): formatted with it when
    the float is exact, else its literal text."""
    number = float(value)
    return format(number, spec) if abs(number) < bound else _literal(value)


def _levels(levels: list[_Level], fmt: tuple[str, str] | None) -> list[tuple[str, str]]:
    """Levels as the wire strings the checksum reads. A number's literal text is kept when it
    has exactly the pair's decimals (live frames do: ``0.00000000``); any other text is
    formatted with the pair's precision where a float holds it exactly (the docs' examples
    strip zeros: ``0.566``); with no precision known, the literal text."""
    if fmt is None:
        return [(_literal(lv.price), _literal(lv.qty)) for lv in levels]
    fp, fq = fmt
    kp, bp = _SPECS.get(fp) or _spec(fp)
    kq, bq = _SPECS.get(fq) or _spec(fq)
    out = []
    for lv in levels:
        p = lv.price
        if type(p) is not str or not kp or len(p) < kp or p[-kp] != ".":
            p = _wire(p, fp, bp)
        q = lv.qty
        if type(q) is not str or not kq or len(q) < kq or q[-kq] != ".":
            q = _wire(q, fq, bq)
        out.append((p, q))
    return out


class _Level(msgspec.Struct):
    price: Any  # a str (the number's text) or an int
    qty: Any


class _Entry(msgspec.Struct):
    symbol: str
    bids: list[_Level] = []
    asks: list[_Level] = []
    checksum: Any = None
    timestamp: Any = None


class _BookFrame(msgspec.Struct):
    channel: Literal["book"]
    data: list[_Entry]
    type: str = "update"


#: book frames, each JSON number with a fraction or an exponent read as its text (strict off:
#: no float is made, so the checksum digits are exactly the wire's)
_BOOK = msgspec.json.Decoder(_BookFrame, float_hook=str)


def parse(frame: str | bytes, formats: Formats) -> list[Parsed]:
    """Parse one v2 frame into book updates and events (unknown channels give ``[]``)."""
    try:
        book = _BOOK.decode(frame)
    except msgspec.DecodeError as exc:
        return _parse_any(frame, exc)
    snapshot = book.type == "snapshot"
    out: list[Parsed] = []
    for entry in book.data:
        fmt = formats.get(entry.symbol)
        out.append(
            BookUpdate(
                entry.symbol,
                _levels(entry.bids, fmt),
                _levels(entry.asks, fmt),
                snapshot=snapshot,
                checksum=entry.checksum,
                exchange_ts=_ts(entry.timestamp),
            )
        )
    return out


def _parse_any(frame: str | bytes, book_error: msgspec.DecodeError) -> list[Parsed]:
    """Every frame that is not a well-formed book frame."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ParsingError(f"kraken: frame is not JSON: {frame[:120]!r}", exchange="kraken") from exc
    if type(msg) is not dict:
        raise ParsingError(f"kraken: unexpected frame {frame[:120]!r}", exchange="kraken")
    channel = msg.get("channel")
    if channel == "book":
        raise ParsingError(f"kraken: malformed book frame ({book_error}): {frame[:120]!r}", exchange="kraken") from book_error
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
