"""The plugin conformance suite: certify any installed connector against its own fake server.

Every check runs the plugin's real connector against the plugin's fake exchange over
loopback sockets (no mocks), with two symbols:

==================  ===========================================================================
``live``            subscribes and every book reaches LIVE
``truth``           after many updates the book equals the fake's truth (top levels, exactly)
``symbols``         every instrument round-trips: pair -> native symbol -> pair
``rest_429``        a 429 with Retry-After on the instrument list is honoured, then it syncs
``fault:<name>``    one fault of :class:`~aggcore.testing.Fault` (those the fake supports):
                    the affected symbol resyncs or recovers, the other symbol stays LIVE (unless
                    the exchange's sequence is per connection), and the books equal the truth
                    afterwards. The adversarial ones (``impossible_level``, ``lost_snapshot``,
                    ``absurd_snapshot``, ``malformed_rest``, ``far_levels``, ``fuzz``, and
                    ``error_reply``) also require every book LIVE again within
                    ``HEAL_TIMEOUT_S`` once the fake sends clean data (the harness runs the
                    engine with short deadlines: ``DEADLINE_S``, ``FAILED_RETRY_S``,
                    ``MAX_LEVELS`` levels a side)
==================  ===========================================================================

In every check, every change of a LIVE book is audited: it must not be crossed, and its top
levels must equal a state the fake's book really passed through (``GenBook.record``), so a
wrong book is caught the moment it would be emitted, not only at the end.

Run it from pytest (the project's ``tests/test_conformance.py`` parametrizes it over every
installed plugin) or as ``aggcore plugins check NAME``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ..book import SnapshotSource, SymbolBook
from ..models import BookState
from .running import running, wait_until
from .server import FakeExchange, Fault

if TYPE_CHECKING:
    from ..connector import Connector
    from ..plugins import PluginRegistry

__all__ = ["CHECKS", "ConformanceError", "Harness", "checks_for", "run_check", "run_all"]

TOP = 10
FAULT_CHECKS = [
    Fault.GAP,
    Fault.REORDER,
    Fault.DUPLICATE,
    Fault.BAD_CHECKSUM,
    Fault.DISCONNECT,
    Fault.STALL,
    Fault.MALFORMED,
    Fault.ERROR_REPLY,
    Fault.SNAPSHOT,
    Fault.OVERSIZE_SNAPSHOT,
    Fault.REST_418,
    # adversarial (issue 16): after each the process lives, no wrong book is emitted, and the
    # book is LIVE again within its deadline once the fake sends clean data
    Fault.IMPOSSIBLE_LEVEL,
    Fault.LOST_SNAPSHOT,
    Fault.ABSURD_SNAPSHOT,
    Fault.MALFORMED_REST,
    Fault.FAR_LEVELS,
    Fault.FUZZ,
]
#: engine settings of the harness: short deadlines so healing is checked in seconds
DEADLINE_S = 1.0
FAILED_RETRY_S = 2.0
MAX_LEVELS = 1000
#: how long a book may take to be LIVE again after a fault (several escalation rounds)
HEAL_TIMEOUT_S = 12.0


class ConformanceError(AssertionError):
    pass


class _Auditor:
    """Listens to every book change: a LIVE book must never be crossed, and its top levels must
    equal a state the fake's truth really passed through (the fake records every state)."""

    def __init__(self, fake: FakeExchange | None = None, n: int = TOP) -> None:
        self.violations: list[str] = []
        self.changes = 0
        self.fake = fake
        self.n = n

    def book_changed(self, book: SymbolBook, receipt_ns: int) -> None:
        self.changes += 1
        if not book.live:
            self.violations.append(f"{book.symbol}: change reported while {book.state.value}")
        elif book.book.crossed():
            self.violations.append(f"{book.symbol}: crossed book reported as LIVE")
        elif self.fake is not None:
            truth = self.fake.books.get(book.symbol)
            if truth is not None and not truth.was_state(book.book.bids.top(self.n), book.book.asks.top(self.n)):
                self.violations.append(
                    f"{book.symbol}: LIVE book (sequence {book.last_seq}) equals no state the exchange's book was in"
                )

    def book_state_changed(self, book: SymbolBook) -> None:
        pass


