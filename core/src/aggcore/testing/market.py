"""A generative order book: seeded random-walk order flow with realistic depth, and its truth."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Change", "GenBook"]


@dataclass(frozen=True, slots=True)
class Change:
    """One level change as an exchange would send it: ``qty == "0"`` style zero deletes."""

    side: str  # "bid" | "ask"
    price: str
    qty: str


class GenBook:
    """A deterministic (seeded) L2 book that drifts.

    ``step()`` applies 1..``max_changes`` changes (size changes near the top, inserts,
    deletes, and a slow random walk of the mid) and returns them with wire-string prices and
    quantities formatted to ``price_precision``/``qty_precision``. ``bids``/``asks`` are the
    truth (price string -> quantity string) after every step; ``seq`` counts steps.
    """

    def __init__(
        self,
        *,
        mid: float = 30000.0,
        tick: float = 0.01,
        price_precision: int = 2,
        qty_precision: int = 6,
        depth: int = 50,
        seed: int = 0,
        max_changes: int = 8,
        drift: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.tick = tick
        self.pp = price_precision
        self.qp = qty_precision
        self.depth = depth
        self.max_changes = max_changes
        self.mid = mid
        self.drift = drift  # mean relative move of the mid per step (demo venues drift apart)
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.seq = 0
        self.recorded: set[tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]] = set()
        self._record_n = 0
        self._fill()

    # -- formatting ---------------------------------------------------------------------------
    def fmt_price(self, ticks: int) -> str:
        return f"{ticks * self.tick:.{self.pp}f}"

    def fmt_qty(self, qty: float) -> str:
        return f"{qty:.{self.qp}f}"

    def _qty(self, level: int) -> float:
        base = 0.05 + self.rng.expovariate(1.0) * (1 + level / 10)
        return max(base, 10.0 ** -self.qp)

    def _mid_ticks(self) -> int:
        return int(round(self.mid / self.tick))

    def _fill(self) -> None:
        m = self._mid_ticks()
        for i in range(1, self.depth + 1):
            self.bids[self.fmt_price(m - i)] = self.fmt_qty(self._qty(i))
            self.asks[self.fmt_price(m + i)] = self.fmt_qty(self._qty(i))

    # -- reading --------------------------------------------------------------------------------
    def best_bid(self) -> float:
        return max(float(p) for p in self.bids)

    def best_ask(self) -> float:
        return min(float(p) for p in self.asks)

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Best ``n`` levels of each side as wire strings, best first."""
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))[:n]
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:n]
        return bids, asks

    def truth(self, n: int | None = None) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The book as floats, best first (what a correct client book holds)."""
        bids, asks = self.top(n or max(len(self.bids), len(self.asks)))
        return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]

    def record(self, n: int) -> None:
        """From now on remember the top-``n`` of every state the book passes through, so a test
        can check that a client's book, whenever it changed, equalled one of them (``was_state``)."""
        self._record_n = n
        self._remember()

    def _remember(self) -> None:
        bids, asks = self.truth(self._record_n)
        self.recorded.add((tuple(bids), tuple(asks)))

    def was_state(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> bool:
        """Whether the book's top-n (``n`` as given to :meth:`record`) was ever the truth."""
        return (tuple(bids), tuple(asks)) in self.recorded

    # -- flow -------------------------------------------------------------------------------------
    def step(self) -> list[Change]:
        rng = self.rng
        self.seq += 1
        changes: dict[tuple[str, str], Change] = {}
        if self.drift:
            self.mid *= 1 + self.drift * rng.gauss(0, 1)
        m = self._mid_ticks()
        for _ in range(rng.randint(1, self.max_changes)):
            side = "bid" if rng.random() < 0.5 else "ask"
            book = self.bids if side == "bid" else self.asks
            r = rng.random()
            level = min(int(rng.expovariate(1 / 6)), self.depth - 1) + 1
            if r < 0.6 and book:
                # size change at an existing level near the top
                keys = sorted(book, key=float, reverse=(side == "bid"))
                price = keys[min(level - 1, len(keys) - 1)]
                qty = self.fmt_qty(self._qty(level))
            elif r < 0.8 and len(book) > self.depth // 2:
                keys = sorted(book, key=float, reverse=(side == "bid"))
                price = keys[min(level - 1, len(keys) - 1)]
                qty = self.fmt_qty(0)
            else:
                ticks = m - level if side == "bid" else m + level
                price = self.fmt_price(ticks)
                qty = self.fmt_qty(self._qty(level))
            changes[(side, price)] = Change(side, price, qty)
        # keep the book uncrossed after a mid move: remove levels on the wrong side of the mid
        for price in [p for p in self.bids if float(p) >= m * self.tick]:
            changes[("bid", price)] = Change("bid", price, self.fmt_qty(0))
        for price in [p for p in self.asks if float(p) <= m * self.tick]:
            changes[("ask", price)] = Change("ask", price, self.fmt_qty(0))
        out = []
        for ch in changes.values():
            book = self.bids if ch.side == "bid" else self.asks
            if float(ch.qty) == 0:
                if ch.price not in book:
                    continue
                del book[ch.price]
            else:
                if ch.side == "bid" and float(ch.price) >= m * self.tick:
                    continue
                if ch.side == "ask" and float(ch.price) <= m * self.tick:
                    continue
                book[ch.price] = ch.qty
            out.append(ch)
        # refill so the book never empties
        for side, book, sign in (("bid", self.bids, -1), ("ask", self.asks, 1)):
            while len(book) < max(2, self.depth // 2):
                far = max((abs(round(float(p) / self.tick) - m) for p in book), default=0)
                ticks = m + sign * (far + 1)
                price = self.fmt_price(ticks)
                qty = self.fmt_qty(self._qty(self.depth))
                book[price] = qty
                out.append(Change(side, price, qty))
        if self._record_n:
            self._remember()
        return out

    def deep_snapshot(self, levels: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """A snapshot padded far beyond the live depth (for oversize-frame faults): extra levels
        are far from the mid and carry the real book at the top."""
        bids, asks = self.top(self.depth)
        m = self._mid_ticks()
        # start beyond every existing level: a padded price must never repeat a real one
        far = max([self.depth + 10] + [abs(round(float(p) / self.tick) - m) + 1 for p in (*self.bids, *self.asks)])
        extra_b = [(self.fmt_price(m - far - i), self.fmt_qty(1)) for i in range(levels)]
        extra_a = [(self.fmt_price(m + far + i), self.fmt_qty(1)) for i in range(levels)]
        return bids + extra_b, asks + extra_a


def digits(tick: float) -> int:
    return max(0, -int(math.floor(math.log10(tick) + 1e-9)))
