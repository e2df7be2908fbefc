"""Application configuration: YAML/JSON files, ``${VAR}`` substitution, environment overrides.

:func:`load_config` reads a file (or takes a dict), substitutes environment variables in
string values (``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``; ``$${`` is a literal
``${``), applies overrides ``AGGCORE_<SECTION>__<KEY>[__<SUBKEY>...]=value`` and validates
every section: ``aggregation``, ``monitoring`` and ``logging`` with the models here, each
``exchanges.<name>``, ``sinks.<name>`` and ``analyzers.<name>`` with the pydantic ``Config``
of the class that plugin registered. Every problem is collected and raised as one
:class:`~aggcore.errors.ConfigError` whose ``errors`` are ``(location, message)`` pairs and
whose message reads ``config.yaml: exchanges.binance.trading_pairs[1]: <what was expected>``.
Values are never echoed in errors, so secrets (``SecretStr`` fields) cannot leak there.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from .analyzer import AnalyzerConfig
from .bus import BusSection
from .connector import ConnectorConfig
from .credentials import SecretUrl
from .errors import ConfigError
from .sink import SinkConfig

if TYPE_CHECKING:
    from .plugins import PluginRegistry

__all__ = [
    "DEFAULT_ANALYZERS",
    "AggregationConfig",
    "AppConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MonitoringConfig",
    "PrometheusConfig",
    "SimulationConfig",
    "SecretUrl",
    "apply_env_overrides",
    "config_warnings",
    "load_config",
    "substitute",
]

ENV_PREFIX = "AGGCORE_"
DEFAULT_ANALYZERS = ("summary", "arbitrage")
_FORBID = ConfigDict(extra="forbid")


class AggregationConfig(BaseModel):
    """How books are merged and how often results are produced."""

    model_config = _FORBID

    summary_interval_ms: int | None = Field(
        None, ge=1, description="emit a pair's summary at most this often; every change when unset"
    )
    max_price_levels: int = Field(20, ge=1, description="levels per side in the consolidated view and summaries")
    max_age_ms: float = Field(5000, gt=0, description="a venue whose book is older is left out of the consolidated view")
    quote_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="merge pairs across quotes, e.g. {'USD': ['USD', 'USDT', 'USDC']}"
    )
    analyze_interval_ms: float = Field(10, ge=0, description="analyzers see a changed pair at most this often")
    book_interval_ms: float = Field(
        5, gt=0, description="per-venue book messages (`book` events, the bus) are conflated per book this often"
    )
    book_levels: int = Field(50, ge=1, description="levels per side in a per-venue book message (`book` events, the bus)")


class PrometheusConfig(BaseModel):
    model_config = _FORBID

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9090, ge=0, le=65535)


class MetricsConfig(BaseModel):
    model_config = _FORBID

    enabled: bool = True
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


class MonitoringConfig(BaseModel):
    model_config = _FORBID

    health_check_interval_ms: int = Field(5000, ge=1)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LoggingConfig(BaseModel):
    model_config = _FORBID

    level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)")
    format: Literal["human", "json"] = "human"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in _LEVELS:
            raise ValueError(f"unknown log level: use {', '.join(_LEVELS)}")
        return level


class SimulationConfig(BaseModel):
    """``simulation``: the simulated market of ``aggcore run --simulate`` and
    ``Aggregator(..., simulate=True)`` (ignored otherwise)."""

    model_config = _FORBID

    seed: int = Field(7, description="the same seed gives the same market")
    rate_hz: float = Field(10.0, gt=0, le=1000, description="book changes per second per symbol")
    volatility: float = Field(0.4, ge=0, le=10, description="annualised volatility of every pair's latent price (0.4 = 40 %)")
    dislocation_every_s: float | None = Field(
        30.0, gt=0, description="mean seconds between dislocations (one venue of one pair jumps away); null: never"
    )
    dislocation_bp: float = Field(40.0, ge=0, description="size of a dislocation in basis points (about; either way)")
    dislocation_duration_s: float = Field(2.0, gt=0, description="a dislocation fades to nothing over this long")


class AppConfig(BaseModel):
    """The whole validated configuration.

    ``exchanges``/``sinks``/``analyzers`` hold instances of each plugin's own ``Config``
    subclass (validated by :func:`load_config`). Built directly, they are validated against
    the base config classes only.
    """

    model_config = _FORBID

    exchanges: dict[str, SerializeAsAny[ConnectorConfig]] = Field(default_factory=dict)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    sinks: dict[str, SerializeAsAny[SinkConfig]] = Field(default_factory=dict)
    analyzers: dict[str, SerializeAsAny[AnalyzerConfig]] = Field(
        default_factory=lambda: {name: AnalyzerConfig() for name in DEFAULT_ANALYZERS}
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    bus: BusSection | None = None
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)

    @property
    def enabled_exchanges(self) -> dict[str, ConnectorConfig]:
        return {name: cfg for name, cfg in self.exchanges.items() if cfg.enabled}


_SECTIONS: dict[str, type[BaseModel]] = {
    "aggregation": AggregationConfig,
    "monitoring": MonitoringConfig,
    "logging": LoggingConfig,
    "simulation": SimulationConfig,
}
_PLUGIN_SECTIONS: dict[str, Literal["connector", "sink", "analyzer"]] = {
    "exchanges": "connector",
    "sinks": "sink",
    "analyzers": "analyzer",
}
_KIND_WORD = {"connector": "exchange", "sink": "sink", "analyzer": "analyzer"}


# -- public entry point ---------------------------------------------------------------------------


def load_config(
    source: str | Path | Mapping[str, Any],
    *,
    registry: PluginRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    warnings: list[tuple[str, str]] | None = None,
) -> AppConfig:
    """Read, substitute, override and validate a configuration; raise one :class:`ConfigError`.

    ``source`` is a path to a ``.yaml``/``.yml``/``.json`` file or an already parsed mapping.
    ``registry`` defaults to :func:`aggcore.plugins.load_plugins`; ``environ`` to ``os.environ``.

    Errors: everything the models reject, a key written twice in one mapping (YAML: both
    lines named), a pair listed twice for one exchange. Warnings (a config that loads but will
    not do much): no enabled exchange, an enabled exchange without trading pairs. They are
    appended to ``warnings`` as ``(key path, message)``, or logged when it is ``None``.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    if isinstance(source, Mapping):
        label = "<config>"
        data: Any = _deep_copy(source)
    else:
        label = str(source)
    errors: list[tuple[str, str]] = []  # all collected, reported together
    if not isinstance(source, Mapping):
        data = _read_file(Path(source), label, errors)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _config_error(label, [("<root>", f"expected a mapping of sections, got {_type_word(data)}")])

    data = substitute(data, env, errors)
    origins = apply_env_overrides(data, env, errors)
    if registry is None:
        from .plugins import load_plugins

        registry = load_plugins()
    _check_pairs(data, errors)
    config = _validate(data, registry, errors)
    if errors or config is None:
        errors = [(loc, _with_origin(loc, msg, origins)) for loc, msg in errors]
        raise _config_error(label, errors)
    found = config_warnings(config)
    if warnings is not None:
        warnings.extend(found)
    else:
        for loc, msg in found:
            logging.getLogger("aggcore.config").warning("%s: %s: %s", label, loc, msg)
    return config


