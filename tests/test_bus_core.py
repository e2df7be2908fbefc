"""What core gives every bus: the ``book`` event kind (a real toy exchange over loopback), the
consolidator's rules for remote books (order, duplicates, feed states, silent feeds), the
``bus`` config section and ``--role`` without a bus."""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

import anyio
import msgspec
import pytest

from aggcore import Aggregator
from aggcore.bus import BookMessage, Bus, BusConfig, Heartbeat, RemoteBooks
from aggcore.cli import main
from aggcore.config import load_config
from aggcore.consolidated import Router
from aggcore.errors import ConfigError
from aggcore.hookspecs import hookimpl
from aggcore.models import BookState
from aggcore.plugins import PluginRegistry, load_plugins
from aggcore.sink import Event, Sink, SinkConfig
from aggcore.testing.pytest_plugin import wait_until
from aggcore.testing.toy import FakeToy


def registry() -> PluginRegistry:
    builtins = [ep for ep in entry_points(group="aggcore") if ep.value.startswith("aggcore.")]
    toy = EntryPoint(name="toy", value="aggcore.testing.toy", group="aggcore")
    return load_plugins(entry_points=[*builtins, toy], disabled=())


class Collect(Sink):
    name = "collect"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.events: list[Event] = []

    async def write(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


@pytest.mark.anyio
async def test_a_subscriber_that_comes_late_wakes_the_waiting_book_loop() -> None:
    async with FakeToy(seed=5, rate_hz=200) as fake:
        cfg = {"exchanges": {"toy": fake.connector_config(stale_after_s=5)}, "aggregation": {"book_interval_ms": 5}}
        async with Aggregator(cfg, registry=registry()) as agg:
            toy = agg.connectors["toy"]
            await wait_until(lambda: all(b.live for b in toy.books.values()) and len(toy.books) == 2, what="LIVE")
            await anyio.sleep(0.2)
            assert agg.outbox.scans == 0  # nobody wants per-venue books: no scan (the loop waits for a reader)
            sub = agg.subscribe_books()
            with anyio.fail_after(5):
                msg = await sub.__anext__()
            assert msg.venue == "toy" and agg.outbox.scans > 0


@pytest.mark.anyio
async def test_book_events_are_conflated_self_contained_books_equal_to_the_live_book() -> None:
    async with FakeToy(seed=3, rate_hz=200) as fake:
        sink = Collect(SinkConfig(events=["book"]))
        cfg = {
            "exchanges": {"toy": fake.connector_config(stale_after_s=5)},
            "aggregation": {"book_interval_ms": 20, "book_levels": 5},
        }
        async with Aggregator(cfg, registry=registry(), sinks=[sink]) as agg:
            sub = agg.subscribe_books()
            toy = agg.connectors["toy"]
            await wait_until(lambda: all(b.live for b in toy.books.values()) and len(toy.books) == 2, what="LIVE")
            with anyio.fail_after(5):
                async for msg in sub:
                    if msg.state == "LIVE" and msg.symbol == "BTCUSDT":
                        break
            assert msg.venue == "toy" and msg.pair == "BTC/USDT" and len(msg.bids) == 5 and len(msg.asks) == 5
            assert msg.bids[0][0] < msg.asks[0][0] and msg.epoch > 0 and msg.version >= 1
            # right after a scan (synchronous: no frame in between) the latest message is the book's top 5
            await anyio.sleep(0.3)
            book = toy.books["BTCUSDT"]
            agg.outbox.scan([book])
            latest = agg.outbox.latest[("toy", "BTCUSDT")]
            assert latest.bids == book.book.bids.top(5) and latest.asks == book.book.asks.top(5)
            assert (latest.epoch, latest.version) > (msg.epoch, msg.version) or latest == msg
        books = [e for e in sink.events if e.kind == "book"]
        assert books and all(e.kind == "book" for e in sink.events)
        data = books[-1].to_dict()["data"]
        assert set(data) >= {"venue", "symbol", "pair", "state", "epoch", "version", "bids", "asks", "receipt_ts"}
        # conflation: far fewer messages than frames
        frames = sum(b.messages for b in toy.books.values())
        assert len(books) < frames


def _msg(epoch: int, version: int, state: str = "LIVE", bid: float = 99.0, **kw: Any) -> BookMessage:
    now = time.time()
    return BookMessage(
        venue=kw.get("venue", "alpha"),
        symbol="BTCUSDT",
        pair="BTC/USDT",
        state=state,
        reason=kw.get("reason"),
        epoch=epoch,
        version=version,
        bids=[(bid, 1.0)] if state == "LIVE" else [],
        asks=[(101.0, 2.0)] if state == "LIVE" else [],
        receipt_ts=now,
        seen_ts=now,
        published_ts=kw.get("published", now),
    )


def test_remote_books_follow_the_feed_ignore_old_versions_and_leave_when_the_feed_says_so() -> None:
    router = Router()
    remote = RemoteBooks(router.attach, silent_after_ms=300)
    assert remote.on_book(_msg(10, 1))
    view = router.views["BTC/USDT"]
    merged = view.merge(5, 5000)
    assert merged.venues == ["alpha"] and (merged.bids[0].price, merged.bids[0].quantity) == (99.0, 1.0)
    assert not remote.on_book(_msg(10, 1, bid=50.0))  # duplicate
    assert not remote.on_book(_msg(9, 7, bid=50.0))  # an older epoch
    assert remote.ignored == 2 and view.merge(5, 5000).bids[0].price == 99.0
    assert remote.on_book(_msg(10, 2, state="RESYNCING", reason="sequence gap: expected 5, got 7"))
    merged = view.merge(5, 5000)
    assert merged.venues == [] and "sequence gap" in merged.excluded["alpha"]
    assert remote.on_book(_msg(11, 1, bid=98.0))  # a new epoch after the resync
    assert view.merge(5, 5000).bids[0].price == 98.0
    # an unknown state is a bad message: counted, ignored
    assert not remote.on_book(_msg(11, 2, state="WEIRD"))
    assert remote.bad_messages == 1 and view.merge(5, 5000).venues == ["alpha"]


def test_a_silent_feed_is_excluded_and_comes_back_with_its_heartbeat() -> None:
    router = Router()
    remote = RemoteBooks(router.attach, silent_after_ms=100)
    remote.on_book(_msg(1, 1))
    view = router.views["BTC/USDT"]
    assert remote.check_silent() == []
    time.sleep(0.15)
    assert remote.check_silent() == ["alpha"]
    merged = view.merge(5, 5000)
    assert merged.venues == [] and merged.excluded["alpha"].startswith("book STALE: feed silent")
    remote.on_heartbeat(Heartbeat(venue="alpha", ts=time.time(), interval_ms=50, books=[("BTCUSDT", "LIVE", 1, 1, time.time())]))
    assert view.merge(5, 5000).venues == ["alpha"]
    # an old heartbeat (kept by the bus from a feed that is gone) does not revive anything
    time.sleep(0.15)
    remote.check_silent()
    remote.on_heartbeat(Heartbeat(venue="alpha", ts=time.time() - 10, interval_ms=50, books=[("BTCUSDT", "LIVE", 1, 1, 0.0)]))
    assert view.merge(5, 5000).venues == []
    # a retained old message at start-up: applied, but too old for the view
    router2 = Router()
    remote2 = RemoteBooks(router2.attach, silent_after_ms=100)
    old = _msg(1, 1, published=time.time() - 60)
    old = msgspec.structs.replace(old, receipt_ts=time.time() - 60, seen_ts=time.time() - 60)
    remote2.on_book(old)
    assert router2.views["BTC/USDT"].merge(5, 5000).venues == []


def test_book_message_round_trips_msgpack_and_json() -> None:
    msg = _msg(3, 4)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(msg), type=BookMessage) == msg
    assert msgspec.json.decode(msg.to_json(), type=BookMessage) == msg


