"""Events like the ones the runtime publishes, for sink tests: summaries, arbitrage, health.

``sample_events(n)`` is deterministic (seeded), and the index ``i`` of every event is recoverable
from its publish time with :func:`event_seq`, so a test can check that exactly the emitted
events arrived, once each. The times cross a UTC midnight (two date partitions).

Together ``sample_events``, ``sample_books`` and ``sample_metrics`` give every field of every
payload type a value other than its default in some event (:func:`unset_fields` checks it), so
a sink test that compares every field compares real values. A field added to a public type
needs a value here too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import msgspec

from ..models import ArbitrageOpportunity, BookState, HealthStatus, Metrics, PriceLevel, Summary, SymbolHealth
from ..sink import Event, EventKind

__all__ = [
    "VENUES", "event_seq", "json_field_gaps", "payload_type", "sample_books", "sample_events", "sample_metrics", "unset_fields"
]

VENUES = ("binance", "bybit", "okx", "kraken", "coinbase", "bitstamp", "cryptocom")
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
T0 = datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=timezone.utc)  # crosses midnight: two date partitions


def _levels(rng: random.Random, base: float, side: int, t: datetime, n: int) -> list[PriceLevel]:
    out = []
    for k in range(n):
        out.append(
            PriceLevel(
                price=round(base + side * (k + 1) * 0.5, 2),
                quantity=round(rng.uniform(0.001, 5), 6),
                exchange=rng.choice(VENUES),
                timestamp=t - timedelta(microseconds=rng.randrange(1, 900_000)),
            )
        )
    return out


def sample_events(n: int, *, seed: int = 1, step_ms: float = 7.0, levels: int = 5) -> list[Event]:
    """``n`` events, about 80% summaries, 12% arbitrage, 8% health; event ``i`` has ``ts = T0 + i*step``."""
    rng = random.Random(seed)
    out: list[Event] = []
    open_arbs: dict[str, tuple[str, str]] = {}
    for i in range(n):
        t = T0 + timedelta(milliseconds=i * step_ms)
        ts = t.timestamp()
        r = rng.random()
        pair = PAIRS[i % len(PAIRS)]
        if r < 0.8:
            mid = 1000.0 * (1 + PAIRS.index(pair)) + i  # the mid encodes i: event_seq() recovers it
            bids = _levels(rng, mid - 0.25, -1, t, levels)
            crossed = i % 41 == 7  # now and then a crossed book: the best ask below the best bid
            asks = _levels(rng, mid - 1.75, +1, t, levels) if crossed else _levels(rng, mid + 0.25, +1, t, levels)
            venues = sorted({lv.exchange for lv in bids + asks})
            summary = Summary(
                symbol=pair,
                spread=asks[0].price - bids[0].price,
                bids=bids,
                asks=asks,
                timestamp=t,
                mid=(asks[0].price + bids[0].price) / 2,
                best_bid=bids[0].price,
                best_ask=asks[0].price,
                crossed=crossed,
                venues=venues,
                excluded={"okx": "STALE"} if i % 5 == 0 else {},
                venue_age_ms={v: round(rng.uniform(0, 50), 3) for v in venues},
            )
            out.append(Event("summary", summary, ts=ts))
        elif r < 0.92:
            buy, sell = rng.sample(VENUES, 2)
            if pair in open_arbs and rng.random() < 0.5:
                buy, sell = open_arbs.pop(pair)
                kind: Literal["opened", "updated", "closed"] = "closed"
            else:
                kind = "updated" if pair in open_arbs else "opened"
                if kind == "updated":
                    buy, sell = open_arbs[pair]
                open_arbs[pair] = (buy, sell)
            buy_fee, sell_fee = (0.001, 0.0008) if i % 2 else (0.0004, 0.00075)
            gross = 0.5 / (100.0 + i) * 100
            opp = ArbitrageOpportunity(
                buy_exchange=buy,
                sell_exchange=sell,
                symbol=pair,
                buy_price=100.0 + i,
                sell_price=100.5 + i,
                profit_percentage=gross - (buy_fee + sell_fee) * 100,
                volume=round(rng.uniform(0.01, 2), 6),
                timestamp=t,
                event=kind,
                profit=round(rng.uniform(0, 10), 6),
                duration_ms=float(i),
                peak_profit_percentage=0.6,
                peak_volume=2.5,
                gross_spread_percentage=gross,
                buy_fee=buy_fee,
                sell_fee=sell_fee,
            )
            out.append(Event("arbitrage", opp, ts=ts))
        else:
            venue = VENUES[i % len(VENUES)]
            if i % 4 == 0:  # a sink's health: its event accounting, no books
                health = HealthStatus(
                    exchange="sink:file",
                    kind="sink",
                    is_healthy=i % 8 != 0,
                    last_update=t,
                    error_message=None if i % 8 else "cannot write: No space left on device",
                    connected=True,
                    events={"produced": 3 * i, "delivered": 3 * i - 2, "dropped": 1, "in_flight": 1, "dropped_write_error": 1},
                )
            else:
                health = HealthStatus(
                    exchange=venue,
                    is_healthy=i % 3 != 0,
                    last_update=t,
                    error_message=None if i % 3 else f"gap at {i}",
                    connected=True,
                    reconnects=i,
                    resyncs=i // 2,
                    checksum_failures=i % 5,
                    symbols={
                        PAIRS[0]: SymbolHealth(symbol=PAIRS[0], state=BookState.LIVE, last_update=t, age_ms=1.5, last_sequence=i, resyncs=1),
                        PAIRS[1]: SymbolHealth(
                            symbol=PAIRS[1], state=BookState.RESYNCING, last_update=None if i % 2 else t, age_ms=None,
                            last_sequence=None, resyncs=2, gaps=i % 4 + 1, checksum_failures=1, crossed_books=i % 3,
                            invalid_messages=i % 7 + 1, error_message=f"sequence gap at {i}",
                            waiting_for="its snapshot (ask again)", next_retry_s=round(0.25 + (i % 10) / 8, 3),
                        ),
                    },
                )  # fmt: skip
            out.append(Event("health", health, ts=ts))
    return out


def sample_books(n: int, *, levels: int = 20) -> list[Event]:
    """``n`` ``book`` events (:class:`aggcore.bus.BookMessage`) of three venues, one every 11 ms;
    every 9th book is RESYNCING (no levels), every other one has no exchange time."""
    from ..bus import BookMessage

    out = []
    for i in range(n):
        t = T0.timestamp() + i * 0.011
        live = i % 9 != 4
        bids = [(100.0 - k * 0.5 - i * 0.01, 1.0 + k) for k in range(levels)] if live else []
        asks = [(100.5 + k * 0.5 + i * 0.01, 2.0 + k) for k in range(levels)] if live else []
        msg = BookMessage(
            venue=VENUES[i % 3], symbol="BTCUSDT", pair="BTC/USDT", state="LIVE" if live else "RESYNCING",
            reason=None if live else "sequence gap: expected 5, got 7", epoch=1_700_000_000_000_000_000 + i // 10,
            version=i % 10 + 1, bids=bids, asks=asks, exchange_ts=None if i % 2 else t - 0.003,
            receipt_ts=t - 0.001, seen_ts=t - 0.0005, published_ts=t,
        )  # fmt: skip
        out.append(Event("book", msg, ts=t))
    return out


def sample_metrics(n: int) -> list[Event]:
    """``n`` ``metrics`` events, one every 13 ms, cycling through the venues and pairs."""
    out = []
    for i in range(n):
        t = T0 + timedelta(milliseconds=13 * i)
        m = Metrics(
            exchange=VENUES[i % len(VENUES)], symbol=PAIRS[i % len(PAIRS)], updates_per_second=10.0 + i,
            latency_ms=0.5 + i / 100, error_count=i % 4, last_update=None if i % 5 == 0 else t, messages=100 * i,
            level_updates=300 * i, gaps=i % 3, resyncs=i % 2, checksum_failures=i % 5 // 4,
        )  # fmt: skip
        out.append(Event("metrics", m, ts=t.timestamp()))
    return out


def event_seq(ts: float, step_ms: float = 7.0) -> int:
    """The index ``i`` :func:`sample_events` gave the event published at ``ts`` (``Event.ts``)."""
    return round((ts - T0.timestamp()) * 1000 / step_ms)


def payload_type(kind: EventKind) -> type[msgspec.Struct]:
    """The public type of a ``kind`` event's payload (what a sink stores)."""
    from ..bus import BookMessage

    types: dict[str, type[msgspec.Struct]] = {
        "summary": Summary, "arbitrage": ArbitrageOpportunity, "health": HealthStatus, "metrics": Metrics, "book": BookMessage,
    }  # fmt: skip
    return types[kind]


