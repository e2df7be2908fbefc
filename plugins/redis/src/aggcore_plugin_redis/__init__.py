"""aggcore sink plugin: latest summaries and health as Redis keys, events on capped streams."""

from .sink import RedisSink, RedisSinkConfig

__all__ = ["RedisSink", "RedisSinkConfig"]
