"""Plugin loading: entry points of group ``aggcore``, one by one, each in isolation.

Every call of :func:`load_plugins` builds a fresh :class:`pluggy.PluginManager` (there is
no global one and nothing is loaded at import time). Built-in sinks and analyzers are
entry points of the ``aggcore`` distribution and load exactly like external plugins.

A plugin that fails - its import raises, it implements a hook that does not exist, a hook
returns something other than a list of classes of the right kind, or it reuses a name that
is already taken - is unregistered, reported in :attr:`PluginRegistry.failures` (plugin
name, distribution, version, error) and every other plugin still loads. A plugin's
registrations are all-or-nothing. In strict mode (``strict=True`` or
``AGGCORE_STRICT_PLUGINS=1``) the first failure is raised as :class:`PluginError` with the
original exception as its ``__cause__``. ``AGGCORE_DISABLE_PLUGINS=a,b`` skips plugins by
entry-point name, built-ins included.
"""

from __future__ import annotations

import difflib
import logging
import importlib.metadata
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points as installed_entry_points
from typing import Any, Literal

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .analyzer import Analyzer, AnalyzerConfig
from .bus import Bus, BusConfig
from .connector import Connector, ConnectorConfig
from .errors import PluginError
from .sink import Sink, SinkConfig

__all__ = [
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "PluginInfo",
    "PluginKind",
    "PluginRegistry",
    "disabled_from_env",
    "load_plugins",
    "strict_from_env",
]

log = logging.getLogger("aggcore.plugins")

ENTRY_POINT_GROUP = "aggcore"
CORE_DISTRIBUTION = "aggcore"
STRICT_ENV = "AGGCORE_STRICT_PLUGINS"
DISABLE_ENV = "AGGCORE_DISABLE_PLUGINS"

PluginKind = Literal["connector", "sink", "analyzer", "bus"]
KINDS: tuple[PluginKind, ...] = ("connector", "sink", "analyzer", "bus")

# hook name -> (kind, base class, base config class)
_HOOKS: dict[str, tuple[PluginKind, type[Any], type[BaseModel]]] = {
    "aggcore_register_connectors": ("connector", Connector, ConnectorConfig),
    "aggcore_register_sinks": ("sink", Sink, SinkConfig),
    "aggcore_register_analyzers": ("analyzer", Analyzer, AnalyzerConfig),
    "aggcore_register_buses": ("bus", Bus, BusConfig),
}


@dataclass
class PluginInfo:
    """What ``aggcore plugins`` shows for one entry point.

    ``status`` is ``"ok"``, ``"disabled"`` or the error text.
    """

    name: str
    distribution: str | None
    version: str | None
    provides: list[str] = field(default_factory=list)
    status: str = "ok"
    builtin: bool = False
    value: str = ""
    warning: str | None = None  # e.g. built for another plugin API (another aggcore range)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "disabled")

    def describe(self) -> str:
        """``name (distribution version)`` for messages."""
        if self.distribution:
            return f"{self.name} ({self.distribution} {self.version or '?'})"
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "provides": list(self.provides),
            "status": self.status,
            "builtin": self.builtin,
            "entry_point": self.value,
            "warning": self.warning,
        }