@dataclass
class Harness:
    """A plugin's connector running against the plugin's fake exchange."""

    name: str
    fake: FakeExchange
    connector: "Connector"
    auditor: _Auditor
    symbols: list[str] = field(default_factory=list)

    @property
    def books(self) -> dict[str, SymbolBook]:
        return self.connector.books

    async def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        try:
            await wait_until(predicate, timeout, what=what)
        except AssertionError as exc:
            raise ConformanceError(f"{self.name}: {exc}; {self.describe()}") from None

    def describe(self) -> str:
        parts = [
            f"{s}={b.state.value}(resyncs={b.resyncs}, err={b.error!r})" for s, b in self.books.items()
        ]
        return f"books: {', '.join(parts) or 'none'}; pair_errors={self.connector.pair_errors}; last_error={self.connector.last_error!r}"

    def all_live(self) -> bool:
        return len(self.books) == len(self.symbols) and all(b.live for b in self.books.values())

    def matches_truth(self, symbol: str) -> bool:
        book = self.books[symbol]
        if not book.live:
            return False
        n = min(TOP, book.depth or TOP)
        bids, asks = self.fake.books[symbol].truth(n)
        return book.book.bids.top(n) == bids and book.book.asks.top(n) == asks

    async def settle(self, attempts: int = 3) -> None:
        """Pause the market and wait until every book equals the fake's truth.

        A book still healing when the market pauses (a frame in flight resynced it) may need
        the market's next delta to prove continuity after its snapshot (REST exchanges): then
        the market resumes until every book is LIVE and the comparison is tried again. A book
        that is LIVE but wrong fails every attempt."""
        for attempt in range(attempts):
            self.fake.pause()
            try:
                await wait_until(lambda: all(self.matches_truth(s) for s in self.symbols), 4.0 if attempt < attempts - 1 else 10.0)
                return
            except AssertionError:
                if attempt == attempts - 1:
                    raise ConformanceError(
                        f"{self.name}: timed out waiting for books to equal the truth; {self.describe()}"
                    ) from None
            finally:
                self.fake.resume()
            await self.wait(self.all_live, "every book to be LIVE again before comparing", HEAL_TIMEOUT_S)

    def check_audit(self) -> None:
        if self.auditor.violations:
            raise ConformanceError(f"{self.name}: wrong book emitted: {self.auditor.violations[:5]}")


def fake_class(registry: "PluginRegistry", name: str) -> type[FakeExchange]:
    try:
        return registry.connectors[name].load_fake()
    except LookupError as exc:
        raise ConformanceError(str(exc)) from None


@asynccontextmanager
async def harness(
    registry: "PluginRegistry", name: str, *, seed: int = 1, before_start: Callable[[FakeExchange], None] | None = None
) -> AsyncIterator[Harness]:
    fake = fake_class(registry, name)(seed=seed, rate_hz=50.0)
    symbols = list(fake.books)[:2]
    cls = registry.connectors[name]
    async with fake:
        if before_start is not None:
            before_start(fake)
        section = fake.connector_config(trading_pairs=symbols)
        section.update(
            stale_after_s=1.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            request_timeout_s=3.0,
            resync_deadline_s=DEADLINE_S,
            failed_retry_s=FAILED_RETRY_S,
            max_book_levels=MAX_LEVELS,
        )
        config = cls.Config.model_validate(section)
        auditor = _Auditor(fake)
        connector = cls(config, listener=auditor)
        auditor.n = min(TOP, connector.depth or TOP)
        for sym in symbols:
            fake.books[sym].record(auditor.n)
        h = Harness(name, fake, connector, auditor, symbols)
        async with running(connector):
            yield h


# -- checks ---------------------------------------------------------------------------------------------------


async def check_live(registry: "PluginRegistry", name: str) -> str:
    async with harness(registry, name) as h:
        await h.wait(h.all_live, "every book to be LIVE")
        h.check_audit()
        return f"{len(h.books)} books LIVE"


async def check_truth(registry: "PluginRegistry", name: str) -> str:
    async with harness(registry, name, seed=2) as h:
        await h.wait(h.all_live, "every book to be LIVE")
        start = {s: h.fake.books[s].seq for s in h.symbols}
        await h.wait(lambda: all(h.fake.books[s].seq - start[s] >= 50 for s in h.symbols), "50 updates")
        await h.settle()
        h.check_audit()
        return f"books equal the truth after {min(h.fake.books[s].seq - start[s] for s in h.symbols)} updates"


