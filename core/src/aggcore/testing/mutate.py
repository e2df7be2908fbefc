"""Adversarial rewrites of an exchange's own JSON frames and REST bodies, for fault injection.

The fake-exchange toolkit (:class:`~aggcore.testing.server.FakeExchange`) applies these to the
frames a plugin's fake already produces, so every fake gets the adversarial faults without
protocol-specific code. They find the *levels* in a message by shape:

- a list of lists whose first two items are numbers or numeric strings (``[["30000.1", "0.5"], ...]``),
  the side taken from the key holding it (``b``/``bids``/``buy``... -> bid, ``a``/``asks``/``sell``... -> ask);
- a list of dicts with two numeric-string values (Coinbase's ``{"side": "bid", "price_level": ..,
  "new_quantity": ..}``), the side taken from a ``side`` key.

A fake whose messages look different overrides ``FakeExchange.mutate_levels``.

Every rewrite is *invalid by construction*: a client must reject it (an impossible level, a
value of the wrong type, text that is not JSON), never read it as other valid data. So a fake
can send a fuzzed copy of a frame next to the real one, and a correct client's book never
differs from the exchange's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = [
    "IMPOSSIBLE_LEVELS",
    "absurd_sequence",
    "far_levels",
    "fuzz",
    "impossible_level",
    "levels_of",
    "strip_levels",
]

#: (what, price, quantity): ``None`` keeps the original value
IMPOSSIBLE_LEVELS: list[tuple[str, str | None, str | None]] = [
    ("quantity -5", None, "-5"),
    ("quantity NaN", None, "NaN"),
    ("quantity Infinity", None, "Infinity"),
    ("price NaN", "NaN", None),
    ("price -30000", "-30000", None),
]

_BID_KEYS = ("b", "bid", "bids", "buy", "buys")
_ASK_KEYS = ("a", "ask", "asks", "sell", "sells", "offer", "offers")


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str) and value:
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _side_of(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    k = key.lower()
    if k in _BID_KEYS:
        return "bid"
    if k in _ASK_KEYS:
        return "ask"
    return None


class _Levels:
    """One list of levels inside a message: where it is, its side, and how a level looks."""

    def __init__(self, container: list[Any], side: str | None, dict_keys: tuple[str, str] | None = None) -> None:
        self.container = container
        self.side = side
        self.dict_keys = dict_keys  # (price key, quantity key) for dict levels

    def price_qty(self, level: Any) -> tuple[Any, Any]:
        if self.dict_keys:
            return level[self.dict_keys[0]], level[self.dict_keys[1]]
        return level[0], level[1]

    def make(self, template: Any, price: Any, qty: Any) -> Any:
        if self.dict_keys:
            new = dict(template)
            new[self.dict_keys[0]], new[self.dict_keys[1]] = price, qty
            return new
        new_list = list(template)
        new_list[0], new_list[1] = price, qty
        return new_list


def _is_level_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 2 and _numeric(value[0]) and _numeric(value[1])


def _dict_level_keys(value: Any) -> tuple[str, str] | None:
    """(price key, quantity key) of a level written as a dict of scalars with two numeric values."""
    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        return None
    keys = [k for k, v in value.items() if _numeric(v)]
    return (keys[0], keys[1]) if len(keys) >= 2 else None


def levels_of(msg: Any) -> list[_Levels]:
    """Every non-empty list of levels in a parsed message (see the module docstring)."""
    out: list[_Levels] = []

    def walk(node: Any, key: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list) and node:
            if all(_is_level_list(v) for v in node):
                out.append(_Levels(node, _side_of(key)))
                return
            keys = _dict_level_keys(node[0])
            if keys is not None and all(_dict_level_keys(v) == keys for v in node):
                sides = {_side_of(v.get("side", key)) for v in node}
                for side in sorted(sides, key=str):
                    out.append(_Levels(node, side, keys))
                return
            for v in node:
                walk(v, key)

    walk(msg, None)
    return out


def _loads(frame: str | bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None


def _dumps(msg: Any) -> str:
    return orjson.dumps(msg).decode()


def _like(original: Any, text: str) -> Any:
    """``text`` in the original's type where JSON allows it (a number stays a number when it can)."""
    if isinstance(original, str):
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    return number if number == number and abs(number) != float("inf") else text


def impossible_level(frame: str, which: int = 0) -> str | None:
    """The frame with one more level that no book may hold (``IMPOSSIBLE_LEVELS[which]``) at the
    end of its first list of levels, keeping its real changes; ``None`` when it carries none."""
    msg = _loads(frame)
    found = levels_of(msg)
    if not found:
        return None
    lv = found[0]
    template = lv.container[0]
    price, qty = lv.price_qty(template)
    _, bad_price, bad_qty = IMPOSSIBLE_LEVELS[which % len(IMPOSSIBLE_LEVELS)]
    # a price no real level has (so the bad level is not also a real update), or the bad price
    new_price = _like(price, bad_price) if bad_price is not None else _like(price, _offset(price, lv.side))
    new_qty = _like(qty, bad_qty) if bad_qty is not None else qty
    lv.container.append(lv.make(template, new_price, new_qty))
    return _dumps(msg)


