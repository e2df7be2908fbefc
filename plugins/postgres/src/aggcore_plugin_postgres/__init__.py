"""aggcore sink plugin: events into PostgreSQL (TimescaleDB hypertables when present), batched COPY."""

from .sink import ADDED, COLUMNS, PostgresSink, PostgresSinkConfig, ddl, upgrade_ddl

__all__ = ["ADDED", "COLUMNS", "PostgresSink", "PostgresSinkConfig", "ddl", "upgrade_ddl"]
