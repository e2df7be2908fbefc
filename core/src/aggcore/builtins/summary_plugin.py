"""Entry point ``summary``: registers the built-in analyzer :class:`~aggcore.builtins.analyzers.summary.SummaryAnalyzer`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..analyzer import Analyzer


@hookimpl
def aggcore_register_analyzers() -> list[type[Analyzer]]:
    from .analyzers.summary import SummaryAnalyzer  # lazy: a broken built-in is this plugin's load error only

    return [SummaryAnalyzer]
