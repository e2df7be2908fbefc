"""aggcore bus plugin: feed and consolidator processes over NATS JetStream, and a ``nats`` sink.

Subjects (``<prefix>`` is ``aggcore.v1`` by default):

- ``<prefix>.book.<venue>.<pair>``: one msgpack :class:`aggcore.bus.BookMessage` per changed book
  (kept in the JetStream stream, last message per subject);
- ``<prefix>.heartbeat.<venue>.<feed>``: one msgpack :class:`aggcore.bus.Heartbeat` per venue, feed process and second;
- ``<prefix>.summary.<pair>``, ``<prefix>.arbitrage.<pair>``, ``<prefix>.health``,
  ``<prefix>.metrics``, ``<prefix>.books.<venue>.<pair>``: JSON events of the ``nats`` sink.

``<pair>`` is the pair with ``/`` written ``-`` (``BTC-USDT``).
"""

from .bus import NatsBus, subject_token
from .config import NatsBusConfig, NatsSinkConfig
from .sink import NatsSink

__all__ = ["NatsBus", "NatsBusConfig", "NatsSink", "NatsSinkConfig", "subject_token"]
