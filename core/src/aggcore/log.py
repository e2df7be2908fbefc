"""Logging set-up: human-readable or JSON lines, always to stderr (stdout belongs to the stdout sink)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any, Literal

__all__ = ["JsonFormatter", "LogFormat", "SecretFilter", "setup_logging"]

LogFormat = Literal["human", "json"]

_HUMAN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# attributes every LogRecord has; anything else was passed with ``extra=`` and is kept in JSON
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, exception, and ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:  # already formatted (and scrubbed by SecretFilter)
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        return json.dumps(out, default=str, ensure_ascii=False)


class SecretFilter(logging.Filter):
    """Scrubs every record of the secrets of live :class:`~aggcore.credentials.SecretUrl` values
    (message, arguments and exception text), whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .credentials import redact_secrets

        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


class _AggcoreHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so repeated set-up replaces our handler and leaves others alone."""


def setup_logging(level: str | int = "INFO", fmt: LogFormat = "human", *, stream: IO[str] | None = None) -> None:
    """Send all log records to stderr (or ``stream``) as human lines or JSON lines.

    Idempotent: calling it again replaces the handler installed before.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.strip().upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = resolved
    if fmt not in ("human", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use 'human' or 'json'")
    handler = _AggcoreHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_HUMAN))
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AggcoreHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter stays at WARNING unless DEBUG was asked for
    for noisy in ("websockets", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
