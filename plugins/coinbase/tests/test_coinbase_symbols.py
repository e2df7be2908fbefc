"""Products list -> symbol table, and the USDC alias map."""

from __future__ import annotations

import pytest
from aggcore_plugin_coinbase.fake import FakeCoinbase
from aggcore_plugin_coinbase.symbols import build_table, wire_ids

# shape of the public market/products response (nautilus fixture, trimmed)
PRODUCTS = [
    {"product_id": "BTC-USD", "status": "online", "trading_disabled": False, "product_type": "SPOT",
     "quote_currency_id": "USD", "base_currency_id": "BTC", "quote_increment": "0.01",
     "base_increment": "0.00000001", "alias": "", "alias_to": ["BTC-USDC"]},
    {"product_id": "BTC-USDC", "status": "online", "trading_disabled": False, "product_type": "SPOT",
     "quote_currency_id": "USDC", "base_currency_id": "BTC", "quote_increment": "0.01",
     "base_increment": "0.00000001", "alias": "BTC-USD", "alias_to": []},
    {"product_id": "USDT-USDC", "status": "online", "product_type": "SPOT",
     "quote_currency_id": "USDC", "base_currency_id": "USDT", "quote_increment": "0.0001", "alias": "", "alias_to": []},
    {"product_id": "LUNA-USD", "status": "delisted", "product_type": "SPOT",
     "quote_currency_id": "USD", "base_currency_id": "LUNA", "quote_increment": "0.0001"},
    {"product_id": "BROKEN"},
]


def test_table_from_products() -> None:
    table = build_table(PRODUCTS)
    assert len(table) == 4
    assert table.resolve("BTC/USD").symbol == "BTC-USD"
    assert table.resolve("btc-usdc").symbol == "BTC-USDC"
    assert table.resolve("BTC/USDC").symbol == "BTC-USDC"
    inst = table.by_symbol["BTC-USD"]
    assert inst.price_precision == 2 and inst.qty_precision == 8 and inst.tick_size == 0.01
    assert not table.by_symbol["LUNA-USD"].active
    with pytest.raises(KeyError, match="did you mean"):
        table.resolve("BTC/USDX")


def test_usdc_alias_map() -> None:
    wire = wire_ids(build_table(PRODUCTS))
    assert wire["BTC-USDC"] == "BTC-USD"
    assert wire["BTC-USD"] == "BTC-USD"
    assert wire["USDT-USDC"] == "USDT-USDC"  # not an alias: served under its own id
    # alias_to alone is enough
    only_to = [dict(p, alias="") for p in PRODUCTS]
    assert wire_ids(build_table(only_to))["BTC-USDC"] == "BTC-USD"


def test_fake_products_round_trip() -> None:
    fake = FakeCoinbase(autostart=False)
    status, body = fake.rest("/api/v3/brokerage/market/products", {"product_type": "SPOT"})
    assert status == 200 and body["num_products"] == len(body["products"])
    table = build_table(body["products"])
    for sym in fake.books:
        assert table.resolve(table.pair_of(sym)).symbol == sym
    assert wire_ids(table)["ETH-USDC"] == "ETH-USD"


def test_entry_point_registers_the_connector() -> None:
    from importlib.metadata import entry_points

    from aggcore_plugin_coinbase import CoinbaseConnector

    (ep,) = [ep for ep in entry_points(group="aggcore") if ep.name == "coinbase"]
    module = ep.load()
    assert module.aggcore_register_connectors() == [CoinbaseConnector]
    assert CoinbaseConnector.name == "coinbase"
    assert CoinbaseConnector.ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert CoinbaseConnector.max_frame_bytes >= 10 * 1024 * 1024  # multi-MB snapshots
    assert CoinbaseConnector.fake_server == "aggcore_plugin_coinbase.fake:FakeCoinbase"