class FakeBusConfig(BusConfig):
    url: str = "x://"


class FakeBus(Bus):
    name: ClassVar[str] = "fakebus"
    Config = FakeBusConfig


class FakeBusPlugin:
    @staticmethod
    @hookimpl
    def aggcore_register_buses() -> list[type[Bus]]:
        return [FakeBus]


def bus_registry() -> PluginRegistry:
    reg = registry()
    reg.buses["fakebus"] = FakeBus
    return reg


def test_bus_section_is_validated_by_the_plugins_model_with_key_paths() -> None:
    reg = bus_registry()
    cfg = load_config({"bus": {"fakebus": {"url": "y://"}, "pairs": ["BTC/USDT"], "silent_after_ms": 2000}}, registry=reg)
    assert cfg.bus is not None and cfg.bus.name == "fakebus" and cfg.bus.pairs == ["BTC/USDT"]
    assert isinstance(cfg.bus.settings, FakeBusConfig) and cfg.bus.settings.url == "y://"
    with pytest.raises(ConfigError) as info:
        load_config({"bus": {"fakebus": {"urll": "y://"}, "heartbeat_ms": -1, "nope": {}}}, registry=reg)
    locs = dict(info.value.errors)
    assert "unknown key" in locs["bus.fakebus.urll"]
    assert "installed buses: fakebus" in locs["bus.nope"]
    assert "greater than 0" in locs["bus.heartbeat_ms"]
    with pytest.raises(ConfigError) as info:
        load_config({"bus": {"pairs": ["BTC/USDT"]}}, registry=reg)
    assert "name the bus plugin" in dict(info.value.errors)["bus"]


def test_a_bus_plugin_registers_through_the_hook() -> None:
    reg = load_plugins(entry_points=[], disabled=())
    assert reg.manager is not None
    reg.manager.register(FakeBusPlugin())
    assert reg.manager.hook.aggcore_register_buses() == [[FakeBus]]


def test_role_without_a_bus_section_is_a_config_error(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("exchanges: {}\n")
    assert main(["run", str(path), "--role", "feed"]) == 2
    assert "needs a bus section" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="needs a 'bus' section"):
        Aggregator({}, registry=registry(), role="consolidate")