async def check_symbols(registry: "PluginRegistry", name: str) -> str:
    async with harness(registry, name, seed=3) as h:
        await h.wait(lambda: h.connector.symbols is not None, "the instrument list")
        table = h.connector.symbols
        assert table is not None
        for symbol, inst in table.by_symbol.items():
            first = table.by_pair[inst.pair]
            if table.resolve(inst.pair) is not first or table.resolve(symbol) is not inst:
                raise ConformanceError(f"{name}: {symbol} <-> {inst.pair} does not round-trip")
            if "/" not in inst.pair:
                raise ConformanceError(f"{name}: {symbol} maps to {inst.pair!r}, not BASE/QUOTE")
        return f"{len(table)} instruments round-trip"


async def check_rest_429(registry: "PluginRegistry", name: str) -> str:
    def arm(fake: FakeExchange) -> None:
        fake.inject(Fault.REST_429, retry_after=0.3)

    async with harness(registry, name, seed=4, before_start=arm) as h:
        t0 = time.monotonic()
        await h.wait(h.all_live, "every book to be LIVE after a 429")
        if time.monotonic() - t0 < 0.25:
            raise ConformanceError(f"{name}: Retry-After of a 429 was not honoured")
        return f"429 honoured ({time.monotonic() - t0:.2f}s to LIVE)"


def _fault_check(fault: Fault) -> Callable[["PluginRegistry", str], Awaitable[str]]:
    async def check(registry: "PluginRegistry", name: str) -> str:
        async with harness(registry, name, seed=10 + FAULT_CHECKS.index(fault)) as h:
            await h.wait(h.all_live, "every book to be LIVE")
            target, other = h.symbols[0], h.symbols[-1]
            per_connection = getattr(h.connector, "gap_scope", "symbol") == "connection"
            before = {s: b.resyncs for s, b in h.books.items()}
            reconnects = h.connector.reconnects
            errors = h.connector.errors
            if fault is Fault.OVERSIZE_SNAPSHOT:
                h.fake.inject(fault, target, levels=20000)
                h.books[target].resync("conformance: force a fresh snapshot")
            elif fault is Fault.REST_418:
                if h.connector.rules.snapshot is not SnapshotSource.REST:
                    return "skipped: no REST snapshots on this exchange"
                h.fake.inject(fault, retry_after=0.2)
                h.books[target].resync("conformance: force a REST snapshot")
            elif fault is Fault.STALL:
                h.fake.inject(fault, seconds=2.5)
            elif fault in _ADVERSARIAL:
                return await _ADVERSARIAL[fault](h, target, other, per_connection)
            else:
                h.fake.inject(fault, target)
            if fault in (Fault.GAP, Fault.REORDER, Fault.BAD_CHECKSUM):
                await h.wait(lambda: h.books[target].resyncs > before[target], f"{target} to resync after {fault.value}")
                if not per_connection and h.books[other].resyncs != before[other]:
                    raise ConformanceError(f"{name}: {fault.value} on {target} also resynced {other}")
            elif fault is Fault.DISCONNECT:
                await h.wait(lambda: h.connector.reconnects > reconnects, "a reconnect")
            elif fault is Fault.STALL:
                await h.wait(
                    lambda: any(b.state is not BookState.LIVE for b in h.books.values()) or h.connector.reconnects > reconnects,
                    "the stall to be noticed (STALE or reconnect)",
                )
            elif fault is Fault.MALFORMED:
                await h.wait(lambda: h.connector.errors > errors, "the malformed frame to be reported")
            elif fault is Fault.ERROR_REPLY:
                await h.wait(
                    lambda: h.books[target].state is not BookState.LIVE or h.connector.errors > errors,
                    "the error reply to reach health",
                )
                if not h.books[other].live and not per_connection:
                    raise ConformanceError(f"{name}: an error for {target} took {other} down")
                reported = h.books[target].error or h.connector.last_error
                # transient errors are retried with backoff, FAILED ones after failed_retry_s: LIVE again
                t0 = time.monotonic()
                await h.wait(h.all_live, "every book to be LIVE again after the error reply", HEAL_TIMEOUT_S)
                await h.settle()
                h.check_audit()
                return f"error reply on {target} reported ({reported}); LIVE again in {time.monotonic() - t0:.2f}s"
            else:
                # duplicate, snapshot, oversize snapshot: nothing visible but a correct book
                await anyio.sleep(0.3)
            await h.wait(h.all_live, "every book to be LIVE again")
            if not per_connection and fault not in (Fault.DISCONNECT, Fault.STALL) and not h.books[other].live:
                raise ConformanceError(f"{name}: {fault.value} on {target} took {other} down")
            await h.settle()
            h.check_audit()
            resyncs = {s: b.resyncs - before[s] for s, b in h.books.items()}
            return f"recovered; resyncs {resyncs}, reconnects {h.connector.reconnects - reconnects}"

    check.__name__ = f"check_fault_{fault.value}"
    return check


