"""The analyzer interface: turn consolidated views into events (summaries, arbitrage, ...).

Analyzers are not called per message: the runtime calls ``on_update`` for every pair whose
consolidated view changed, at most once per ``analyze_interval_ms`` (and ``on_tick`` on a
timer), from the aggregator's analysis task. They publish with ``emit(event)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from .sink import Event

if TYPE_CHECKING:
    from .consolidated import ConsolidatedView

__all__ = ["Analyzer", "AnalyzerConfig"]


class AnalyzerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class Analyzer:
    name: ClassVar[str]
    Config: ClassVar[type[AnalyzerConfig]] = AnalyzerConfig

    def __init__(self, config: AnalyzerConfig, emit: Callable[[Event], None], settings: BaseModel) -> None:
        self.config = config
        self.emit = emit
        self.settings = settings  # the ``aggregation`` section

    def on_update(self, view: "ConsolidatedView", now: float) -> None:
        """A pair's consolidated view changed (throttled)."""

    def on_tick(self, views: dict[str, "ConsolidatedView"], now: float) -> None:
        """Called on a timer (about every 100 ms), for time-based emission and expiry."""