def test_levels_that_cannot_be_a_book_are_bad_messages_and_change_nothing() -> None:
    router = Router()
    remote = RemoteBooks(router.attach, silent_after_ms=1000)
    assert remote.on_book(_msg(1, 1))
    view = router.views["BTC/USDT"]
    for version, bids, asks in [
        (2, [(98.0, 1.0), (99.0, 1.0)], [(101.0, 1.0)]),  # bids ascending
        (3, [(99.0, 1.0)], [(102.0, 1.0), (101.0, 1.0)]),  # asks descending
        (4, [(float("nan"), 1.0)], [(101.0, 1.0)]),
        (5, [(99.0, 0.0)], [(101.0, 1.0)]),  # a zero quantity is a deletion, not a level
        (6, [(99.0, float("inf"))], [(101.0, 1.0)]),
        (7, [(102.0, 1.0)], [(101.0, 1.0)]),  # crossed
    ]:
        bad = msgspec.structs.replace(_msg(1, version), bids=bids, asks=asks)
        assert not remote.on_book(bad)
    future = _msg(time.time_ns() + 3600 * 10**9, 1)  # would shadow every real message of the book
    assert not remote.on_book(future)
    assert remote.bad_messages == 7 and remote.received == 1
    merged = view.merge(5, 5000)
    assert merged.venues == ["alpha"] and merged.bids[0].price == 99.0 and merged.asks[0].price == 101.0
    assert remote.on_book(_msg(1, 8, bid=98.5))  # a good newer message still applies
    assert view.merge(5, 5000).bids[0].price == 98.5


@pytest.mark.anyio
async def test_feed_outbox_new_epoch_at_every_resync_versions_within_it_and_conflation() -> None:
    from aggcore.book import BookUpdate, SequenceMode, SnapshotSource, SymbolBook, SyncRules
    from aggcore.bus import FeedOutbox

    book = SymbolBook("alpha", "BTCUSDT", "BTC/USDT", SyncRules(SnapshotSource.INBAND, SequenceMode.CONTIGUOUS))
    out = FeedOutbox(levels=2)
    book.apply(BookUpdate("BTCUSDT", [("99", "1"), ("98", "2"), ("97", "3")], [("101", "1")], snapshot=True, last=1))
    assert out.scan([book]) == 1
    first = out.latest[("alpha", "BTCUSDT")]
    assert first.state == "LIVE" and first.version == 1 and first.bids == [(99.0, 1.0), (98.0, 2.0)]
    assert out.scan([book]) == 0  # nothing changed: nothing sent
    book.apply(BookUpdate("BTCUSDT", [("99", "5")], [], first=2, last=2))
    book.apply(BookUpdate("BTCUSDT", [("99", "6")], [], first=3, last=3))
    assert out.scan([book]) == 1  # two changes, one message (the latest)
    second = out.latest[("alpha", "BTCUSDT")]
    assert (second.epoch, second.version) == (first.epoch, 2) and second.bids[0] == (99.0, 6.0)
    book.apply(BookUpdate("BTCUSDT", [("99", "7")], [], first=9, last=9))  # a gap: resync
    out.scan([book])
    gone = out.latest[("alpha", "BTCUSDT")]
    assert gone.state == "RESYNCING" and gone.bids == [] and "sequence gap" in (gone.reason or "")
    assert (gone.epoch, gone.version) == (first.epoch, 3)
    book.apply(BookUpdate("BTCUSDT", [("99", "1")], [("100", "1")], snapshot=True, last=20))
    out.scan([book])
    back = out.latest[("alpha", "BTCUSDT")]
    assert back.state == "LIVE" and back.epoch > first.epoch and back.version == 1
    with anyio.fail_after(1):
        books, beats = await out.take()
    assert [m.version for m in books] == [1] and not beats
    assert out.conflated == 3  # every message but the last was replaced: nothing took them
    out.beat([book], 1000)
    assert out.beats["alpha"].books == [("BTCUSDT", "LIVE", back.epoch, 1, out.beats["alpha"].books[0][4])]


def test_a_venue_split_over_two_feeds_loses_only_the_books_of_the_feed_that_died() -> None:
    router = Router()
    remote = RemoteBooks(router.attach, silent_after_ms=100)
    eth = msgspec.structs.replace(_msg(1, 1), symbol="ETHUSDT", pair="ETH/USDT")
    remote.on_book(_msg(1, 1))
    remote.on_book(eth)
    time.sleep(0.12)
    # only the ETH feed process is alive: its heartbeat names ETH only
    remote.on_heartbeat(Heartbeat(venue="alpha", ts=time.time(), interval_ms=50, books=[("ETHUSDT", "LIVE", 1, 1, time.time())], feed="h-2"))
    assert remote.check_silent() == ["alpha"]
    assert "feed silent" in router.views["BTC/USDT"].merge(5, 5000).excluded["alpha"]
    assert router.views["ETH/USDT"].merge(5, 5000).venues == ["alpha"]
    assert remote.venue_alive("alpha")
