"""aggcore sink plugin: events as Hive-partitioned, zstd-compressed Parquet datasets."""

from .schema import DATASETS, schema_markdown
from .sink import ParquetSink, ParquetSinkConfig

__all__ = ["DATASETS", "ParquetSink", "ParquetSinkConfig", "schema_markdown"]
