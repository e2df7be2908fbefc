"""Pure parsing of OKX v5 public frames: no I/O, no state.

Frames the ``books`` channel sends (``wss://ws.okx.com:8443/ws/v5/public``)::

    {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot" | "update",
     "data": [{"asks": [[px, sz, "0", numOrders], ...], "bids": [...], "ts": "1597026383085",
               "checksum": 0, "prevSeqId": -1, "seqId": 123456}]}

- a snapshot carries ``prevSeqId = -1``; an update is in order when its ``prevSeqId`` equals
  the previous ``seqId`` (``seqId`` steps are not +1). :func:`parse` normalizes this into
  ``BookUpdate.first = prevSeqId + 1`` and ``last = seqId``;
- an idle heartbeat is an update with empty sides and ``seqId == prevSeqId``; a maintenance
  reset is an update with ``seqId < prevSeqId``: both follow the same rule;
- ``checksum`` is fixed to ``0`` since 2026-06-23 (deprecated); older feeds (the 2022
  captures) carry a signed CRC32 of the interleaved top-25 levels, see :func:`checksum`.

:func:`parse_numeric` decodes ``books`` frames without a checksum (the current feed) straight
into numbers (msgspec, strict off: the same floats as ``float()``); :func:`parse` keeps the wire
strings a checksum needs, and reads every other frame.

Event frames: ``{"event": "subscribe"|"unsubscribe", "arg": {...}, "connId": ...}`` (one ack
per arg), ``{"event": "error", "code": "60018", "msg": ..., "connId": ...}``, the maintenance
``{"event": "notice", "code": "64008", ...}``, and the plain-text ``pong``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import orjson
from aggcore.book import BookUpdate, OrderBook

__all__ = ["CHECKSUM_LEVELS", "Event", "checksum", "checksum_of_levels", "parse", "parse_numeric"]

#: levels per side in the (historical) CRC32
CHECKSUM_LEVELS = 25

_INST_IN_MSG = re.compile(r"instId:\s*([A-Za-z0-9_.\-]+)")


@dataclass(slots=True)
class Event:
    """A non-book frame: ack, error, notice, pong, or data of a channel we do not use."""

    kind: str  # "subscribe" | "unsubscribe" | "error" | "notice" | "pong" | "other"
    code: str | None = None
    msg: str = ""
    channel: str | None = None
    inst_id: str | None = None
    id: str | None = None
    conn_id: str | None = None

    @property
    def symbol(self) -> str | None:
        """The instrument this event is about: its ``arg``, else ``instId:X`` in the message."""
        if self.inst_id:
            return self.inst_id
        m = _INST_IN_MSG.search(self.msg)
        return m.group(1) if m else None


class _Data(msgspec.Struct, gc=False):  # never in a cycle: not tracked by the GC
    asks: list[tuple[float, float, Any, Any]]  # [px, sz, "0", numOrders]
    bids: list[tuple[float, float, Any, Any]]
    ts: int | None = None
    checksum: int = 0
    prevSeqId: int | None = None
    seqId: int | None = None


class _Arg(msgspec.Struct, gc=False):
    channel: Literal["books"]
    instId: str


class _BooksFrame(msgspec.Struct, gc=False):
    arg: _Arg
    data: list[_Data]
    action: str | None = None


_BOOKS = msgspec.json.Decoder(_BooksFrame, strict=False)
_FAST_FAILS = (msgspec.ValidationError, msgspec.DecodeError)


def parse_numeric(frame: str | bytes, *, checksums: bool = True) -> list[BookUpdate] | None:
    """The ``books`` updates of a frame as (price, size) pairs of numbers (``numeric=True``), or
    None for any other frame, and for one that carries a checksum while ``checksums`` (it needs
    the wire strings: :func:`parse`). The same updates as :func:`parse` otherwise."""
    try:
        f = _BOOKS.decode(frame)
    except _FAST_FAILS:
        return None
    inst = f.arg.instId
    snapshot = f.action == "snapshot"
    out: list[BookUpdate] = []
    for d in f.data:
        if d.checksum and checksums:
            return None
        prev = d.prevSeqId
        ts = d.ts
        out.append(
            BookUpdate(
                inst,
                [(p, q) for p, q, _, _ in d.bids],
                [(p, q) for p, q, _, _ in d.asks],
                snapshot=snapshot,
                first=None if snapshot or prev is None else prev + 1,
                last=d.seqId,
                exchange_ts=ts / 1000.0 if ts else None,
                numeric=True,
            )
        )
    return out


def parse(frame: str | bytes, *, checksums: bool = True) -> list[BookUpdate] | Event:
    """Parse one frame into the ``books`` updates it carries, or an :class:`Event`.

    With ``checksums=False`` the exchange's checksum is dropped (never verified).
    Raises ``ValueError``/``KeyError``/``TypeError`` on frames that are not OKX JSON.
    """
    if frame == "pong" or frame == b"pong":
        return Event("pong")
    msg = orjson.loads(frame)
    arg = msg.get("arg")
    data = msg.get("data")
    if data is not None and arg is not None and arg.get("channel") == "books":
        inst = arg["instId"]
        snapshot = msg.get("action") == "snapshot"
        out: list[BookUpdate] = []
        for d in data:
            seq = d.get("seqId")
            prev = d.get("prevSeqId")
            cs = d.get("checksum") if checksums else None
            ts = d.get("ts")
            out.append(
                BookUpdate(
                    inst,
                    d["bids"],
                    d["asks"],
                    snapshot=snapshot,
                    first=None if snapshot or prev is None else prev + 1,
                    last=seq,
                    checksum=cs or None,
                    exchange_ts=int(ts) / 1000.0 if ts else None,
                )
            )
        return out
    event = msg.get("event")
    if event is None:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        return Event("other", channel=channel, inst_id=arg.get("instId") if isinstance(arg, dict) else None)
    return Event(
        str(event),
        code=str(msg["code"]) if msg.get("code") is not None else None,
        msg=str(msg.get("msg", "")),
        channel=arg.get("channel") if isinstance(arg, dict) else None,
        inst_id=arg.get("instId") if isinstance(arg, dict) else None,
        id=str(msg["id"]) if msg.get("id") is not None else None,
        conn_id=msg.get("connId"),
    )


def checksum_of_levels(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's CRC32 from best-first ``(price, size)`` wire strings: ``bid1:ask1:bid2:ask2...``
    over the top 25 of each side (a shorter side is skipped), as a signed 32-bit integer."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts.append(bids[i][0])
            parts.append(bids[i][1])
        if i < len(asks):
            parts.append(asks[i][0])
            parts.append(asks[i][1])
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def checksum(book: OrderBook) -> int:
    """The checksum of a book kept with ``keep_strings`` (exact wire strings)."""
    braw = book.bids.raw
    araw = book.asks.raw
    assert braw is not None and araw is not None, "OKX checksums need keep_strings"
    bids = [braw[p] for p in book.bids.prices(CHECKSUM_LEVELS)]
    asks = [araw[p] for p in book.asks.prices(CHECKSUM_LEVELS)]
    return checksum_of_levels(bids, asks)
