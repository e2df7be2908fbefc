"""Credentialed URLs and DSNs: :class:`SecretUrl`, redacted everywhere it can be shown.

A webhook URL with a password or a token, a bus URL (``nats://user:pass@host``,
``nats://TOKEN@host``), a database DSN (``postgresql://user:pass@host/db``,
``redis://:pass@host:6379/0``): declare the config field as :class:`SecretUrl` and the
credentials never appear in ``repr``, ``str``, f-strings, ``model_dump(mode="json")``,
``model_dump_json``, config errors, health or logs. The full URL is only returned by
:meth:`SecretUrl.get_secret_value`, which is what you hand to the client library.

What is redacted (replaced by ``***``):

- the password (``user:***@host``), and a user name standing alone (``***@host``: NATS and
  many webhook services put a token there);
- every query value (``?token=***&sslmode=***``; the keys stay visible);
- path segments of 20 or more characters mixing letters and digits (tokens in capability
  URLs such as chat webhooks: ``/services/T0/B0/***``);
- the fragment.

Scheme, host, port, the other path segments and the query keys stay visible, so a log line
still says where. Third-party error messages may quote the URL or its parts: pass them
through :meth:`SecretUrl.scrub` (or :func:`redact_secrets`), and the log handler installed by
:func:`aggcore.log.setup_logging` scrubs every record (any logger, exceptions included) of
the secrets of every live :class:`SecretUrl`. Free text is scrubbed of the full URL, the
password, a token-like lone user name or path segment, and query values of secret-looking keys
(``token``, ``key``, ``secret``, ``pass``, ``auth``, ``sig``, ...) or of 8 characters and more;
pieces shorter than 4 characters are only hidden inside the URL itself.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretStr
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["MASK", "SecretUrl", "redact_secrets"]

MASK = "***"
_TOKEN_SEGMENT = re.compile(r"(?=[^/]*[A-Za-z])(?=[^/]*[0-9])[A-Za-z0-9_.~+=:%-]{20,}")
_SECRET_KEY = re.compile(r"token|secret|pass|pwd|key|auth|sig|cred|session", re.IGNORECASE)
_MIN_PIECE = 4  # shorter pieces (a one-letter user, "1") are not scrubbed from free text

_live: "weakref.WeakSet[SecretUrl]" = weakref.WeakSet()
_live_lock = threading.Lock()


class SecretUrl:
    """A URL or DSN whose credentials are secret (see the module docstring).

    Accepts any absolute URL with a scheme and a host (``scheme://...``). Compares and hashes
    by the full value. In a pydantic model it validates from a string (or another
    ``SecretUrl`` / ``SecretStr``), dumps as itself in python mode (so configs round-trip) and
    as the redacted text in JSON mode.
    """

    __slots__ = ("__weakref__", "_parts", "_pieces", "_redacted", "_value")

    def __init__(self, value: str) -> None:
        if isinstance(value, SecretUrl):
            value = value._value
        elif isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise TypeError(f"a URL must be a string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise ValueError("the URL is empty")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("not a valid URL (check the host and port)") from None
        if not parts.scheme or not parts.netloc or not parts.hostname:
            # never echo the value: it may be (or contain) a secret
            raise ValueError("expected an absolute URL like scheme://[user[:password]@]host[:port][/path]")
        self._value = text
        self._parts = parts
        self._redacted, self._pieces = _redact(parts)
        with _live_lock:
            _live.add(self)

    # -- the secret and its parts -----------------------------------------------------------------
    def get_secret_value(self) -> str:
        """The full URL, credentials included: only for the client library that connects."""
        return self._value

    @property
    def redacted(self) -> str:
        """The URL with its credentials replaced by ``***`` (what ``str`` and ``repr`` show)."""
        return self._redacted

    @property
    def scheme(self) -> str:
        return self._parts.scheme.lower()

    @property
    def host(self) -> str:
        return self._parts.hostname or ""

    @property
    def port(self) -> int | None:
        return self._parts.port

    @property
    def path(self) -> str:
        return self._parts.path

    @property
    def username(self) -> str | None:
        """The user name, percent-decoded (secret when it stands alone: treat it as such)."""
        return unquote(self._parts.username) if self._parts.username is not None else None

    @property
    def password(self) -> SecretStr | None:
        return SecretStr(unquote(self._parts.password)) if self._parts.password is not None else None

    def without_credentials(self) -> str:
        """The full URL without ``user:password@`` (query and path unchanged): for clients that
        take the credentials separately (``httpx`` ``auth=``, ``asyncpg`` ``password=``)."""
        host = self._parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = host + (f":{self._parts.port}" if self._parts.port is not None else "")
        return SplitResult(self._parts.scheme, netloc, self._parts.path, self._parts.query, self._parts.fragment).geturl()

    def require_scheme(self, *schemes: str) -> "SecretUrl":
        """Return self when the scheme is one of ``schemes``; raise ``ValueError`` otherwise
        (use from a pydantic ``field_validator``)."""
        if self.scheme not in {s.lower() for s in schemes}:
            raise ValueError(f"scheme {self.scheme!r} is not supported; use {' or '.join(f'{s}://' for s in schemes)}")
        return self

    def scrub(self, text: str) -> str:
        """``text`` with this URL and each of its secret parts replaced (for third-party errors)."""
        if not text:
            return text
        text = text.replace(self._value, self._redacted)
        for piece in self._pieces:
            if piece in text:
                text = text.replace(piece, MASK)
        return text

    # -- never shown --------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self._redacted

    def __repr__(self) -> str:
        return f"SecretUrl({self._redacted!r})"

    def __format__(self, spec: str) -> str:
        return format(self._redacted, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretUrl) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SecretUrl, (self._value,))

    # -- pydantic ---------------------------------------------------------------------------------------
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # two steps, so a failing value is reported as ``<hidden>`` by pydantic (input_value), never echoed
        return core_schema.chain_schema(
            [core_schema.no_info_plain_validator_function(_Hidden), core_schema.no_info_plain_validator_function(cls._validate)],
            serialization=core_schema.plain_serializer_function_ser_schema(
                cls._serialize, info_arg=True, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "uri", "writeOnly": True}

    @classmethod
    def _validate(cls, hidden: "_Hidden") -> "SecretUrl":
        value = hidden.value
        if isinstance(value, SecretUrl):
            return value
        if isinstance(value, (str, SecretStr)):
            return cls(value)  # type: ignore[arg-type]
        raise ValueError(f"expected a URL string, got {type(value).__name__}")

    @staticmethod
    def _serialize(value: "SecretUrl", info: core_schema.SerializationInfo) -> Any:
        if info.mode_is_json():
            return value._redacted
        return value


class _Hidden:
    """A value being validated: pydantic shows it in errors as ``<hidden>``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<hidden>"


def redact_secrets(text: str) -> str:
    """``text`` scrubbed of the secrets of every :class:`SecretUrl` alive in this process."""
    if not text:
        return text
    with _live_lock:
        live = list(_live)
    for url in live:
        text = url.scrub(text)
    return text


def _looks_like_token(text: str) -> bool:
    return len(text) >= 16 or (len(text) >= 8 and any(c.isdigit() for c in text) and any(c.isalpha() for c in text))


def _redact(parts: SplitResult) -> tuple[str, tuple[str, ...]]:
    """The redacted URL text and the secret pieces (raw and percent-decoded), longest first."""
    pieces: set[str] = set()
    netloc = parts.netloc
    userinfo = ""
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if sep:
            pieces.update((password, unquote(password)))
            userinfo = f"{user}:{MASK}@" if user else f":{MASK}@"
        else:
            if _looks_like_token(unquote(user)):  # "postgres" alone is shown masked, not scrubbed from all text
                pieces.update((user, unquote(user)))
            userinfo = f"{MASK}@"
        netloc = userinfo + hostport
    segments = parts.path.split("/")
    for i, seg in enumerate(segments):
        if _TOKEN_SEGMENT.fullmatch(seg):
            pieces.update((seg, unquote(seg)))
            segments[i] = MASK
    path = "/".join(segments)
    query = ""
    if parts.query:
        pairs = []
        for key, val in parse_qsl(parts.query, keep_blank_values=True):
            if val:
                if _SECRET_KEY.search(key) or len(val) >= 8:  # not "true" or "require" in every log line
                    pieces.update((val, quote(val, safe=""), quote(val)))
                pairs.append(f"{quote(key, safe='')}={MASK}")
            else:
                pairs.append(quote(key, safe=""))
        query = "&".join(pairs)
    fragment = ""
    if parts.fragment:
        pieces.update((parts.fragment, unquote(parts.fragment)))
        fragment = MASK
    redacted = SplitResult(parts.scheme, netloc, path, query, fragment).geturl()
    keep = tuple(sorted((p for p in pieces if len(p) >= _MIN_PIECE), key=len, reverse=True))
    return redacted, keep
