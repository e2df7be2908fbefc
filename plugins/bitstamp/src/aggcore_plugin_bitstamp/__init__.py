"""aggcore exchange plugin for Bitstamp (WebSocket API v2).

Books come from ``diff_order_book_{pair}`` deltas seeded with the REST
``/api/v2/order_book/{pair}/`` snapshot and ordered by ``microtimestamp``.
"""

from .connector import BitstampConfig, BitstampConnector

__all__ = ["BitstampConfig", "BitstampConnector"]
