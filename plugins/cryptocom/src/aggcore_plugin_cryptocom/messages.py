"""Pure parsing of Crypto.com Exchange v1 market-data frames: no I/O, msgspec for deltas, orjson for the rest.

Every frame is a JSON object with ``id``, ``method`` and ``code`` (an integer, or a string in the
newer docs: both are read). What arrives on ``wss://stream.crypto.com/exchange/v1/market``:

- ``{"id": 1587523073344, "method": "public/heartbeat", "code": 0}``: must be answered with
  ``{"id": <same id>, "method": "public/respond-heartbeat"}`` within 5 s -> :class:`Heartbeat`.
- ``{"id": -1, "method": "subscribe", "code": 0, "result": {"channel": "book", ...}}``: the full
  top-N snapshot of a ``book.{instrument}.{depth}`` subscription (``data[0].bids/asks/u``).
- ``... "channel": "book.update" ...``: a delta, ``data[0].update.bids/asks`` with ``u`` and ``pu``;
  valid only when ``pu`` equals the previous message's ``u`` (equality only: ``u`` values are not
  consecutive). Empty deltas (sent when the book is idle) keep the chain.
- ``{"id": 7, "method": "subscribe", "code": 0}`` (no result): a subscribe/unsubscribe ack -> :class:`Ack`.
- any non-zero ``code``: an error for the request ``id`` (``10004`` "invalid channel", ``40107``
  EXCEED_MAX_SUBSCRIPTIONS, ``42901`` TOO_MANY_REQUESTS, ...) -> :class:`ErrorReply`; the channels
  it names are read from its message text or from the ``original`` request (``method: "ERROR"``).

``t`` (message time, ms) is typed "string (int64)" by the API schema while the examples send a
number: both are read (so are ``u``/``pu`` as strings). Levels are ``[price, quantity, number_of_orders]`` wire strings; quantity ``"0"`` deletes. A delta
becomes ``BookUpdate(first=pu + 1, last=u)`` (the engine's normalization); a snapshot has
``first = last = u``. The undocumented ``cs`` field is ignored (its algorithm is unknown).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
import orjson
from aggcore.book import BookUpdate

__all__ = ["Ack", "BookData", "ErrorReply", "Heartbeat", "channel_symbols", "error_name", "parse"]

ERROR_NAMES: dict[int, str] = {
    10001: "SYS_ERROR",
    10004: "BAD_REQUEST",
    10006: "TOO_MANY_REQUESTS",
    209: "INVALID_INSTRUMENT",
    30003: "SYMBOL_NOT_FOUND",
    40001: "BAD_REQUEST",
    40003: "INVALID_REQUEST",
    40004: "MISSING_OR_INVALID_ARGUMENT",
    40107: "EXCEED_MAX_SUBSCRIPTIONS",
    42901: "TOO_MANY_REQUESTS",
    50001: "ERR_INTERNAL",
}
#: codes after which the same request may succeed later (retried with backoff, book not failed)
RETRYABLE_CODES = frozenset({10001, 10006, 42901, 50001})

_CHANNEL = re.compile(r"book\.([A-Za-z0-9_\-]+)\.\d+")


class Heartbeat:
    __slots__ = ("id",)

    def __init__(self, id: Any) -> None:
        self.id = id


class Ack:
    __slots__ = ("id", "method")

    def __init__(self, id: Any, method: str) -> None:
        self.id = id
        self.method = method


class ErrorReply:
    """A non-zero ``code``: ``symbols`` are the instruments named in the reply itself (if any)."""

    __slots__ = ("id", "method", "code", "message", "symbols")

    def __init__(self, id: Any, method: str, code: int | str, message: str, symbols: list[str]) -> None:
        self.id = id
        self.method = method
        self.code = code
        self.message = message
        self.symbols = symbols

    @property
    def retryable(self) -> bool:
        return isinstance(self.code, int) and self.code in RETRYABLE_CODES

    def describe(self) -> str:
        name = error_name(self.code)
        text = f"{self.method} rejected: {name}" if name else f"{self.method} rejected"
        return f"{text}: {self.message}" if self.message else text


class BookData:
    __slots__ = ("updates",)

    def __init__(self, updates: list[BookUpdate]) -> None:
        self.updates = updates


Message = Heartbeat | Ack | ErrorReply | BookData | None


def error_name(code: int | str) -> str | None:
    return ERROR_NAMES.get(code) if isinstance(code, int) else None


def channel_symbols(text: str) -> list[str]:
    """Instruments of the ``book.{instrument}.{depth}`` channels named in a text."""
    return _CHANNEL.findall(text)


def _code(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _seconds(t: Any) -> float | None:
    """``t`` (ms) as seconds. The API schema types it "string (int64)", the examples send a number:
    both are read; anything else is no timestamp (it only feeds the latency metric)."""
    if t is None:
        return None
    try:
        return float(t) / 1000.0
    except (TypeError, ValueError):
        return None


class _Sides(msgspec.Struct, gc=False):  # never in a cycle: not tracked by the GC
    bids: list[tuple[float, float, Any]] | None = None
    asks: list[tuple[float, float, Any]] | None = None


class _Delta(msgspec.Struct, gc=False):
    update: _Sides
    pu: int
    u: int
    t: float | None = None


class _DeltaResult(msgspec.Struct, gc=False):
    channel: Literal["book.update"]
    instrument_name: str
    data: list[_Delta]


class _DeltaFrame(msgspec.Struct, gc=False):
    result: _DeltaResult
    code: Literal[0] = 0


# typed decoding of book.update frames (nearly every frame): strict off turns the price and
# quantity strings into the same floats as ``float()`` (and ``u``/``pu``/``t`` sent as strings
# into numbers, as the general path reads them); anything else (snapshots, heartbeats, acks,
# errors, odd fields or levels) fails here and takes the general path below, as before.
_DELTA = msgspec.json.Decoder(_DeltaFrame, strict=False)
_FAST_FAILS = (msgspec.ValidationError, msgspec.DecodeError)


def parse(frame: str | bytes) -> Message:
    """One frame -> a message object, or ``None`` for frames of no interest (other channels)."""
    try:
        f = _DELTA.decode(frame)
    except _FAST_FAILS:
        return _parse_any(frame)
    symbol = f.result.instrument_name
    updates = []
    for d in f.result.data:
        up = d.update
        t = d.t
        updates.append(
            BookUpdate(
                symbol,
                [(p, q) for p, q, _ in up.bids] if up.bids else (),
                [(p, q) for p, q, _ in up.asks] if up.asks else (),
                first=d.pu + 1,
                last=d.u,
                exchange_ts=t / 1000.0 if t is not None else None,
                numeric=True,
            )
        )
    return BookData(updates)


def _parse_any(frame: str | bytes) -> Message:
    """:func:`parse` without the typed fast path (every frame; levels as they came)."""
    msg = orjson.loads(frame)
    method = msg.get("method", "")
    code = msg.get("code", 0)
    if code != 0 and code != "0":
        return _error(msg, method, code)
    result = msg.get("result")
    if result is None:
        if method == "public/heartbeat":
            return Heartbeat(msg.get("id"))
        return Ack(msg.get("id"), method)
    channel = result.get("channel")
    if channel == "book.update":
        symbol = result["instrument_name"]
        updates = []
        for d in result["data"]:
            up = d["update"]
            pu = int(d["pu"])
            t = d.get("t")
            updates.append(
                BookUpdate(
                    symbol,
                    up.get("bids") or (),
                    up.get("asks") or (),
                    first=pu + 1,
                    last=int(d["u"]),
                    exchange_ts=_seconds(t),
                )
            )
        return BookData(updates)
    if channel == "book":
        symbol = result["instrument_name"]
        updates = []
        for d in result["data"]:
            u = int(d["u"])
            t = d.get("t")
            updates.append(
                BookUpdate(
                    symbol,
                    d.get("bids") or (),
                    d.get("asks") or (),
                    snapshot=True,
                    first=u,
                    last=u,
                    exchange_ts=_seconds(t),
                )
            )
        return BookData(updates)
    return None


def _error(msg: dict[str, Any], method: str, code: Any) -> ErrorReply:
    message = str(msg.get("message") or msg.get("msg") or "")
    original = msg.get("original")
    symbols = channel_symbols(message)
    if original is not None:
        symbols += channel_symbols(original if isinstance(original, str) else orjson.dumps(original).decode())
    result = msg.get("result")
    if isinstance(result, dict):
        if result.get("instrument_name"):
            symbols.append(result["instrument_name"])
        symbols += channel_symbols(str(result.get("subscription", "")))
    return ErrorReply(msg.get("id"), method or "request", _code(code), message, list(dict.fromkeys(symbols)))
