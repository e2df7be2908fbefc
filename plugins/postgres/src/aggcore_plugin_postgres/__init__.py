"""aggcore sink plugin: events into PostgreSQL (TimescaleDB hypertables when present), batched COPY."""

from .sink import COLUMNS, PostgresSink, PostgresSinkConfig, ddl

__all__ = ["COLUMNS", "PostgresSink", "PostgresSinkConfig", "ddl"]
