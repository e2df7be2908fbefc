"""Workloads shared by the hot-path benchmark: Binance-shaped text frames and REST snapshots.

Every workload is a list of ``(venue, frame)`` pairs (``venue`` indexes ``snapshots``) plus one
REST depth body per venue and symbol, so every design replays exactly the same strings.

- ``synthetic``: one seeded 1000+1000-level book, 1-12 changes per message (~6.5 after
  de-duplication; about 2/3 size changes, 1/6 deletes, 1/6 inserts, 1% deletes of absent
  levels), depth from the top exponential with a mean of 25 levels.
- ``seven``: seven such books ("venues", mids a tick apart) of the same pair, interleaved with
  weights 4:3:2:2:1:1:1.
- ``binance-rec``: the real capture ``BINANCE.ws.1.0`` + its REST snapshots
  ``BINANCE.http.0.0``, replayed until ~``n`` frames with ``U``/``u`` renumbered so every replay
  is contiguous (repeated updates of the same levels: real frame shapes, not new market data).
"""

from __future__ import annotations

import random
from bisect import insort
from dataclasses import dataclass, field
from typing import Any

import orjson

SYMBOL = "BTCUSDT"
STREAM = "btcusdt@depth@100ms"


@dataclass
class Workload:
    name: str
    frames: list[tuple[int, str]]  # (venue index, frame text)
    snapshots: list[dict[str, str]]  # per venue: native symbol -> REST depth body (text)
    level_updates: int
    note: str = ""
    truth: list[dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]]] = field(default_factory=list)

    @property
    def levels_per_msg(self) -> float:
        return self.level_updates / max(1, len(self.frames))

    def symbols(self) -> list[str]:
        return sorted({s for snaps in self.snapshots for s in snaps})


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


