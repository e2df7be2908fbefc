"""The ``console`` sink: a live view on stderr (``aggcore run --live`` or ``sinks: {console: {}}``).

Per pair: the consolidated top-N bids and asks with the exchange of every level, spread, mid,
the venues used and the ones left out (and why); the open arbitrage opportunities (opened or
updated; removed when closed); one health line per exchange (and per sink). Columns are as
wide as their content, so an 80x24 terminal shows whole venue names; when the frame is taller
than the terminal it shows fewer levels per side first. ``q`` (when stdin is a terminal) or
Ctrl-C quits ``aggcore run --live``.

On a terminal the frame is redrawn in place with ANSI escapes, at most every ``refresh_ms``,
from the latest state (intermediate states are skipped). When stderr is not a terminal
(redirected to a file or a log collector), a compact plain snapshot is printed every
``refresh_ms * 4`` instead, and only when something changed. Writes happen in a worker
thread, so a stalled terminal never stalls the books.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import anyio
import anyio.to_thread
from pydantic import Field

from ...models import ArbitrageOpportunity, BookState, HealthStatus, PriceLevel, Summary
from ...sink import Event, EventKind, Sink, SinkConfig
from .stdout import fmt_num, fmt_price, write_text

__all__ = ["ConsoleSink", "ConsoleSinkConfig", "KeyReader"]

log = logging.getLogger("aggcore.sink.console")

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
HOME = "\x1b[H"
CLEAR_SCREEN = "\x1b[2J"
CLEAR_EOL = "\x1b[K"
CLEAR_BELOW = "\x1b[J"
QUIT_HINT = "q or Ctrl-C to quit"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
NO_WRAP = "\x1b[?7l"
WRAP = "\x1b[?7h"


class KeyReader:
    """Keys pressed on a terminal stdin, without Enter (cbreak mode: Ctrl-C still interrupts),
    delivered to ``callback`` from the event loop; the terminal's settings are restored by
    :meth:`stop` (and at exit, whatever happens)."""

    def __init__(self, fd: int, saved: list[Any], callback: Callable[[bytes], None]) -> None:
        self.fd = fd
        self.saved = saved
        self.callback = callback
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(fd, self._read)
        atexit.register(self._restore)

    @classmethod
    def start(cls, callback: Callable[[bytes], None]) -> "KeyReader | None":
        """A reader on stdin when it is a terminal (and the platform has termios), else ``None``."""
        try:
            import termios
            import tty

            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return None
            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            return cls(fd, saved, callback)
        except (ImportError, OSError, ValueError, AttributeError, NotImplementedError):
            return None

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 64)
        except OSError:
            data = b""
        if not data:  # stdin closed
            self.loop.remove_reader(self.fd)
            return
        self.callback(data)

    def _restore(self) -> None:
        try:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except (ImportError, OSError, ValueError):
            pass

    def stop(self) -> None:
        try:
            self.loop.remove_reader(self.fd)
        except (ValueError, OSError, RuntimeError):
            pass
        self._restore()
        atexit.unregister(self._restore)


def _console_events() -> list[EventKind]:
    return ["summary", "arbitrage", "health"]


class ConsoleSinkConfig(SinkConfig):
    """``sinks.console``."""

    events: list[EventKind] = Field(default_factory=_console_events)
    refresh_ms: float = Field(250, gt=0, description="redraw at most this often (plain snapshots every 4x this when not a TTY)")
    depth: int = Field(5, ge=1, le=50, description="levels shown per side")
    color: bool | None = Field(None, description="ANSI colours (None: when stderr is a terminal)")


class ConsoleSink(Sink):
    """A refreshing table of books, arbitrage and health on stderr."""

    name = "console"
    Config = ConsoleSinkConfig

    def __init__(self, config: SinkConfig, *, stream: TextIO | None = None, tty: bool | None = None) -> None:
        super().__init__(config)
        self.cfg = config if isinstance(config, ConsoleSinkConfig) else ConsoleSinkConfig.model_validate(config.model_dump())
        self._stream = stream
        self._tty = tty
        self.summaries: dict[str, Summary] = {}
        self.opportunities: dict[tuple[str, str, str], ArbitrageOpportunity] = {}
        self.health: dict[str, HealthStatus] = {}
        self._dirty = False
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self.frames = 0
        self.started_at = time.time()
        #: called when the user presses ``q`` (``aggcore run --live`` then stops the run)
        self.on_quit: Callable[[], None] | None = None
        self.reads_keys = False  # stdin is a terminal put in cbreak mode while the view runs
        self._keys: KeyReader | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def use_color(self) -> bool:
        return self.cfg.color if self.cfg.color is not None else self.is_tty

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="aggcore-console")
        if self.is_tty and self._stream is None:
            self._keys = KeyReader.start(self._key)
            self.reads_keys = self._keys is not None

    def _key(self, data: bytes) -> None:
        if b"q" in data.lower() and self.on_quit is not None:
            self.on_quit()

    async def write(self, events: Sequence[Event]) -> None:
        for event in events:
            self.apply(event)

    async def close(self) -> None:
        if self._keys is not None:
            self._keys.stop()
            self._keys = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("console refresh failed")
            self._task = None
        if self._dirty or self._started:
            text = self.render_frame(final=True)
            if self.is_tty:
                text = (HOME if self._started else CLEAR_SCREEN + HOME) + text + WRAP + SHOW_CURSOR
            await self._emit(text)

    # -- state -------------------------------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one event into the state shown."""
        payload = event.payload
        if isinstance(payload, Summary):
            self.summaries[payload.symbol] = payload
        elif isinstance(payload, ArbitrageOpportunity):
            key = (payload.symbol, payload.buy_exchange, payload.sell_exchange)
            if payload.event == "closed":
                self.opportunities.pop(key, None)
            else:
                self.opportunities[key] = payload
        elif isinstance(payload, HealthStatus):
            self.health[payload.exchange] = payload
        else:
            return
        self._dirty = True

    async def _refresh_loop(self) -> None:
        interval = self.cfg.refresh_ms / 1000 * (1 if self.is_tty else 4)
        while True:
            await anyio.sleep(interval)
            if not self._dirty:
                continue
            text = self.render_frame()
            if self.is_tty and not self._started:
                text = HIDE_CURSOR + NO_WRAP + CLEAR_SCREEN + text
                self._started = True
            await self._emit(text)

    async def _emit(self, text: str) -> None:
        self._dirty = False
        try:
            await anyio.to_thread.run_sync(write_text, self.stream, text, abandon_on_cancel=True)
        except (OSError, ValueError) as exc:
            self.health_error = f"cannot write to stderr: {exc}"
        else:
            self.frames += 1
            self.health_error = None

    # -- rendering ----------------------------------------------------------------------------------------------
    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.use_color else text

    def render_lines(self, depth: int | None = None) -> list[str]:
        """The frame as plain lines (colour codes included when enabled); ``depth`` levels per
        side (default: the configured depth)."""
        depth = depth or self.cfg.depth
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        head = self._c(BOLD, f"aggcore live {now} UTC") + f"  pairs {len(self.summaries)}  arbitrage {len(self.opportunities)}"
        lines = [head + "  " + self._c(DIM, QUIT_HINT if self.reads_keys else "Ctrl-C to quit")]
        for symbol in sorted(self.summaries):
            lines.append("")
            lines.extend(self._render_summary(self.summaries[symbol], depth))
        lines.append("")
        lines.append(self._c(BOLD, "ARBITRAGE") + ("" if self.opportunities else "  none open"))
        for opp in sorted(self.opportunities.values(), key=lambda o: -o.profit_percentage):
            like = opp.buy_price
            lines.append(
                f"  {opp.symbol}  {opp.buy_exchange} {fmt_price(opp.buy_price, like=like)} -> {opp.sell_exchange} "
                f"{fmt_price(opp.sell_price, like=like)}  vol {fmt_num(opp.volume, 4)}  "
                + self._c(GREEN, f"net {opp.profit_percentage:+.2f}%")
                + f"  {opp.duration_ms / 1000:.1f}s"
            )
        lines.append("")
        lines.append(self._c(BOLD, "HEALTH") + ("" if self.health else "  waiting for the first report"))
        for name in sorted(self.health):
            lines.append("  " + self._render_health(self.health[name]))
        return lines

    def _render_summary(self, s: Summary, depth: int | None = None) -> list[str]:
        head = self._c(BOLD + CYAN, f"{s.symbol}")
        if s.venues:
            head += f"  spread {fmt_price(s.spread, like=s.mid)}  mid {fmt_price(s.mid)}"
        else:
            head += "  " + self._c(YELLOW, "no venue live")
        if s.crossed:
            head += "  " + self._c(YELLOW, "CROSSED")
        out = [head]
        if s.venues:
            out.append("  venues " + ", ".join(s.venues))
        for name, why in sorted(s.excluded.items()):  # one line each: the venue's name comes first
            out.append("  " + self._c(DIM, f"excluded {name}: {why}"))
        depth = depth or self.cfg.depth
        bids: list[PriceLevel] = s.bids[:depth]
        asks: list[PriceLevel] = s.asks[:depth]
        if not bids and not asks:
            return out
        # columns as wide as their content (venue names are never cut): fits 80 columns
        ex_w = max([8, *(len(lv.exchange) for lv in bids + asks)])
        bid_px = [fmt_price(lv.price) for lv in bids]
        ask_px = [fmt_price(lv.price) for lv in asks]
        bid_q = [fmt_num(lv.quantity, 6) for lv in bids]
        ask_q = [fmt_num(lv.quantity, 6) for lv in asks]
        px_w = max([5, *map(len, bid_px + ask_px)])
        q_w = max([7, *map(len, bid_q + ask_q)])
        out.append(self._c(DIM, f"  {'exchange':>{ex_w}} {'bid qty':>{q_w}} {'bid':>{px_w}} | {'ask':<{px_w}} {'ask qty':<{q_w}} {'exchange':<{ex_w}}"))
        for i in range(max(len(bids), len(asks))):
            left = (
                f"{bids[i].exchange:>{ex_w}} {bid_q[i]:>{q_w}} {self._c(GREEN, f'{bid_px[i]:>{px_w}}')}"
                if i < len(bids)
                else " " * (ex_w + q_w + px_w + 2)
            )
            right = f"{self._c(RED, f'{ask_px[i]:<{px_w}}')} {ask_q[i]:<{q_w}} {asks[i].exchange:<{ex_w}}" if i < len(asks) else ""
            out.append(f"  {left} | {right}".rstrip())
        return out

    def _render_health(self, h: HealthStatus) -> str:
        if h.is_healthy:
            status = self._c(GREEN, "OK      ")
        elif h.kind == "exchange" and not h.connected:
            status = self._c(RED, "DOWN    ")
        else:
            status = self._c(YELLOW, "DEGRADED")
        text = f"{h.exchange:<16} {status}"
        if h.kind == "exchange":
            live = sum(1 for sym in h.symbols.values() if sym.state is BookState.LIVE)
            text += f" {live}/{len(h.symbols)} LIVE  reconnects {h.reconnects}  resyncs {h.resyncs}"
        if h.error_message:
            text += "  " + h.error_message
        return text

    def render_frame(self, *, final: bool = False) -> str:
        """One frame: in place on a terminal, a plain snapshot followed by a blank line otherwise.
        On a terminal the frame fits its height: fewer levels per side first, then a cut."""
        lines = self.render_lines()
        if not self.is_tty:
            return "\n".join(lines) + "\n\n"
        height = max(5, shutil.get_terminal_size((120, 40)).lines)
        depth = self.cfg.depth
        while not final and len(lines) > height - 1 and depth > 1:
            depth -= 1
            lines = self.render_lines(depth)
        if not final and len(lines) > height - 1:
            lines = lines[: height - 2] + [f"... {len(lines) - height + 2} more lines (enlarge the terminal)"]
        # long lines are cut by the terminal (autowrap is off while the view runs), not wrapped
        return HOME + "".join(line + CLEAR_EOL + "\n" for line in lines) + CLEAR_BELOW
