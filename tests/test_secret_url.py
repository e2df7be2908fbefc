"""SecretUrl: credentials in URLs and DSNs never shown (repr, str, dumps, errors, logs, health)."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from aggcore.config import SecretUrl, load_config
from aggcore.credentials import redact_secrets
from aggcore.errors import ConfigError

PASSWORD = "hunter2-Pa55word"
TOKEN = "tok_9f8e7d6c5b4a39281706"
PATH_TOKEN = "Xq3vB8nT2kL9mP4wR7yZ1cD5"  # a chat-webhook style capability segment


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: SecretUrl


def secret_parts_absent(text: str) -> bool:
    return all(s not in text for s in (PASSWORD, TOKEN, PATH_TOKEN))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (f"https://bob:{PASSWORD}@hooks.example:8443/in?token={TOKEN}", "https://bob:***@hooks.example:8443/in?token=***"),
        (f"https://hooks.example/services/T01/B02/{PATH_TOKEN}", "https://hooks.example/services/T01/B02/***"),
        (f"nats://{TOKEN}@127.0.0.1:4222", "nats://***@127.0.0.1:4222"),
        (f"postgresql://app:{PASSWORD}@db:5432/events?sslmode=require", "postgresql://app:***@db:5432/events?sslmode=***"),
        (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
    ],
)
def test_redacted_everywhere_it_is_shown(raw: str, shown: str) -> None:
    url = SecretUrl(raw)
    assert url.get_secret_value() == raw
    assert str(url) == shown and f"{url}" == shown and url.redacted == shown
    assert repr(url) == f"SecretUrl({shown!r})"
    m = Model(url=raw)  # type: ignore[arg-type]
    for text in (repr(m), str(m), m.model_dump_json(), str(m.model_dump(mode="json")), str(m.model_dump())):
        assert secret_parts_absent(text), text
    assert m.model_dump(mode="json") == {"url": shown}
    # python-mode dumps keep the value object: a config round-trips without losing the secret
    assert Model.model_validate(m.model_dump()).url.get_secret_value() == raw
    assert pickle.loads(pickle.dumps(url)) == url
    assert Model.model_json_schema()["properties"]["url"]["writeOnly"] is True


def test_parts_and_helpers() -> None:
    url = SecretUrl(f"https://bob:{PASSWORD}@hooks.example:8443/in?token={TOKEN}")
    assert (url.scheme, url.host, url.port, url.path, url.username) == ("https", "hooks.example", 8443, "/in", "bob")
    assert url.password is not None and url.password.get_secret_value() == PASSWORD
    assert url.without_credentials() == f"https://hooks.example:8443/in?token={TOKEN}"
    assert url.require_scheme("http", "https") is url
    with pytest.raises(ValueError, match="scheme 'https' is not supported; use nats://"):
        url.require_scheme("nats")
    text = f"connect to https://bob:{PASSWORD}@hooks.example:8443/in?token={TOKEN} failed ({PASSWORD}, {TOKEN})"
    assert url.scrub(text) == "connect to https://bob:***@hooks.example:8443/in?token=*** failed (***, ***)"
    assert secret_parts_absent(redact_secrets(text))
    # short or common values are hidden in the URL, not scrubbed from every other text
    dsn = SecretUrl("postgresql://postgres@db/x?sslmode=require")
    assert str(dsn) == "postgresql://***@db/x?sslmode=***"
    assert dsn.scrub("postgresql sslmode require") == "postgresql sslmode require"


def test_invalid_urls_are_rejected_without_echoing_them() -> None:
    for bad in ("", "   ", f"bob:{PASSWORD}", f"/just/a/path?token={TOKEN}", f"http://bob:{PASSWORD}@host:notaport/"):
        with pytest.raises(ValidationError) as info:
            Model(url=bad)  # type: ignore[arg-type]
        assert secret_parts_absent(str(info.value)), str(info.value)


def test_config_errors_never_echo_the_url() -> None:
    raw = f"ftp://bob:{PASSWORD}@hooks.example/in?token={TOKEN}"
    with pytest.raises(ConfigError) as info:
        load_config({"sinks": {"webhook": {"url": raw, "batch_max_event": 1}}})
    text = str(info.value)
    assert "sinks.webhook.url" in text and "scheme 'ftp' is not supported" in text
    assert secret_parts_absent(text), text
