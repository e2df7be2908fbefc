"""Entry point ``webhook``: registers the built-in sink :class:`~aggcore.builtins.sinks.webhook.WebhookSink`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..sink import Sink


@hookimpl
def aggcore_register_sinks() -> list[type[Sink]]:
    from .sinks.webhook import WebhookSink  # lazy: a broken built-in is this plugin's load error only

    return [WebhookSink]