# -- adversarial checks ------------------------------------------------------------------------------------


async def _healed(h: Harness, target: str, other: str, per_connection: bool, what: str, t0: float) -> str:
    """After a fault: every book LIVE again within HEAL_TIMEOUT_S, equal to the truth, no wrong
    book ever emitted, the other symbol untouched (unless the exchange's sequence is per connection)."""
    await anyio.sleep(0.1)  # frames the fake already queued reach the client first
    await h.wait(h.all_live, f"every book to be LIVE again after {what}", HEAL_TIMEOUT_S)
    healed = time.monotonic() - t0
    await h.settle()
    h.check_audit()
    return f"{what}: LIVE again in {healed:.2f}s"


async def _impossible_level(h: Harness, target: str, other: str, per_connection: bool) -> str:
    from .mutate import IMPOSSIBLE_LEVELS

    book = h.books[target]
    other_resyncs = h.books[other].resyncs
    times = []
    for which, (what, _, _) in enumerate(IMPOSSIBLE_LEVELS):
        await h.wait(h.all_live, "every book to be LIVE", HEAL_TIMEOUT_S)
        invalid, resyncs = book.invalid_messages, book.resyncs
        t0 = time.monotonic()
        h.fake.inject(Fault.IMPOSSIBLE_LEVEL, target, which=which)
        await h.wait(
            lambda: book.invalid_messages > invalid or book.resyncs > resyncs,
            f"{target} to reject a correctly sequenced delta with {what}",
        )
        await h.wait(h.all_live, f"every book to be LIVE again after a level with {what}", HEAL_TIMEOUT_S)
        times.append(time.monotonic() - t0)
    h.check_audit()
    if not per_connection and h.books[other].resyncs != other_resyncs:
        raise ConformanceError(f"{h.name}: impossible levels on {target} also resynced {other}")
    await h.settle()
    h.check_audit()
    return (
        f"{len(IMPOSSIBLE_LEVELS)} impossible levels rejected ({book.invalid_messages} invalid messages), "
        f"LIVE again in at most {max(times):.2f}s"
    )


def _rest(h: Harness) -> bool:
    return h.connector.rules.snapshot is SnapshotSource.REST


async def _fault_on_resync(h: Harness, target: str, fault: Fault, reason: str, what: str) -> float:
    """Arm ``fault`` for ``target``'s next snapshot, resync it, wait until the fake used the
    fault; returns when it started (``time.monotonic()``)."""
    t0 = time.monotonic()
    h.fake.inject(fault, target)
    h.books[target].resync(f"conformance: {reason}")
    await h.wait(lambda: h.fake.peek_fault(fault) is None, f"the fake to {what}")
    return t0


async def _lost_snapshot(h: Harness, target: str, other: str, per_connection: bool) -> str:
    if _rest(h):
        return "skipped: snapshots come over REST on this exchange (see absurd_snapshot, malformed_rest)"
    t0 = await _fault_on_resync(h, target, Fault.LOST_SNAPSHOT, "resubscribe, and the snapshot is lost", "lose a snapshot")
    return await _healed(h, target, other, per_connection, "a lost snapshot", t0)