def unset_fields(events: Iterable[Event]) -> list[str]:
    """``Type.field`` of every field (nested types included) that has a default and keeps it in all
    of ``events``: a test comparing stored values with these events would not see that field."""
    seen: dict[type[msgspec.Struct], set[str]] = {}
    types: set[type[msgspec.Struct]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, msgspec.Struct):
            t = type(value)
            types.add(t)
            done = seen.setdefault(t, set())
            for f in msgspec.structs.fields(t):
                v = getattr(value, f.name)
                if f.default is not msgspec.NODEFAULT and v != f.default:
                    done.add(f.name)
                elif f.default_factory is not msgspec.NODEFAULT and v != f.default_factory():
                    done.add(f.name)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for x in value:
                walk(x)
        elif isinstance(value, dict):
            for x in value.values():
                walk(x)

    for e in events:
        walk(e.payload)
        types.update(_struct_types(msgspec.inspect.type_info(type(e.payload))))
    out = []
    for t in sorted(types, key=lambda t: t.__name__):
        for f in msgspec.structs.fields(t):
            has_default = f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
            if has_default and f.name not in seen.get(t, ()):
                out.append(f"{t.__name__}.{f.name}")
    return out


def _struct_types(info: msgspec.inspect.Type) -> set[type[msgspec.Struct]]:
    """Every Struct type ``info`` is or holds (in fields, lists, dicts, unions)."""
    out: set[type[msgspec.Struct]] = set()
    todo = [info]
    while todo:
        t = todo.pop()
        if isinstance(t, msgspec.inspect.StructType):
            if t.cls not in out:
                out.add(t.cls)
                todo.extend(f.type for f in t.fields)
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType, msgspec.inspect.SetType)):
            todo.append(t.item_type)
        elif isinstance(t, msgspec.inspect.DictType):
            todo.append(t.value_type)
        elif isinstance(t, msgspec.inspect.UnionType):
            todo.extend(t.types)
        elif isinstance(t, msgspec.inspect.TupleType):
            todo.extend(t.item_types)
    return out


