"""aggcore sink plugin: events as Hive-partitioned, zstd-compressed Parquet datasets."""

from .schema import DATASETS, open_dataset, read_schema, schema_markdown
from .sink import ParquetSink, ParquetSinkConfig

__all__ = ["DATASETS", "ParquetSink", "ParquetSinkConfig", "open_dataset", "read_schema", "schema_markdown"]