async def _absurd_snapshot(h: Harness, target: str, other: str, per_connection: bool) -> str:
    if not _rest(h):
        return "skipped: no REST snapshots on this exchange (see lost_snapshot)"
    t0 = await _fault_on_resync(
        h, target, Fault.ABSURD_SNAPSHOT, "force a REST snapshot, from the future", "serve an absurd snapshot"
    )
    return await _healed(h, target, other, per_connection, "a snapshot far ahead of the stream", t0)


async def _malformed_rest(h: Harness, target: str, other: str, per_connection: bool) -> str:
    if not _rest(h):
        return "skipped: no REST snapshots on this exchange"
    errors = h.connector.errors
    t0 = await _fault_on_resync(
        h, target, Fault.MALFORMED_REST, "force a REST snapshot, without levels", "serve a body without levels"
    )
    await h.wait(lambda: h.connector.errors > errors, "the malformed snapshot to be reported")
    if not h.books[other].live and not per_connection:
        raise ConformanceError(f"{h.name}: a malformed snapshot of {target} took {other} down")
    return await _healed(h, target, other, per_connection, f"a malformed REST body ({h.connector.last_error})", t0)


async def _far_levels(h: Harness, target: str, other: str, per_connection: bool) -> str:
    t0 = time.monotonic()
    flood = 3 * MAX_LEVELS
    h.fake.inject(Fault.FAR_LEVELS, target, levels=flood)
    await h.wait(lambda: h.fake.peek_fault(Fault.FAR_LEVELS) is None, "the fake to send far levels")
    await anyio.sleep(0.2)
    result = await _healed(h, target, other, per_connection, f"{flood} far levels a side", t0)
    book = h.books[target]
    sizes = (len(book.book.bids), len(book.book.asks))
    if max(sizes) > MAX_LEVELS:
        raise ConformanceError(f"{h.name}: {target} holds {sizes} levels, more than max_book_levels={MAX_LEVELS}")
    return f"{result}; book sides {sizes[0]}/{sizes[1]} levels (cap {MAX_LEVELS})"


async def _fuzz(h: Harness, target: str, other: str, per_connection: bool) -> str:
    t0 = time.monotonic()
    count = 30
    h.fake.inject(Fault.FUZZ, target, count=count, seed=16)
    await h.wait(lambda: h.fake.peek_fault(Fault.FUZZ) is None, f"the fake to send {count} fuzzed frames", 20.0)
    kinds = sorted(set(h.fake.fuzz_log))
    result = await _healed(h, target, other, per_connection, f"{count} fuzzed frames ({', '.join(kinds)})", t0)
    c = h.connector
    return f"{result}; errors {c.error_counts}, invalid messages {h.books[target].invalid_messages}"


_ADVERSARIAL: dict[Fault, Callable[[Harness, str, str, bool], Awaitable[str]]] = {
    Fault.IMPOSSIBLE_LEVEL: _impossible_level,
    Fault.LOST_SNAPSHOT: _lost_snapshot,
    Fault.ABSURD_SNAPSHOT: _absurd_snapshot,
    Fault.MALFORMED_REST: _malformed_rest,
    Fault.FAR_LEVELS: _far_levels,
    Fault.FUZZ: _fuzz,
}


CHECKS: dict[str, Callable[["PluginRegistry", str], Awaitable[str]]] = {
    "live": check_live,
    "truth": check_truth,
    "symbols": check_symbols,
    "rest_429": check_rest_429,
    **{f"fault:{f.value}": _fault_check(f) for f in FAULT_CHECKS},
}


def checks_for(registry: "PluginRegistry", name: str) -> list[str]:
    """The checks that apply to a plugin (fault checks for the faults its fake supports)."""
    supported = fake_class(registry, name).supported_faults
    return [c for c in CHECKS if not c.startswith("fault:") or Fault(c.split(":", 1)[1]) in supported]


async def run_check(registry: "PluginRegistry", name: str, check: str, timeout: float = 60.0) -> str:
    with anyio.fail_after(timeout):
        return await CHECKS[check](registry, name)


async def run_all(registry: "PluginRegistry", name: str, report: Callable[[str, bool, str], Any]) -> bool:
    ok = True
    for check in checks_for(registry, name):
        try:
            detail = await run_check(registry, name, check)
            report(check, True, detail)
        except Exception as exc:  # report every failure, go on with the next check
            ok = False
            report(check, False, f"{type(exc).__name__}: {exc}")
    return ok