def json_field_gaps(value: Any, typ: type[msgspec.Struct], path: str = "") -> list[str]:
    """Where the JSON ``value`` stored for a ``typ`` payload (nested objects included) lacks a field
    of the type, or has a key that is none: ``["data.symbols{}.SymbolHealth: missing ['waiting_for']"]``.
    Derived from the type (``msgspec.inspect``), so a field added to a public type shows here."""
    return _gaps(value, msgspec.inspect.type_info(typ), path or typ.__name__)


def _gaps(value: Any, info: msgspec.inspect.Type, path: str) -> list[str]:
    if value is None:
        return []
    if isinstance(info, msgspec.inspect.UnionType):
        return [m for t in info.types if not isinstance(t, msgspec.inspect.NoneType) for m in _gaps(value, t, path)]
    if isinstance(info, msgspec.inspect.StructType):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object of {info.cls.__name__}"]
        names = {f.encode_name: f for f in info.fields}
        out = []
        if names.keys() - value.keys():
            out.append(f"{path}: missing {sorted(names.keys() - value.keys())} of {info.cls.__name__}")
        if value.keys() - names.keys():
            out.append(f"{path}: {sorted(value.keys() - names.keys())} are not fields of {info.cls.__name__}")
        return out + [m for k, f in names.items() if k in value for m in _gaps(value[k], f.type, f"{path}.{k}")]
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)) and isinstance(value, list):
        return [m for x in value for m in _gaps(x, info.item_type, f"{path}[]")]
    if isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        return [m for x in value.values() for m in _gaps(x, info.value_type, f"{path}{{}}")]
    return []