def _offset(price: Any, side: str | None) -> str:
    """A price just outside the touch on the far side of the book (valid, absent from it)."""
    text = str(price)
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    p = float(price) * (0.5 if side != "ask" else 2.0)
    return f"{p:.{decimals}f}"


def far_levels(frame: str, n: int) -> str | None:
    """The frame with ``n`` extra valid levels per side far from the market (bids near zero, asks
    at many times the price), as a feed that lists its whole book sends; ``None`` if no levels."""
    msg = _loads(frame)
    found = [lv for lv in levels_of(msg) if lv.side is not None]
    if not found:
        return None
    done: set[str] = set()
    for lv in found:
        if lv.side in done or lv.side is None:
            continue
        done.add(lv.side)
        template = next(
            (v for v in lv.container if lv.dict_keys is None or "side" not in v or _side_of(v["side"]) == lv.side), None
        )
        if template is None:
            continue
        price, qty = lv.price_qty(template)
        text = str(price)
        decimals = len(text.split(".", 1)[1]) if "." in text else 0
        tick = 10.0**-decimals
        base = float(price)
        for i in range(n):
            # bids spread over (0, 10%] of the price, asks from 20x up: far from any real level
            p = max(base * 0.1 * (i + 1) / n, tick) if lv.side == "bid" else base * 20 + i * tick
            lv.container.append(lv.make(template, _like(price, f"{p:.{decimals}f}"), _like(qty, "1")))
    return _dumps(msg)


def strip_levels(body: Any) -> Any | None:
    """A REST body with its lists of levels removed (HTTP 200, but no ``bids``/``asks``)."""
    if not levels_of(body):
        return None

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if not (isinstance(v, list) and v and _is_level_list(v[0]))}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(body)


def absurd_sequence(body: Any, ahead: int = 10**9) -> Any | None:
    """A REST snapshot whose sequence numbers (every positive integer outside the levels, as
    number or digit string) are ``ahead`` in the future, as a broken cache might serve it."""
    if not levels_of(body):
        return None

    def walk(node: Any, key: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            if node and _is_level_list(node[0]):
                return node
            return [walk(v, key) for v in node]
        if key == "code":
            return node
        if isinstance(node, int) and not isinstance(node, bool) and node > 0:
            return node + ahead
        if isinstance(node, str) and node.isdigit() and int(node) > 0:
            return str(int(node) + ahead)
        return node

    return walk(body, None)


# -- fuzz ------------------------------------------------------------------------------------------

_LEAF_REPLACEMENTS: list[Any] = [None, "x", "NaN", "Infinity", "1e400", [], {}, [[["1"]]], {"price": "1"}]
_RAW_TOKENS = ["NaN", "1e999", "-Infinity", "-1e999", "0x1F"]  # each one invalid JSON


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _set(msg: Any, path: tuple[Any, ...], value: Any) -> None:
    node = msg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def fuzz(frame: str, rng: random.Random) -> tuple[str, str]:
    """One seeded mutation of a frame: ``(kind, mutated text)``. Kinds: ``truncated``,
    ``wrong_type`` (a number becomes null, text, a list...), ``bad_container`` (a list becomes
    a number or text), ``raw_number`` (NaN, 1e999, -Infinity, hex: not valid JSON for a
    client), ``deep_nesting`` (thousands of nested arrays), ``garbage`` (bytes that are no JSON)."""
    msg = _loads(frame)
    kinds = ["truncated", "deep_nesting", "garbage"]
    numbers: list[tuple[Any, ...]] = []
    lists: list[tuple[Any, ...]] = []
    if msg is not None:
        for path, node in _paths(msg):
            if path and _numeric(node):
                numbers.append(path)
            elif path and isinstance(node, list) and node:
                lists.append(path)
        if numbers:
            kinds += ["wrong_type", "wrong_type", "raw_number", "raw_number"]
        if lists:
            kinds += ["bad_container"]
    kind = rng.choice(kinds)
    if kind == "truncated":
        return kind, frame[: rng.randrange(1, max(2, len(frame) - 1))]
    if kind == "deep_nesting":
        depth = rng.choice([2000, 10000])
        return kind, "[" * depth + frame + "]" * depth
    if kind == "garbage":
        return kind, "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(1, 64)))
    if kind == "wrong_type":
        _set(msg, rng.choice(numbers), rng.choice(_LEAF_REPLACEMENTS))
        return kind, _dumps(msg)
    if kind == "bad_container":
        _set(msg, rng.choice(lists), rng.choice([5, "x", -1.5]))
        return kind, _dumps(msg)
    marker = "\u0000aggcore-fuzz\u0000"
    _set(msg, rng.choice(numbers), marker)
    text = _dumps(msg)
    return kind, text.replace(_dumps(marker), rng.choice(_RAW_TOKENS), 1)
