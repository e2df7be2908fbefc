"""The NATS JetStream bus: feeds publish books, consolidators take them.

- A feed publishes each changed book (msgpack :class:`~aggcore.bus.BookMessage`) on
  ``<prefix>.book.<venue>.<pair>`` and a heartbeat per venue on ``<prefix>.heartbeat.<venue>.<feed>``,
  as plain NATS publishes that a JetStream stream (``max_msgs_per_subject=1``, file storage)
  captures, so the stream always holds every book's last message. While the server is away
  nothing is queued: the feed keeps its books and republishes all of them when it is back.
- A consolidator subscribes to those subjects (all pairs, or ``bus.pairs``), then reads every
  subject's last message from the stream, so it has every book's current state at once; it
  reads them again after every reconnect. Versions make the two paths safe to overlap.
- A message that does not decode, or whose venue/pair disagree with its subject, is counted and
  ignored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from aggcore.bus import BookMessage, Bus, BusSection, FeedOutbox, Heartbeat, RemoteBooks
from aggcore.errors import NetworkError

from .config import NatsBusConfig
from .connection import Link

__all__ = ["NatsBus", "subject_token"]

log = logging.getLogger("aggcore.nats")


def subject_token(text: str) -> str:
    """A pair or venue as one subject token: ``BTC/USDT`` -> ``BTC-USDT``."""
    out = text.replace("/", "-")
    for c in ". *>\t":
        out = out.replace(c, "_")
    return out


class NatsBus(Bus):
    """``bus: {nats: {...}}``: see the module docstring and the plugin README."""

    name = "nats"
    Config = NatsBusConfig

    def __init__(self, config: NatsBusConfig, section: BusSection) -> None:
        self.link = Link(config, "bus")
        super().__init__(config, section)
        self.cfg = config
        self.prefix = config.subject_prefix
        self._enc = msgspec.msgpack.Encoder()
        self._book_dec = msgspec.msgpack.Decoder(BookMessage)
        self._beat_dec = msgspec.msgpack.Decoder(Heartbeat)
        self.publish_errors = 0
        self.skipped_while_away = 0

    # Bus's health attributes live on the link
    @property
    def connected(self) -> bool:
        return self.link.connected

    @connected.setter
    def connected(self, value: bool) -> None:
        self.link.connected = value

    @property
    def connection_losses(self) -> int:
        return self.link.connection_losses

    @connection_losses.setter
    def connection_losses(self, value: int) -> None:
        self.link.connection_losses = value

    @property
    def last_error(self) -> str | None:
        return self.link.last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self.link.last_error = value

    # -- subjects ---------------------------------------------------------------------------------
    def book_subject(self, venue: str, pair: str) -> str:
        return f"{self.prefix}.book.{subject_token(venue)}.{subject_token(pair)}"

    def beat_subject(self, venue: str, feed: str) -> str:
        return f"{self.prefix}.heartbeat.{subject_token(venue)}.{subject_token(feed or 'feed')}"

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=self.cfg.stream,
            subjects=[f"{self.prefix}.book.>", f"{self.prefix}.heartbeat.>"],
            max_msgs_per_subject=1,
            storage=StorageType.FILE if self.cfg.storage == "file" else StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            num_replicas=self.cfg.replicas,
            max_age=self.cfg.max_age_s,
            allow_direct=True,
        )

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        cfg = self.stream_config()
        try:
            await js.add_stream(cfg)
        except Exception as exc:  # exists with another configuration: bring it to ours
            try:
                await js.update_stream(cfg)
            except Exception as exc2:
                raise NetworkError(f"bus.nats: cannot create or update stream {self.cfg.stream!r}: {exc2}") from exc

    async def _setup(self) -> tuple[Client, JetStreamContext]:
        nc = await self.link.connect()
        js = nc.jetstream()
        while True:
            try:
                await self._ensure_stream(js)
                return nc, js
            except Exception as exc:  # JetStream not ready yet (a server just started), or refused
                self.link.last_error = str(exc)
                log.warning("%s; retrying", exc)
                await anyio.sleep(self.cfg.reconnect_wait_s)

    # -- feed ---------------------------------------------------------------------------------------
    async def run_feed(self, outbox: FeedOutbox, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            nc, js = await self._setup()
            await self._publish(nc, outbox.current(), [])
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._republish_after_reconnect, nc, js, outbox)
                while True:
                    books, beats = await outbox.take()
                    await self._publish(nc, books, beats)
        finally:
            await self.link.close()

    async def _republish_after_reconnect(self, nc: Client, js: JetStreamContext, outbox: FeedOutbox) -> None:
        while True:
            await self.link.reconnected.wait()
            self.link.reconnected = anyio.Event()
            try:
                await self._ensure_stream(js)  # a memory stream is gone after a server restart
            except Exception as exc:
                log.warning("%s", exc)
            await self._publish(nc, outbox.current(), [])
            log.info("bus: republished %d books after the reconnect", len(outbox.latest))

    async def _publish(self, nc: Client, books: list[BookMessage], beats: list[Heartbeat]) -> None:
        if not self.link.connected:
            self.skipped_while_away += len(books) + len(beats)  # republished when the server is back
            return
        enc = self._enc.encode
        try:
            for msg in books:
                await nc.publish(self.book_subject(msg.venue, msg.pair), enc(msg))
            for beat in beats:
                await nc.publish(self.beat_subject(beat.venue, beat.feed), enc(beat))
            self.published += len(books) + len(beats)
        except Exception as exc:  # the connection went away mid-batch: all is republished on reconnect
            self.publish_errors += 1
            self.link.last_error = f"publish failed: {type(exc).__name__}: {exc}"

    # -- consolidator --------------------------------------------------------------------------------
    def _subjects(self, inbox: RemoteBooks) -> list[str]:
        if inbox.pairs:
            return [f"{self.prefix}.book.*.{subject_token(p)}" for p in sorted(inbox.pairs)]
        return [f"{self.prefix}.book.>"]

    async def run_consolidate(
        self, inbox: RemoteBooks, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        try:
            nc, js = await self._setup()
            subjects = self._subjects(inbox)

            async def on_book(msg: Msg) -> None:
                self._on_book(inbox, msg.subject, msg.data)

            async def on_beat(msg: Msg) -> None:
                self._on_beat(inbox, msg.subject, msg.data)

            for subject in subjects:
                await nc.subscribe(subject, cb=on_book)
            await nc.subscribe(f"{self.prefix}.heartbeat.>", cb=on_beat)
            await self._load_last(js, inbox, subjects)
            while True:
                await self.link.reconnected.wait()
                self.link.reconnected = anyio.Event()
                await self._load_last(js, inbox, subjects)
        finally:
            await self.link.close()

    def _on_book(self, inbox: RemoteBooks, subject: str, data: bytes) -> None:
        try:
            msg = self._book_dec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            inbox.bad(subject, f"not a book message: {exc}")
            return
        if subject != self.book_subject(msg.venue, msg.pair):
            inbox.bad(subject, f"a book of {msg.venue} {msg.pair} on the wrong subject")
            return
        inbox.on_book(msg)

    def _on_beat(self, inbox: RemoteBooks, subject: str, data: bytes) -> None:
        try:
            beat = self._beat_dec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            inbox.bad(subject, f"not a heartbeat: {exc}")
            return
        if subject != self.beat_subject(beat.venue, beat.feed):
            inbox.bad(subject, f"a heartbeat of {beat.venue} on the wrong subject")
            return
        inbox.on_heartbeat(beat)

    async def _load_last(self, js: JetStreamContext, inbox: RemoteBooks, subjects: list[str]) -> None:
        """Every book's (and every feed's heartbeat's) last message, from the stream."""
        t0 = time.monotonic()
        n = 0
        for pattern in [*subjects, f"{self.prefix}.heartbeat.>"]:
            while True:
                try:
                    info = await js.stream_info(self.cfg.stream, subjects_filter=pattern)
                    break
                except Exception as exc:  # the server is restarting, or lost the stream (memory storage)
                    self.link.last_error = f"stream info: {type(exc).__name__}: {exc}"
                    await anyio.sleep(self.cfg.reconnect_wait_s)
                    try:
                        await self._ensure_stream(js)
                    except Exception as exc2:
                        log.debug("bus: %s", exc2)
            names: dict[str, Any] = dict(info.state.subjects or {})
            for subject in sorted(names):
                try:
                    raw = await js.get_last_msg(self.cfg.stream, subject, direct=True)
                except Exception as exc:  # gone meanwhile (max_age), or the server went away
                    log.debug("bus: last message of %s: %s", subject, exc)
                    continue
                data = raw.data or b""
                if ".heartbeat." in subject:
                    self._on_beat(inbox, subject, data)
                else:
                    self._on_book(inbox, subject, data)
                n += 1
        if self.link.connected:
            self.link.last_error = None
        log.info("bus: %d last messages read from stream %s in %.0f ms", n, self.cfg.stream, (time.monotonic() - t0) * 1000)
