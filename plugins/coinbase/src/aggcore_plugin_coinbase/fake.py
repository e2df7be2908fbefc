"""FakeCoinbase: the Advanced Trade market-data protocol on 127.0.0.1, for tests and demos.

What it speaks (as the real ``wss://advanced-trade-ws.coinbase.com`` and the public REST):

- ``GET /api/v3/brokerage/market/products`` (``{"products": [...], "num_products": n,
  "pagination": null}``) with ``alias``/``alias_to``: every ``X-USD`` product has an ``X-USDC``
  alias whose market data is served under ``X-USD``; ``GET .../market/product_book``.
- One channel per subscribe (``"channel"``); a ``"channels"`` array gets an error. The
  ``subscriptions`` ack lists the cumulative set; products the feed does not know are left out
  of it (no error, as observed on the real feed). Unsubscribe is acked the same way.
- ``l2_data``: a ``snapshot`` event per product after each subscribe, then ``update`` events
  with sides ``bid``/``offer`` and absolute sizes; ``heartbeats`` once a second when subscribed.
- ``sequence_num`` counts every envelope of a connection from 0. It is assigned when a frame is
  made, so a dropped frame (``GAP``, ``STALL``) leaves a hole, as a lost message would.
- A connection that has not subscribed within ``subscribe_deadline_s`` (5 s) is closed.
- Client messages above 8/s (all connections together, as the limit is per IP) are counted in
  ``rate_violations`` and answered with an error frame (the real text is undocumented).

Faults: everything of :class:`Fault` except ``BAD_CHECKSUM`` (Coinbase has no checksum).
``ERROR_REPLY`` sends ``{"type": "error", "message": "... <product>"}`` and drops that
product's subscription on the connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson
from aggcore.testing import Change, FakeExchange, Fault, InstrumentSpec, Session, iso_now

__all__ = ["FakeCoinbase"]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class FakeCoinbase(FakeExchange):
    """A fake Coinbase Advanced Trade (see the module docstring)."""

    name: ClassVar[str] = "coinbase"
    supported_faults: ClassVar[frozenset[Fault]] = frozenset(Fault) - {Fault.BAD_CHECKSUM}
    default_symbols: ClassVar[dict[str, InstrumentSpec]] = {
        # at the other fakes' prices (BTC 30,000, ETH 2,000): fakes run side by side, without a
        # shared market, make one consolidated book, not one crossed by 100%
        "BTC-USD": InstrumentSpec("BTC", "USD", mid=30000.0, qty_precision=8),
        "ETH-USD": InstrumentSpec("ETH", "USD", mid=2000.0, qty_precision=8),
        "ETH-BTC": InstrumentSpec("ETH", "BTC", mid=0.06667, tick=0.00001, price_precision=5, qty_precision=8),
    }
    #: listed by REST but not streamed: "GHOST-USD" is online yet unknown to the feed,
    #: "OLD-USD" is delisted (its status says so)
    extra_products: ClassVar[dict[str, tuple[str, str, str]]] = {
        "GHOST-USD": ("GHOST", "USD", "online"),
        "OLD-USD": ("OLD", "USD", "delisted"),
    }
    ws_path: ClassVar[str] = "/"
    heartbeat_interval_s: float | None = 1.0
    client_messages_per_s: ClassVar[int] = 8

    def __init__(self, *args: Any, subscribe_deadline_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribe_deadline_s = subscribe_deadline_s
        self.rate_violations = 0
        self._client_times: deque[float] = deque()
        self.closed_for_deadline = 0

    # -- helpers ----------------------------------------------------------------------------------
    def canonical(self, product: str) -> str:
        """``BTC-USDC`` -> ``BTC-USD`` (the id its market data carries)."""
        base, sep, quote = product.rpartition("-")
        if sep and quote == "USDC" and f"{base}-USD" in self.specs:
            return f"{base}-USD"
        return product

    def envelope(self, session: Session, channel: str, events: list[dict[str, Any]]) -> str:
        seq = session.state.get("seq", -1) + 1
        session.state["seq"] = seq
        return _dumps({"channel": channel, "client_id": "", "timestamp": iso_now(), "sequence_num": seq, "events": events})

    def _stalled(self) -> bool:
        return asyncio.get_running_loop().time() < self.stalled_until

    # -- REST ------------------------------------------------------------------------------------
    def _product(self, sym: str, base: str, quote: str, spec: InstrumentSpec | None, status: str = "online") -> dict[str, Any]:
        tick = spec.tick if spec else 0.01
        alias = ""
        alias_to: list[str] = []
        if quote == "USDC" and self.canonical(sym) != sym:
            alias = self.canonical(sym)
        elif quote == "USD" and spec is not None:
            alias_to = [f"{base}-USDC"]
        return {
            "product_id": sym,
            "price": "",
            "base_increment": f"{10 ** -(spec.qty_precision if spec else 8):.{spec.qty_precision if spec else 8}f}",
            "quote_increment": f"{tick:.{spec.price_precision if spec else 2}f}",
            "base_name": base,
            "quote_name": quote,
            "status": status,
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": status != "online",
            "is_disabled": False,
            "product_type": "SPOT",
            "quote_currency_id": quote,
            "base_currency_id": base,
            "base_display_symbol": base,
            "quote_display_symbol": quote,
            "view_only": False,
            "alias": alias,
            "alias_to": alias_to,
        }

    def products(self) -> list[dict[str, Any]]:
        out = []
        for sym, spec in self.specs.items():
            out.append(self._product(sym, spec.base, spec.quote, spec))
            if spec.quote == "USD":
                out.append(self._product(f"{spec.base}-USDC", spec.base, "USDC", spec))
        for sym, (base, quote, status) in self.extra_products.items():
            out.append(self._product(sym, base, quote, None, status))
        return out

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v3/brokerage/market/products":
            products = self.products()
            kind = query.get("product_type")
            if kind:
                products = [p for p in products if p["product_type"] == kind]
            offset = int(query.get("offset", 0))
            limit = int(query.get("limit", len(products) or 1))
            return 200, {"products": products[offset : offset + limit], "num_products": len(products), "pagination": None}
        if path.startswith("/api/v3/brokerage/market/products/"):
            sym = path.rsplit("/", 1)[1]
            for p in self.products():
                if p["product_id"] == sym:
                    return 200, p
            return 404, {"error": "NOT_FOUND", "message": "product not found"}
        if path == "/api/v3/brokerage/market/product_book":
            sym = self.canonical(query.get("product_id", ""))
            if sym not in self.books:
                return 404, {"error": "NOT_FOUND", "message": "product not found"}
            bids, asks = self.books[sym].top(int(query.get("limit", 50)))
            return 200, {
                "pricebook": {
                    "product_id": query.get("product_id"),
                    "bids": [{"price": p, "size": q} for p, q in bids],
                    "asks": [{"price": p, "size": q} for p, q in asks],
                    "time": iso_now(),
                }
            }
        return 404, {"error": "NOT_FOUND", "message": f"no route {path}"}

    # -- WebSocket ------------------------------------------------------------------------------------
    def on_connect(self, session: Session) -> None:
        session.state["subs"] = {}
        asyncio.get_running_loop().create_task(self._deadline(session))

    async def _deadline(self, session: Session) -> None:
        await asyncio.sleep(self.subscribe_deadline_s)
        if not session.state.get("subscribed_any"):
            self.closed_for_deadline += 1
            await session.ws.close(1000, "no subscribe message received within 5 seconds")

    def _error(self, session: Session, message: str) -> None:
        session.send_soon(_dumps({"type": "error", "message": message}))

    def _ack(self, session: Session) -> None:
        subs: dict[str, list[str]] = session.state["subs"]
        session.send_soon(self.envelope(session, "subscriptions", [{"subscriptions": {k: list(v) for k, v in subs.items()}}]))

    def _count_client_message(self) -> bool:
        now = asyncio.get_running_loop().time()
        times = self._client_times
        times.append(now)
        while times and now - times[0] > 0.95:  # a little slack for delivery jitter
            times.popleft()
        return len(times) > self.client_messages_per_s

    def on_message(self, session: Session, text: str) -> None:
        if self._count_client_message():
            self.rate_violations += 1
            self._error(session, "rate limit exceeded")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(session, "malformed message")
            return
        if not isinstance(msg, dict):
            self._error(session, "malformed message")
            return
        kind = msg.get("type")
        channel = msg.get("channel")
        if "channels" in msg or not isinstance(channel, str) or not channel:
            self._error(session, "Failed to subscribe: one channel per message, in the \"channel\" field")
            return
        if kind not in ("subscribe", "unsubscribe"):
            self._error(session, f"unknown message type {kind!r}")
            return
        products = [str(p) for p in msg.get("product_ids") or []]
        subs: dict[str, list[str]] = session.state["subs"]
        if kind == "subscribe":
            session.state["subscribed_any"] = True
            current = subs.setdefault(channel, [])
            if channel == "heartbeats":
                session.state["hb"] = True
            accepted = [p for p in products if channel != "level2" or self.canonical(p) in self.books]
            for p in accepted:
                if p not in current:
                    current.append(p)
            self._ack(session)
            if channel == "level2":
                for p in accepted:
                    self.subscribe(session, self.canonical(p))
            return
        # unsubscribe: no product ids means the whole channel
        if channel in subs:
            if products:
                subs[channel] = [p for p in subs[channel] if p not in products]
            else:
                del subs[channel]
            if channel == "heartbeats" and channel not in subs:
                session.state["hb"] = False
        if channel == "level2":
            still = {self.canonical(p) for p in subs.get("level2", [])}
            for sym in list(session.subscribed):
                if sym not in still:
                    self.unsubscribe(session, sym)
        self._ack(session)

    def snapshot_frames(self, session: Session, symbol: str) -> list[str]:
        bids, asks = self.snapshot_levels(symbol)
        epoch = "1970-01-01T00:00:00Z"  # as the real feed: snapshot levels carry epoch 0
        updates = [{"side": "bid", "event_time": epoch, "price_level": p, "new_quantity": q} for p, q in bids]
        updates += [{"side": "offer", "event_time": epoch, "price_level": p, "new_quantity": q} for p, q in asks]
        return [self.envelope(session, "l2_data", [{"type": "snapshot", "product_id": symbol, "updates": updates}])]

    def delta_frames(self, session: Session, symbol: str, changes: list[Change]) -> list[str]:
        now = iso_now()
        updates = [
            {"side": "bid" if c.side == "bid" else "offer", "event_time": now, "price_level": c.price, "new_quantity": c.qty}
            for c in changes
        ]
        return [self.envelope(session, "l2_data", [{"type": "update", "product_id": symbol, "updates": updates}])]

    def error_frame(self, session: Session, symbol: str | None, message: str) -> str:
        if symbol is not None:
            self.unsubscribe(session, symbol)
            subs = session.state.get("subs", {})
            if "level2" in subs:
                subs["level2"] = [p for p in subs["level2"] if self.canonical(p) != symbol]
            return _dumps({"type": "error", "message": f"Failed to subscribe: {message}: {symbol}"})
        return _dumps({"type": "error", "message": message})

    def heartbeat_frames(self, session: Session) -> list[str]:
        if not session.state.get("hb") or self._stalled():
            return []
        counter = session.state.get("hb_counter", 0) + 1
        session.state["hb_counter"] = counter
        current = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")
        return [self.envelope(session, "heartbeats", [{"current_time": current, "heartbeat_counter": counter}])]
