"""Pure parsing of Bybit v5 public frames: no I/O, orjson, one call per frame.

Frames (``wss://stream.bybit.com/v5/public/{spot,linear}``):

- book: ``{"topic":"orderbook.50.BTCUSDT","type":"snapshot"|"delta","ts":ms,"data":{"s":..,
  "b":[[price,size],..],"a":[..],"u":N,"seq":N},"cts":ms}`` (parse by key: spot puts ``ts``
  before ``type``). Every ``snapshot`` replaces the book (``u`` = 1 after a service restart);
  a ``delta`` continues ``u`` by exactly one per topic; ``seq`` is a cross sequence that is
  not contiguous and is never gap-checked. Size ``"0"`` deletes a level.
- subscribe/unsubscribe acknowledgement: ``{"success":bool,"ret_msg":..,"conn_id":..,
  "req_id":..,"op":"subscribe"}`` (spot ``ret_msg`` is ``"subscribe"``, linear ``""``);
  failures name the topic inside ``ret_msg`` (``error:handler not found,topic:...``,
  ``Invalid symbol :[orderbook.50.X]``) or not at all (``args size >10``).
- pong: ``{"success":true,"ret_msg":"pong","op":"ping",..}`` (spot, linear);
  ``{"op":"pong","args":[..]}`` (option/spread).
- maintenance: ``{"topic":"system.status","data":[{..,"state":..,"begin":..,"end":..}]}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aggcore.book import BookUpdate

__all__ = [
    "Ack",
    "Pong",
    "SystemStatus",
    "Unknown",
    "failed_topic",
    "parse",
    "topic_for",
    "topic_symbol",
]


@dataclass(frozen=True, slots=True)
class Ack:
    """A command reply (``op`` subscribe/unsubscribe/...), successful or not."""

    op: str
    success: bool
    ret_msg: str
    req_id: str | None
    conn_id: str | None


@dataclass(frozen=True, slots=True)
class Pong:
    conn_id: str | None


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """A ``system.status`` push: planned or ongoing maintenance entries."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def ongoing(self, now_ms: float) -> list[dict[str, Any]]:
        out = []
        for item in self.items:
            try:
                begin, end = float(item.get("begin") or 0), float(item.get("end") or 0)
            except (TypeError, ValueError):
                continue
            if item.get("state") != "completed" and begin <= now_ms <= (end or now_ms):
                out.append(item)
        return out


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame this plugin does not use (other topics, unexpected shapes)."""

    message: Any


Event = BookUpdate | Ack | Pong | SystemStatus | Unknown

_TOPIC_IN_MSG = re.compile(r"topic:([A-Za-z0-9_.\-]+)")
_BRACKETED = re.compile(r"\[([^\]\s,]+)")


def topic_for(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


def topic_symbol(topic: str) -> str | None:
    """``orderbook.50.BTCUSDT`` -> ``BTCUSDT`` (None for other topics)."""
    parts = topic.split(".", 2)
    if len(parts) == 3 and parts[0] == "orderbook":
        return parts[2]
    return None


def failed_topic(ret_msg: str) -> str | None:
    """The topic a failed reply names, if any (``error:handler not found,topic:orderbook.500.X``)."""
    m = _TOPIC_IN_MSG.search(ret_msg) or _BRACKETED.search(ret_msg)
    return m.group(1) if m else None


class _BookData(msgspec.Struct, gc=False):  # never in a cycle: not tracked by the GC
    s: str
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    u: int


class _BookFrame(msgspec.Struct, gc=False):
    topic: str
    type: str
    data: _BookData
    ts: int | float | None = None


# typed decoding of book frames (nearly every frame): strict off turns the price/size strings
# into the same floats as ``float()``; anything else (control frames, other topics, odd or
# invalid levels) fails here and takes the general path below.
_BOOK = msgspec.json.Decoder(_BookFrame, strict=False)
_FAST_FAILS = (msgspec.ValidationError, msgspec.DecodeError)


def parse(frame: str | bytes) -> Event:
    """One frame -> a :class:`BookUpdate` (``symbol`` is Bybit's symbol) or a control event.

    ``first == last == u`` so the engine's contiguous rule checks ``u == previous u + 1``.
    Raises ``ValueError``/``KeyError`` on a malformed frame (the connector reports it).
    """
    try:
        f = _BOOK.decode(frame)
    except _FAST_FAILS:
        return _parse_any(frame)
    if not f.topic.startswith("orderbook."):
        return _parse_any(frame)
    d = f.data
    return BookUpdate(
        d.s, d.b, d.a, snapshot=f.type == "snapshot", first=d.u, last=d.u,
        exchange_ts=f.ts / 1000.0 if f.ts is not None else None, numeric=True,
    )  # fmt: skip


def _parse_any(frame: str | bytes) -> Event:
    m = orjson.loads(frame)
    topic = m.get("topic") if type(m) is dict else None
    if topic is not None:
        if topic.startswith("orderbook."):
            data = m["data"]
            u = int(data["u"])
            ts = m.get("ts")
            return BookUpdate(
                data["s"],
                data["b"],
                data["a"],
                snapshot=m["type"] == "snapshot",
                first=u,
                last=u,
                exchange_ts=ts / 1000.0 if ts is not None else None,
            )
        if topic == "system.status":
            return SystemStatus(list(m.get("data") or []))
        return Unknown(m)
    if type(m) is not dict:
        return Unknown(m)
    op = m.get("op")
    if op == "pong" or (op == "ping" and m.get("ret_msg") == "pong"):
        return Pong(m.get("conn_id"))
    if "success" in m:
        req_id = m.get("req_id")
        return Ack(
            str(op or ""),
            bool(m["success"]),
            str(m.get("ret_msg") or ""),
            str(req_id) if req_id not in (None, "") else None,
            m.get("conn_id"),
        )
    return Unknown(m)