@dataclass
class PluginRegistry:
    """The classes every loaded plugin registered, and a report of every entry point."""

    connectors: dict[str, type[Connector]] = field(default_factory=dict)
    sinks: dict[str, type[Sink]] = field(default_factory=dict)
    analyzers: dict[str, type[Analyzer]] = field(default_factory=dict)
    buses: dict[str, type[Bus]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: dict[str, PluginInfo] = field(default_factory=dict)
    manager: pluggy.PluginManager | None = field(default=None, repr=False, compare=False)

    def of_kind(self, kind: PluginKind) -> dict[str, type[Any]]:
        """The name -> class table for ``connector``, ``sink``, ``analyzer`` or ``bus``."""
        tables: dict[str, dict[str, type[Any]]] = {
            "connector": self.connectors,
            "sink": self.sinks,
            "analyzer": self.analyzers,
            "bus": self.buses,
        }
        return tables[kind]

    def provider_of(self, kind: PluginKind, name: str) -> PluginInfo | None:
        """The plugin that registered ``kind:name``, if any."""
        tag = f"{kind}:{name}"
        return next((p for p in self.plugins if tag in p.provides), None)

    def why_missing(self, name: str) -> str | None:
        """When a plugin of this name failed to load or is disabled, say so."""
        info = self.failures.get(name)
        if info is not None:
            return f"plugin {info.describe()} failed to load: {info.status}"
        for info in self.plugins:
            if info.name == name and info.status == "disabled":
                return f"plugin {info.describe()} is disabled ({DISABLE_ENV})"
        return None


def strict_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """``AGGCORE_STRICT_PLUGINS`` is set to 1/true/yes/on."""
    env = os.environ if environ is None else environ
    return env.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def disabled_from_env(environ: Mapping[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``AGGCORE_DISABLE_PLUGINS`` (comma separated)."""
    env = os.environ if environ is None else environ
    return {part.strip() for part in env.get(DISABLE_ENV, "").split(",") if part.strip()}


def load_plugins(
    *,
    strict: bool | None = None,
    disabled: Iterable[str] | None = None,
    entry_points: Iterable[EntryPoint] | None = None,
) -> PluginRegistry:
    """Load every ``aggcore`` entry point (or the given ones) into a fresh registry.

    ``strict`` defaults to ``AGGCORE_STRICT_PLUGINS``, ``disabled`` to
    ``AGGCORE_DISABLE_PLUGINS``; ``entry_points`` replaces the installed ones (tests).
    """
    if strict is None:
        strict = strict_from_env()
    blocked = disabled_from_env() if disabled is None else {d.strip() for d in disabled}
    eps = list(installed_entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points)
    # built-ins first, so a duplicate name is blamed on the newcomer; then by name (stable)
    eps.sort(key=lambda ep: (not _is_builtin(ep), ep.name, _dist_name(ep) or ""))

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = PluginRegistry(manager=pm)
    for ep in eps:
        info = PluginInfo(
            name=ep.name,
            distribution=_dist_name(ep),
            version=_dist_version(ep),
            builtin=_is_builtin(ep),
            value=ep.value,
        )
        registry.plugins.append(info)
        if not info.builtin:
            info.warning = api_mismatch(info.distribution)
            if info.warning:
                log.warning("plugin %s: %s", info.describe(), info.warning)
        if ep.name in blocked:
            info.status = "disabled"
            log.debug("plugin %s disabled by %s", info.describe(), DISABLE_ENV)
            continue
        try:
            _load_one(pm, ep, info, registry)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            info.status = _error_text(exc)
            info.provides = []
            registry.failures[info.name] = info
            log.warning("plugin %s failed to load: %s", info.describe(), info.status)
            if strict:
                raise PluginError(
                    f"plugin {info.describe()} failed to load: {info.status}",
                    plugin=info.name,
                    distribution=info.distribution,
                    version=info.version,
                ) from exc
    return registry


def api_mismatch(distribution: str | None) -> str | None:
    """Why ``distribution`` was built for another plugin API, or None when it fits.

    A plugin states the plugin API it was built for by the range of ``aggcore`` it requires
    (``aggcore>=0.1,<0.2``: the plugin API of aggcore 0.1.x). When the installed aggcore is
    outside that range the plugin may still load, but hooks or base classes may differ.
    """
    if not distribution:
        return None
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from . import PLUGIN_API, __version__

    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != "aggcore" or (req.marker is not None and not req.marker.evaluate()):
            continue
        if not req.specifier:
            return f"requires a bare 'aggcore' (no version range): it cannot say which plugin API it was built for (this is {PLUGIN_API})"
        if not req.specifier.contains(__version__, prereleases=True):
            return (
                f"built for aggcore{req.specifier} (another plugin API); installed aggcore {__version__} "
                f"has plugin API {PLUGIN_API}: upgrade the plugin or install a matching aggcore"
            )
    return None


class _Rejected(Exception):
    """A plugin registered something invalid (message is the user-facing reason)."""


def _load_one(pm: pluggy.PluginManager, ep: EntryPoint, info: PluginInfo, registry: PluginRegistry) -> None:
    try:
        obj = ep.load()
    except Exception as exc:
        raise _Rejected(f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        pm.register(obj, name=ep.name)
    except ValueError as exc:  # plugin name or object already registered
        other = pm.get_plugin(ep.name)
        if other is not None and other is not obj:
            raise _Rejected(f"plugin name {ep.name!r} is already taken by another entry point") from exc
        raise _Rejected(f"registration failed: {exc}") from exc
    except pluggy.PluginValidationError as exc:
        raise _Rejected(f"invalid hook implementation: {exc}") from exc
    try:
        _check_hooks(pm, obj)
        found = _collect(pm, obj, info, registry)
    except BaseException:
        pm.unregister(obj, name=ep.name)
        raise
    for kind, name, cls in found:
        registry.of_kind(kind)[name] = cls
        info.provides.append(f"{kind}:{name}")


def _check_hooks(pm: pluggy.PluginManager, obj: object) -> None:
    """Unknown hooks: pluggy's ``check_pending`` plus ``aggcore_*`` functions without ``@hookimpl``."""
    for attr in dir(obj):
        if not (attr.startswith("aggcore_") and callable(getattr(obj, attr, None))):
            continue
        if attr not in _HOOKS:
            close = difflib.get_close_matches(attr, list(_HOOKS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Rejected(f"{attr!r} is not an aggcore hook{hint}; known hooks: {', '.join(_HOOKS)}")
        if pm.parse_hookimpl_opts(obj, attr) is None:
            raise _Rejected(f"{attr!r} is not marked with @hookimpl (from aggcore.hookspecs), so it would never be called")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise _Rejected(f"unknown hook: {exc}") from exc


def _collect(
    pm: pluggy.PluginManager, obj: object, info: PluginInfo, registry: PluginRegistry
) -> list[tuple[PluginKind, str, type[Any]]]:
    """Call this plugin's hook implementations (only its own) and validate what they return."""
    found: list[tuple[PluginKind, str, type[Any]]] = []
    seen: set[tuple[str, str]] = set()
    for hook_name, (kind, base, config_base) in _HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin is not obj:
                continue
            if impl.hookwrapper or impl.wrapper:
                raise _Rejected(f"{hook_name}: hook wrappers are not supported")
            try:
                result = impl.function()
            except Exception as exc:
                raise _Rejected(f"{hook_name}() raised {type(exc).__name__}: {exc}") from exc
            if not isinstance(result, (list, tuple)):
                raise _Rejected(f"{hook_name}() must return a list of classes, got {type(result).__name__}")
            for item in result:
                name = _validate_class(hook_name, kind, base, config_base, item)
                taken = registry.of_kind(kind).get(name)
                if taken is not None or (kind, name) in seen:
                    owner = registry.provider_of(kind, name)
                    by = f" by plugin {owner.describe()}" if owner else ""
                    raise _Rejected(f"{kind} name {name!r} is already taken{by}")
                seen.add((kind, name))
                found.append((kind, name, item))
    return found


def _validate_class(hook_name: str, kind: str, base: type[Any], config_base: type[BaseModel], item: object) -> str:
    if not isinstance(item, type):
        raise _Rejected(f"{hook_name}() returned {item!r}, which is not a class")
    if not issubclass(item, base):
        raise _Rejected(f"{hook_name}() returned {item.__qualname__}, which is not a {base.__name__} subclass")
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise _Rejected(f"{kind} class {item.__qualname__} has no 'name' (a non-empty str class attribute)")
    config = getattr(item, "Config", None)
    if not (isinstance(config, type) and issubclass(config, config_base)):
        raise _Rejected(f"{kind} {name!r}: Config must be a subclass of {config_base.__name__}")
    if config.model_config.get("extra") != "forbid":
        raise _Rejected(f"{kind} {name!r}: Config must reject unknown keys (extra='forbid')")
    return name


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, _Rejected):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _dist_name(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else None


def _dist_version(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    version = getattr(dist, "version", None) if dist is not None else None
    return str(version) if version else None


def _is_builtin(ep: EntryPoint) -> bool:
    name = _dist_name(ep)
    return name is not None and name.lower().replace("_", "-") == CORE_DISTRIBUTION