def config_warnings(config: AppConfig) -> list[tuple[str, str]]:
    """What loads but will not do much: ``(key path, message)`` pairs."""
    found: list[tuple[str, str]] = []
    if not config.enabled_exchanges and config.bus is None:  # a consolidator reads the bus instead
        found.append(("exchanges", "no enabled exchange: there is nothing to read (add one under exchanges:)"))
    for name, section in config.enabled_exchanges.items():
        if not section.trading_pairs:
            found.append((f"exchanges.{name}.trading_pairs", "no trading pairs: this exchange is not read (list pairs, or set enabled: false)"))
    return found


def _check_pairs(data: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    """A pair listed twice for one exchange (``BTC/USDT`` and ``btc/usdt``) is an error."""
    exchanges = data.get("exchanges")
    if not isinstance(exchanges, dict):
        return
    for name, section in exchanges.items():
        pairs = section.get("trading_pairs") if isinstance(section, dict) else None
        if not isinstance(pairs, list):
            continue
        seen: dict[str, int] = {}
        for i, pair in enumerate(pairs):
            if not isinstance(pair, str):
                continue
            key = pair.strip().upper()
            if key in seen:
                errors.append(
                    (f"exchanges.{name}.trading_pairs[{i}]", f"duplicate pair {pair!r}: already listed at trading_pairs[{seen[key]}]")
                )
            else:
                seen[key] = i


# -- reading ----------------------------------------------------------------------------------------


def _read_file(path: Path, label: str, errors: list[tuple[str, str]]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise _config_error(label, [("<file>", "file not found")]) from exc
    except OSError as exc:
        raise _config_error(label, [("<file>", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise _config_error(label, [("<file>", "not UTF-8 text")]) from exc
    if path.suffix.lower() == ".json":
        duplicates: list[tuple[str, str]] = []
        try:
            data = json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, duplicates))
        except json.JSONDecodeError as exc:
            raise _config_error(label, [(f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")]) from exc
        errors.extend(duplicates)
        return data
    try:
        errors.extend(_yaml_duplicates(yaml.compose(text, Loader=yaml.SafeLoader)))
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else "<file>"
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise _config_error(label, [(where, f"invalid YAML: {problem}")]) from exc


def _json_object(pairs: list[tuple[str, Any]], duplicates: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            duplicates.append((key, "duplicate key in one object: JSON keeps only the last; write it once"))
        out[key] = value
    return out


def _yaml_duplicates(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Keys written twice in one YAML mapping (PyYAML silently keeps the last): each with the
    key path and both lines."""
    found: list[tuple[str, str]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key != "<<" and key in first:
                found.append(
                    (_join(path, key), f"duplicate key: written at line {first[key]} and again at line {line} (write it once)")
                )
            else:
                first.setdefault(key, line)
            found += _yaml_duplicates(value_node, _join(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _yaml_duplicates(item, f"{path}[{i}]")
    return found


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(v) for v in value]
    return value


# -- ${VAR} substitution ------------------------------------------------------------------------------

_VAR = re.compile(r"\$(\$)?\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(value: Any, environ: Mapping[str, str], errors: list[tuple[str, str]], path: str = "") -> Any:
    """Replace ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` in every string value.

    ``${VAR}`` and ``${VAR:?message}`` are errors when VAR is unset (``:?`` also when empty);
    ``${VAR:-default}`` uses the default when VAR is unset or empty. ``$${`` is a literal ``${``.
    Problems are appended to ``errors`` as ``(key path, message)``.
    """
    if isinstance(value, dict):
        return {k: substitute(v, environ, errors, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, environ, errors, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(1):  # $${...} -> literal ${...}
            return match.group(0)[1:]
        body = match.group(2)
        name, op, arg = _split_expr(body)
        if not _NAME.fullmatch(name) or op not in ("", ":-", ":?"):
            errors.append((path or "<root>", f"invalid substitution '${{{body}}}': use ${{VAR}}, ${{VAR:-default}} or ${{VAR:?message}}"))
            return ""
        current = environ.get(name)
        if op == ":-":
            return current if current else arg
        if op == ":?":
            if not current:
                errors.append((path or "<root>", f"environment variable {name} is not set: {arg or 'required'}"))
                return ""
            return current
        if current is None:
            errors.append((path or "<root>", f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"))
            return ""
        return current

    return _VAR.sub(replace, value)


def _split_expr(body: str) -> tuple[str, str, str]:
    for op in (":-", ":?"):
        name, sep, arg = body.partition(op)
        if sep and _NAME.fullmatch(name):
            return name, op, arg
    match = _NAME.match(body)
    if match and match.end() < len(body):
        return body[: match.end()], body[match.end() :], ""
    return body, "", ""


# -- AGGCORE_SECTION__KEY overrides -----------------------------------------------------------------


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str], errors: list[tuple[str, str]]) -> dict[str, str]:
    """Apply ``AGGCORE_<SECTION>__<KEY>[__<SUBKEY>...]`` variables to ``data`` in place.

    Names are lower-cased into a key path (``AGGCORE_AGGREGATION__MAX_PRICE_LEVELS`` ->
    ``aggregation.max_price_levels``). Values that look like JSON arrays or objects are parsed
    as JSON; anything else stays a string and is converted by the section's model
    (``"false"`` -> ``False``, ``"10"`` -> ``10``). Returns key path -> variable name.
    """
    origins: dict[str, str] = {}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            errors.append((f"${var}", "empty key in environment override (use AGGCORE_<SECTION>__<KEY>)"))
            continue
        raw = environ[var]
        value: Any = raw
        if raw.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                errors.append((".".join(parts), f"{var}: value looks like JSON but does not parse"))
                continue
        node: Any = data
        for depth, key in enumerate(parts[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                errors.append((".".join(parts[: depth + 1]), f"{var}: cannot set a key inside a {_type_word(child)}"))
                break
            node = child
        else:
            node[parts[-1]] = value
            origins[".".join(parts)] = var
    return origins


def _with_origin(loc: str, msg: str, origins: Mapping[str, str]) -> str:
    """Name the environment variable behind an error: one that set this key or a key inside it,
    or one that created this (misspelled) section or key on its way down."""
    for path, var in origins.items():
        if loc == path or loc.startswith(path + ".") or loc.startswith(path + "["):
            return f"{msg} (set by {var})"
    created = [var for path, var in origins.items() if path.startswith(loc + ".")]
    if created:
        return f"{msg} (set by {', '.join(created)})"
    return msg


# -- validation -------------------------------------------------------------------------------------


def _validate(data: dict[str, Any], registry: PluginRegistry, errors: list[tuple[str, str]]) -> AppConfig | None:
    """Validate section by section, in the file's order, collecting every error."""
    values: dict[str, Any] = {}
    known = list(_PLUGIN_SECTIONS) + list(_SECTIONS)
    for key, section in data.items():
        if key in _SECTIONS:
            validated = _validate_model(_SECTIONS[key], section if section is not None else {}, key, errors)
            if validated is not None:
                values[key] = validated
        elif key in _PLUGIN_SECTIONS:
            values[key] = _validate_plugin_sections(key, _PLUGIN_SECTIONS[key], section, registry, errors)
        elif key == "bus":
            if section is not None:
                values[key] = _validate_bus(section, registry, errors)
        else:
            errors.append((str(key), f"unknown section{_did_you_mean(str(key), known + ['bus'])}; expected one of: {', '.join(known + ['bus'])}"))
    if "analyzers" not in data:
        values["analyzers"] = {
            name: registry.analyzers[name].Config() for name in DEFAULT_ANALYZERS if name in registry.analyzers
        }
    if errors:
        return None
    return AppConfig.model_validate(values)


def _validate_plugin_sections(
    key: str,
    kind: Literal["connector", "sink", "analyzer"],
    sections: Any,
    registry: PluginRegistry,
    errors: list[tuple[str, str]],
) -> dict[str, BaseModel]:
    """``exchanges``/``sinks``/``analyzers``: each entry by the ``Config`` of the class registered under its name."""
    out: dict[str, BaseModel] = {}
    if sections is None:
        return out
    if not isinstance(sections, dict):
        errors.append((key, f"expected a mapping of {_KIND_WORD[kind]} name to settings, got {_type_word(sections)}"))
        return out
    table = registry.of_kind(kind)
    for name, section in sections.items():
        loc = _join(key, name)
        cls = table.get(str(name))
        if cls is None:
            if kind == "connector" and _disabled(section):
                continue  # switched off and not installed: nothing to run, nothing to check
            errors.append((loc, _unknown_plugin(kind, str(name), registry)))
            continue
        validated = _validate_model(cls.Config, section if section is not None else {}, loc, errors)
        if validated is not None:
            out[str(name)] = validated
    return out


_BUS_KEYS = [k for k in BusSection.model_fields if k not in ("name", "settings")]


def _validate_bus(section: Any, registry: PluginRegistry, errors: list[tuple[str, str]]) -> BusSection | None:
    """``bus``: the shared keys (``pairs``, ``heartbeat_ms``, ...) and exactly one bus plugin's
    section (``nats: {...}``), validated by that plugin's ``Config``."""
    if not isinstance(section, dict):
        errors.append(("bus", f"expected a mapping of settings, got {_type_word(section)}"))
        return None
    shared = {k: v for k, v in section.items() if k in _BUS_KEYS}
    chosen = [str(k) for k in section if k not in _BUS_KEYS]
    installed = sorted(registry.buses)
    listing = ", ".join(installed) if installed else "none"
    n_errors = len(errors)
    plugin_settings = None
    named = []
    for name in chosen:
        cls = registry.buses.get(name)
        if cls is None:
            why = registry.why_missing(name)
            errors.append(
                (
                    _join("bus", name),
                    f"unknown key{_did_you_mean(name, _BUS_KEYS + installed)}: neither a bus setting "
                    f"({', '.join(_BUS_KEYS)}) nor an installed bus plugin (installed buses: {listing})"
                    + (f"; {why}" if why else ""),
                )
            )
            continue
        named.append(name)
        plugin_settings = _validate_model(cls.Config, section[name] if section[name] is not None else {}, _join("bus", name), errors)
    if not chosen:
        errors.append(("bus", f"name the bus plugin and its settings, e.g. nats: {{servers: [...]}} (installed buses: {listing})"))
    elif len(named) > 1:
        errors.append(("bus", f"more than one bus plugin: {', '.join(named)}; choose one"))
    shared_model = _validate_model(BusSection, {"name": named[0] if named else "", **shared}, "bus", errors)
    if len(errors) > n_errors or shared_model is None or plugin_settings is None:
        return None
    assert isinstance(shared_model, BusSection)
    return shared_model.model_copy(update={"settings": plugin_settings})


def _disabled(section: Any) -> bool:
    if not isinstance(section, dict):
        return False
    flag = section.get("enabled", True)
    return flag is False or (isinstance(flag, str) and flag.strip().lower() in ("false", "0", "no", "off"))


def _validate_model(model: type[BaseModel], section: Any, loc: str, errors: list[tuple[str, str]]) -> BaseModel | None:
    if not isinstance(section, dict):
        errors.append((loc, f"expected a mapping of settings, got {_type_word(section)}"))
        return None
    try:
        return model.model_validate(section)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False, include_context=True):
            path = _loc_path(loc, err["loc"])
            errors.append((path, _message(model, err)))
        return None


def _message(model: type[BaseModel], err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, err["loc"][:-1])
        if owner is not None:
            fields = list(owner.model_fields)
            key = str(err["loc"][-1])
            return f"unknown key{_did_you_mean(key, fields)}; expected one of: {', '.join(fields)}"
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ") if kind == "value_error" else msg


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model class at ``loc`` (for listing the keys it accepts)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = _model_in(info.annotation)
        elif isinstance(part, (int, str)):
            continue  # a list index or dict key: stay on the element model
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _unknown_plugin(kind: Literal["connector", "sink", "analyzer"], name: str, registry: PluginRegistry) -> str:
    word = _KIND_WORD[kind]
    installed = sorted(registry.of_kind(kind))
    listing = ", ".join(installed) if installed else "none"
    msg = f"unknown {word} {name!r}: no installed plugin provides it (installed {word}s: {listing})"
    why = registry.why_missing(name)
    if why:
        msg += f"; {why}"
    elif kind == "connector":
        msg += f"; install the plugin (aggcore-plugin-{name}) or check the spelling{_did_you_mean(name, installed)}"
    return msg


# -- formatting -------------------------------------------------------------------------------------


def _config_error(label: str, errors: list[tuple[str, str]]) -> ConfigError:
    lines = [f"{label}: {loc}: {msg}" for loc, msg in errors]
    n = len(errors)
    head = f"{label}: {n} configuration error{'s' if n != 1 else ''}"
    return ConfigError(head + "\n" + "\n".join(lines), errors=errors, source=label)


def _join(path: str, key: object) -> str:
    key = str(key)
    return f"{path}.{key}" if path else key


def _loc_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_word(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
