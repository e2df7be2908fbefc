"""aggcore sink plugin: a live web dashboard of the consolidated books, venue health and arbitrage."""

from .server import DashboardServer
from .sink import DashboardConfig, DashboardSink
from .state import DashboardState

__all__ = ["DashboardConfig", "DashboardServer", "DashboardSink", "DashboardState"]
