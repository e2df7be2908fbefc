"""aggcore-sink-chat: arbitrage openings as chat messages (an example third-party sink)."""

from .plugin import ChatSink, ChatSinkConfig

__all__ = ["ChatSink", "ChatSinkConfig"]
