"""aggcore's testing kit: fake exchanges over real sockets, fault injection, recordings, fixtures.

Plugin authors build their exchange's fake on :class:`FakeExchange` and get, for free, the
server on 127.0.0.1 (WebSocket and REST on one ephemeral port), a generative order book per
symbol with its truth (:class:`GenBook`), and the faults of :class:`Fault`.
"""

from .market import Change, GenBook, Market, VenueProfile
from .running import running, wait_until
from .server import FakeExchange, Fault, InstrumentSpec, Session, iso_now

__all__ = [
    "Change", "FakeExchange", "Fault", "GenBook", "InstrumentSpec", "Market", "Session", "VenueProfile", "iso_now", "running", "wait_until"
]
