"""Entry point ``arbitrage``: registers the built-in analyzer :class:`~aggcore.builtins.analyzers.arbitrage.ArbitrageAnalyzer`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..analyzer import Analyzer


@hookimpl
def aggcore_register_analyzers() -> list[type[Analyzer]]:
    from .analyzers.arbitrage import ArbitrageAnalyzer  # lazy: a broken built-in is this plugin's load error only

    return [ArbitrageAnalyzer]
