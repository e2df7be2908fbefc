"""The testing kit itself: deterministic generative books, the pytest fixtures, fault plumbing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from aggcore.testing import Fault, GenBook, iso_now, running, wait_until
from aggcore.testing.recordings import Recording

pytestmark = pytest.mark.anyio


def test_genbook_is_deterministic_per_seed_and_never_crosses() -> None:
    a, b, c = GenBook(seed=5), GenBook(seed=5), GenBook(seed=6)
    steps_a = [a.step() for _ in range(300)]
    assert steps_a == [b.step() for _ in range(300)]
    assert steps_a != [c.step() for _ in range(300)]
    assert a.bids == b.bids and a.asks == b.asks
    assert a.best_bid() < a.best_ask() and len(a.bids) >= a.depth // 2


def test_iso_now_is_the_utc_time_with_microseconds_as_coinbase_and_kraken_write_it() -> None:
    before = datetime.now(timezone.utc)
    stamps = [iso_now() for _ in range(3)]
    after = datetime.now(timezone.utc)
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert before - timedelta(milliseconds=1) <= moment <= after + timedelta(milliseconds=1)
    assert stamps == sorted(stamps)


def test_genbook_changes_replayed_on_an_empty_copy_give_the_truth() -> None:
    book = GenBook(seed=9, depth=20)
    bids = dict(book.bids)
    asks = dict(book.asks)
    for _ in range(500):
        for ch in book.step():
            side = bids if ch.side == "bid" else asks
            if float(ch.qty) == 0:
                side.pop(ch.price, None)
            else:
                side[ch.price] = ch.qty
    assert bids == book.bids and asks == book.asks


async def test_fixtures_start_a_plugins_fake_and_its_connector(fake_exchange: Any, connector_factory: Any) -> None:
    fake = await fake_exchange("binance", seed=1, rate_hz=100)
    conn = connector_factory("binance", fake, stale_after_s=5)
    async with running(conn):
        await wait_until(lambda: len(conn.books) == len(fake.books) and all(b.live for b in conn.books.values()), what="LIVE")


async def test_rest_faults_answer_429_with_retry_after(fake_exchange: Any) -> None:
    fake = await fake_exchange("binance", seed=2)
    fake.inject(Fault.REST_429, retry_after=7)
    async with httpx.AsyncClient() as client:
        first = await client.get(f"{fake.rest_url}/api/v3/exchangeInfo")
        second = await client.get(f"{fake.rest_url}/api/v3/exchangeInfo")
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert second.status_code == 200


async def test_aggregator_factory_wires_an_aggregator_to_a_fake(fake_exchange: Any, aggregator_factory: Any) -> None:
    fake = await fake_exchange("kraken", seed=3, rate_hz=100)
    agg = await aggregator_factory({"exchanges": {"kraken": fake.connector_config(stale_after_s=5)}})
    await wait_until(lambda: any(s.venues == ["kraken"] for s in agg.get_all_summaries().values()), what="a summary")


def test_recording_fixture_opens_or_skips(recording: Any) -> None:
    rec = recording("KRAKEN.ws.50.0")
    assert isinstance(rec, Recording) and sum(1 for _ in rec.frames()) > 4000


async def test_the_conformance_auditor_catches_a_wrong_book_the_moment_it_is_emitted() -> None:
    from aggcore.testing.conformance import _Auditor
    from aggcore.testing.toy import FakeToy, ToyConnector

    class Sloppy(ToyConnector):
        """Loses the ask side of every 7th message: sequence-perfect, and wrong."""

        count = 0

        def on_frame(self, conn: Any, frame: str | bytes, receipt_ns: int) -> None:
            self.count += 1
            if self.count % 7 == 0 and b'"delta"' in (frame if isinstance(frame, bytes) else frame.encode()):
                import orjson

                msg = orjson.loads(frame)
                msg["a"] = []
                frame = orjson.dumps(msg)
            super().on_frame(conn, frame, receipt_ns)

    async with FakeToy(seed=4, rate_hz=200) as fake:
        auditor = _Auditor(fake)
        for sym in fake.books:
            fake.books[sym].record(auditor.n)
        conn = Sloppy(ToyConnector.Config.model_validate(fake.connector_config()), listener=auditor)
        async with running(conn):
            await wait_until(lambda: bool(auditor.violations), what="the auditor to flag the wrong book")
    assert "equals no state" in auditor.violations[0]