class SynthBook:
    """A seeded 1000-level book on a 0.01 tick; ``step()`` returns one depthUpdate payload."""

    def __init__(self, seed: int, mid_ticks: int = 3_000_000, levels: int = 1000) -> None:
        self.rng = random.Random(seed)
        self.bids: list[int] = []  # ascending ticks
        self.asks: list[int] = []
        self.qty: dict[tuple[int, int], str] = {}  # (side 0 bid / 1 ask, tick) -> qty string
        t = mid_ticks - 1
        while len(self.bids) < levels:  # sparse: about every other tick holds a level
            if self.rng.random() < 0.55:
                self.bids.append(t)
                self.qty[(0, t)] = self._qty()
            t -= 1
        self.bids.reverse()
        t = mid_ticks + 1
        while len(self.asks) < levels:
            if self.rng.random() < 0.55:
                self.asks.append(t)
                self.qty[(1, t)] = self._qty()
            t += 1
        self.update_id = 1_000_000 + seed * 1000

    def _qty(self) -> str:
        return f"{self.rng.expovariate(1.0) * 2 + 0.0001:.8f}"

    def snapshot(self) -> str:
        bids = [[_price(t), self.qty[(0, t)]] for t in reversed(self.bids)]
        asks = [[_price(t), self.qty[(1, t)]] for t in self.asks]
        return orjson.dumps({"lastUpdateId": self.update_id, "bids": bids, "asks": asks}).decode()

    def truth(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = [(float(_price(t)), float(self.qty[(0, t)])) for t in reversed(self.bids[-10:])]
        asks = [(float(_price(t)), float(self.qty[(1, t)])) for t in self.asks[:10]]
        return bids, asks

    def step(self, ts_ms: int) -> tuple[str, int]:
        rng = self.rng
        changes: dict[tuple[int, int], str] = {}
        for _ in range(rng.randint(1, 12)):
            side = 0 if rng.random() < 0.5 else 1
            keys = self.bids if side == 0 else self.asks
            depth = min(int(rng.expovariate(1 / 25)), len(keys) - 1)
            idx = len(keys) - 1 - depth if side == 0 else depth
            r = rng.random()
            if r < 0.66:  # size change of an existing level
                tick = keys[idx]
                q = self._qty()
                self.qty[(side, tick)] = q
            elif r < 0.83 and len(keys) > 900:  # delete an existing level
                tick = keys.pop(idx)
                del self.qty[(side, tick)]
                q = "0.00000000"
            elif r < 0.99:  # insert (or resize) near the top, never crossing the other side
                best = keys[-1] if side == 0 else keys[0]
                off = int(rng.expovariate(1 / 50)) - 2
                if side == 0:
                    tick = min(best - off, self.asks[0] - 1)
                else:
                    tick = max(best + off, self.bids[-1] + 1)
                if (side, tick) not in self.qty:
                    insort(keys, tick)
                q = self._qty()
                self.qty[(side, tick)] = q
            else:  # delete a price the book does not hold (beyond the local depth)
                tick = (keys[0] - 1 - rng.randrange(100)) if side == 0 else (keys[-1] + 1 + rng.randrange(100))
                if (side, tick) in self.qty:
                    continue
                q = "0.00000000"
            changes[(side, tick)] = q
        b = [[_price(t), q] for (s, t), q in changes.items() if s == 0]
        a = [[_price(t), q] for (s, t), q in changes.items() if s == 1]
        n = len(b) + len(a)
        first = self.update_id + 1
        self.update_id += n
        payload: dict[str, Any] = {"e": "depthUpdate", "E": ts_ms, "s": SYMBOL, "U": first, "u": self.update_id, "b": b, "a": a}
        return orjson.dumps({"stream": STREAM, "data": payload}).decode(), n


def synthetic(n: int, seed: int = 42) -> Workload:
    book = SynthBook(seed)
    snap = book.snapshot()
    frames: list[tuple[int, str]] = []
    total = 0
    ts = 1_700_000_000_000
    for i in range(n):
        frame, k = book.step(ts + i)
        frames.append((0, frame))
        total += k
    return Workload("synthetic", frames, [{SYMBOL: snap}], total,
                    "1 book, 1000+1000 levels, tick 0.01", [{SYMBOL: book.truth()}])  # fmt: skip


def seven(n: int, seed: int = 7, spacing: int = 0) -> Workload:
    """Seven venues of one pair; with ``spacing`` their mids are that many ticks apart (so the
    venues' books cross each other: every pair of venues is an arbitrage candidate)."""
    mids = [3_000_000 + (spacing * i if spacing else (i % 3) - 1) for i in range(7)]
    books = [SynthBook(seed * 100 + i, mid_ticks=mids[i]) for i in range(7)]
    snaps = [{SYMBOL: b.snapshot()} for b in books]
    rng = random.Random(seed)
    order = [0] * 4 + [1] * 3 + [2] * 2 + [3] * 2 + [4, 5, 6]
    frames: list[tuple[int, str]] = []
    total = 0
    ts = 1_700_000_000_000
    for i in range(n):
        v = rng.choice(order)
        frame, k = books[v].step(ts + i)
        frames.append((v, frame))
        total += k
    name, note = "seven", "7 venues x 1000+1000 levels, one pair, weights 4:3:2:2:1:1:1"
    if spacing:
        name, note = "seven-crossing", note + f", mids {spacing} ticks apart (the venues cross each other)"
    return Workload(name, frames, snaps, total, note, [{SYMBOL: b.truth()} for b in books])


def binance_recorded(n: int) -> Workload | None:
    """The real capture, replayed with renumbered update ids; None when the capture is absent."""
    from aggcore.testing.recordings import Recording, recording_path

    ws_path = recording_path("BINANCE.ws.1.0")
    http_path = recording_path("BINANCE.http.0.0")
    if ws_path is None or http_path is None:
        return None
    snaps: dict[str, dict[str, Any]] = {}
    for rec in Recording(http_path).http():
        if "/depth" in rec.url:
            sym = rec.url.split("symbol=", 1)[1].split("&", 1)[0]
            snaps[sym] = orjson.loads(rec.body)
    payloads = []
    for f in Recording(ws_path).frames():
        msg = orjson.loads(f.text)
        data = msg.get("data") if isinstance(msg, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate" and data["s"] in snaps:
            payloads.append((msg["stream"], data))
    if not payloads:
        return None
    # a client drops events with u <= lastUpdateId (Binance's rule), so the replay does too
    last = {s: int(body["lastUpdateId"]) for s, body in snaps.items()}
    payloads = [(st, d) for st, d in payloads if int(d["u"]) > last[d["s"]]]
    # Each pass ends with one depthUpdate per symbol that takes the book back to its snapshot
    # (the diff between the two states), so every pass replays the same, uncrossed trajectory.
    state = {s: {side: {float(p): (p, q) for p, q in body[side]} for side in ("bids", "asks")} for s, body in snaps.items()}
    start = {s: {side: dict(levels) for side, levels in sides.items()} for s, sides in state.items()}
    for _, data in payloads:
        for side, key in (("bids", "b"), ("asks", "a")):
            book = state[data["s"]][side]
            for p, q in data[key]:
                if float(q) == 0.0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = (p, q)
    restore = []
    for sym, sides in state.items():
        diff: dict[str, list[list[str]]] = {"b": [], "a": []}
        for side, key in (("bids", "b"), ("asks", "a")):
            now, then = sides[side], start[sym][side]
            diff[key] += [[p, "0.00000000"] for f, (p, _) in now.items() if f not in then]
            diff[key] += [[p, q] for f, (p, q) in then.items() if f not in now or float(now[f][1]) != float(q)]
        if diff["b"] or diff["a"]:
            stream = next(st for st, d in payloads if d["s"] == sym)
            restore.append((stream, {"e": "depthUpdate", "E": payloads[-1][1]["E"], "s": sym, "U": 0, "u": 0, **diff}))
    one_pass = payloads + restore
    ids = dict(last)
    frames: list[tuple[int, str]] = []
    total = 0
    while len(frames) < n:
        for stream, data in one_pass:
            if len(frames) >= n:
                break
            span = max(1, int(data["u"]) - int(data["U"]) + 1)
            sym = data["s"]
            payload = dict(data, U=ids[sym] + 1, u=ids[sym] + span)
            ids[sym] += span
            total += len(data["b"]) + len(data["a"])
            frames.append((0, orjson.dumps({"stream": stream, "data": payload}).decode()))
    bodies = {s: orjson.dumps(body).decode() for s, body in snaps.items()}
    return Workload(
        "binance-rec",
        frames,
        [bodies],
        total,
        f"{len(snaps)} real REST snapshots + {len(payloads)} recorded depthUpdate frames (+{len(restore)} per pass "
        "taking the books back to their snapshots), replayed with renumbered U/u",
    )
