"""The ``aggcore`` command: ``plugins``, ``validate``, ``run``, ``record``, ``replay``.

Logs and diagnostics go to stderr; stdout carries only a command's result (the plugin
table, the validation summary, or the stdout sink's events under ``run``).

Exit codes: 0 success, 1 runtime or plugin error (strict mode), 2 usage or configuration error,
130 interrupted (``plugins``, ``validate``). ``run`` exits 0 on SIGINT/SIGTERM at any moment,
also during start-up, and when its stdout is closed (``aggcore run ... | head -1``).

Imports are lazy: ``aggcore --version`` and ``--help`` load no plugins and no runtime.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .errors import AggregatorError, ConfigError, PluginError

if TYPE_CHECKING:
    from .plugins import PluginInfo, PluginRegistry

if TYPE_CHECKING:
    from .config import AppConfig

__all__ = ["build_parser", "main"]

log = logging.getLogger("aggcore.cli")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to ``sys.exit``)."""
    # SIGINT and SIGTERM interrupt from the first moment (the runtime replaces both with its own
    # handlers once its event loop runs): an early signal is then a clean exit, not 143
    _received.clear()
    previous = _interrupt_on_signals()
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(unraisable)
    try:
        return _main(argv)
    finally:
        sys.unraisablehook = unraisable
        if argv is None:  # the real process: a late signal must not turn exit 0 into 143
            _ignore_signals()
        else:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    interrupted = EXIT_OK if "run" in words else EXIT_INTERRUPTED  # refined once parsed
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command: Command | None = getattr(args, "func", None)
        if command is None:
            parser.print_help(sys.stderr)
            return EXIT_CONFIG
        interrupted = EXIT_OK if command is cmd_run else EXIT_INTERRUPTED
        return command(args)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    except PluginError as exc:
        cause_type = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        cause = f" ({cause_type})" if cause_type and not cause_type.startswith("_") else ""  # no internal class names
        print(f"aggcore: plugin error{cause}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except AggregatorError as exc:
        print(f"aggcore: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the runtime's own handlers took over
        if interrupted == EXIT_OK:
            print("aggcore: interrupted: stopped", file=sys.stderr)
        return interrupted
    except BrokenPipeError:  # e.g. ``aggcore plugins --json | head``
        _silence_stdout()
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands are ``add_parser`` calls on ``parser.commands``)."""
    # options accepted before or after the sub-command; SUPPRESS keeps a sub-parser from
    # overwriting a value given before it with its default
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--strict-plugins",
        action="store_true",
        default=argparse.SUPPRESS,
        help="fail on the first plugin that does not load (also AGGCORE_STRICT_PLUGINS=1)",
    )
    common.add_argument("--log-level", default=argparse.SUPPRESS, metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")
    common.add_argument("--log-format", choices=["human", "json"], default=argparse.SUPPRESS, help="log lines on stderr")

    parser = argparse.ArgumentParser(
        prog="aggcore",
        description="Consolidated L2 order books across crypto exchanges.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"aggcore {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    parser.set_defaults(commands=commands)

    p = commands.add_parser("plugins", parents=[common], help="list installed plugins and their status")
    p.add_argument("--all", action="store_true", help="include the built-in sinks and analyzers")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plugins)
    sub = p.add_subparsers(dest="plugins_command", metavar="SUBCOMMAND")
    c = sub.add_parser("check", parents=[common], help="run the conformance suite on a connector plugin")
    c.add_argument("name", metavar="NAME", help="the connector's name (entry point), e.g. binance")
    c.add_argument("--check", action="append", metavar="CHECK", help="run only this check (repeatable)")
    c.add_argument("--list", action="store_true", help="list the checks that apply and exit")
    c.set_defaults(func=cmd_plugins_check)

    p = commands.add_parser("validate", parents=[common], help="check a configuration file; exit 2 on errors")
    p.add_argument("file", metavar="FILE", help="YAML or JSON configuration")
    p.set_defaults(func=cmd_validate)

    p = commands.add_parser("run", parents=[common], help="run the aggregator with a configuration file")
    p.add_argument("config", metavar="CONFIG", help="YAML or JSON configuration")
    p.add_argument("--simulate", action="store_true", help="run against each plugin's fake exchange over loopback (offline)")
    p.add_argument("--live", action="store_true", help="show a live console view instead of printing events")
    p.add_argument(
        "--format",
        choices=["human", "json"],
        default=None,
        help="stdout output: one readable line per event (human, the default) or JSON Lines",
    )
    p.add_argument(
        "--role",
        choices=["feed", "consolidate"],
        default=None,
        help="scale out over the configured bus: feed (connectors -> bus) or consolidate (bus -> views, analyzers, sinks)",
    )
    p.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        help="serve the web dashboard on HOST:PORT (127.0.0.1 when HOST is omitted); needs aggcore-plugin-dashboard",
    )
    p.add_argument("--record", metavar="DIR", help="also record every connector's raw traffic into DIR (see 'aggcore record')")
    _rotation_options(p)
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("record", parents=[common], help="record the config's raw exchange traffic into a directory")
    p.add_argument("config", metavar="CONFIG", help="YAML or JSON configuration")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the recording files (created if missing)")
    p.add_argument("--simulate", action="store_true", help="record each plugin's fake exchange over loopback (offline)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until Ctrl-C/SIGTERM)")
    _rotation_options(p)
    p.set_defaults(func=cmd_record)

    p = commands.add_parser("replay", parents=[common], help="replay recorded traffic through the connectors, analyzers and sinks")
    p.add_argument("config", metavar="CONFIG", help="YAML or JSON configuration (its exchanges, analyzers and sinks)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="aggcore recording files or directories, or cryptofeed capture files")
    p.add_argument("--speed", default="max", metavar="N|max", help="1 = recorded pace, N = N times faster, max = as fast as possible (default)")
    p.add_argument("--from", dest="start", metavar="TIME", help="produce output from this time on (ISO 8601, epoch seconds or +SECONDS after the first record)")
    p.add_argument("--to", dest="end", metavar="TIME", help="stop at this time (same forms)")
    p.set_defaults(func=cmd_replay)
    return parser


# -- commands ---------------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    _setup_logging(args, default_level="WARNING")
    registry = _load_plugins(args)
    rows = [p for p in registry.plugins if args.all or not p.builtin]
    if args.json:
        json.dump([p.to_dict() for p in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        print("no external plugins installed (--all includes the built-ins)", file=sys.stderr)
        return EXIT_OK
    _print_table(rows, sys.stdout)
    return EXIT_OK


def cmd_plugins_check(args: argparse.Namespace) -> int:
    """``aggcore plugins check NAME``: the conformance suite against the plugin's own fake server."""
    import anyio

    from .testing.conformance import ConformanceError, checks_for, run_check

    _setup_logging(args, default_level="ERROR")
    registry = _load_plugins(args)
    if args.name not in registry.connectors:
        why = registry.why_missing(args.name)
        installed = ", ".join(sorted(registry.connectors)) or "none"
        print(f"aggcore: no connector plugin {args.name!r}" + (f": {why}" if why else f" (installed: {installed})"), file=sys.stderr)
        return EXIT_CONFIG
    try:
        checks = checks_for(registry, args.name)
    except ConformanceError as exc:
        print(f"aggcore: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.list:
        print("\n".join(checks))
        return EXIT_OK
    from .testing.conformance import CHECKS

    unknown = [c for c in args.check or [] if c not in CHECKS]
    if unknown:
        print(
            f"aggcore: unknown check{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the checks for {args.name}: {', '.join(checks)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    selected = [c for c in CHECKS if c in checks and (not args.check or c in args.check)]
    not_applicable = [c for c in args.check or [] if c not in checks]
    failed = passed = skipped = 0

    async def main() -> None:
        nonlocal failed, passed, skipped
        for check in not_applicable:  # a real check this plugin's fake cannot take part in
            skipped += 1
            print(f"SKIP  {args.name} {check:<24}   0.0s  skipped: the {args.name} fake does not support this fault", flush=True)
        for check in selected:
            t0 = time.monotonic()
            try:
                detail = await run_check(registry, args.name, check)
                status = "SKIP" if detail.startswith("skipped") else "PASS"
            except Exception as exc:  # report and go on with the next check
                detail, status = f"{type(exc).__name__}: {exc}", "FAIL"
            if status == "FAIL":
                failed += 1
            elif status == "SKIP":
                skipped += 1
            else:
                passed += 1
            print(f"{status}  {args.name} {check:<24} {time.monotonic() - t0:5.1f}s  {detail}", flush=True)

    anyio.run(main)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .config import load_config

    _setup_logging(args, default_level="WARNING")
    registry = _load_plugins(args)
    warnings: list[tuple[str, str]] = []
    config = load_config(args.file, registry=registry, warnings=warnings)
    for loc, msg in warnings:  # the same warnings 'run' logs
        print(f"{args.file}: {loc}: warning: {msg}", file=sys.stderr)
    exchanges = ", ".join(
        f"{name} ({len(cfg.trading_pairs)} pair{'s' if len(cfg.trading_pairs) != 1 else ''}"
        f"{'' if cfg.enabled else ', disabled'})"
        for name, cfg in config.exchanges.items()
    )
    sinks = ", ".join(config.sinks) or "none (stdout by default)"
    analyzers = ", ".join(config.analyzers) or "none"
    print(f"{args.file}: OK" + (f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else ""))
    print(f"  exchanges: {exchanges or 'none'}")
    print(f"  sinks:     {sinks}")
    print(f"  analyzers: {analyzers}")
    if config.bus is not None:
        pairs = ", ".join(config.bus.pairs) if config.bus.pairs else "all pairs"
        print(f"  bus:       {config.bus.name} ({pairs}; aggcore run --role feed|consolidate)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    _setup_logging(args, default_level="INFO")
    registry = _load_plugins(args)
    config = load_config(args.config, registry=registry)
    # the file's logging section applies unless the command line said otherwise
    _setup_logging(args, default_level=config.logging.level, default_format=config.logging.format)
    if getattr(args, "dashboard", None):
        config = with_dashboard(config, registry, args.dashboard)
    try:
        from .runtime import run_cli
    except ImportError as exc:
        print(f"aggcore: error: the runtime is not available: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.role is not None and config.bus is None:
        raise ConfigError(
            f"{args.config}: --role {args.role} needs a 'bus' section (e.g. bus: {{nats: {{servers: [nats://127.0.0.1:4222]}}}})",
            errors=[("bus", f"--role {args.role} needs a bus section, e.g. bus: {{nats: {{servers: [nats://127.0.0.1:4222]}}}}")],
            source=str(args.config),
        )
    extra: dict[str, Any] = {"record_options": _rotation(args)} if args.record else {}
    try:
        return run_cli(
            config,
            registry,
            simulate=args.simulate,
            live=args.live,
            role=args.role,
            record=args.record or None,
            stdout_format=args.format,
            interrupted=lambda: bool(_received),
            **extra,
        )
    except ConfigError as exc:  # found while starting (e.g. a pair --simulate cannot serve)
        exc.source = exc.source or str(args.config)
        raise


def cmd_record(args: argparse.Namespace) -> int:
    from .config import load_config
    from .runtime import run_cli

    _setup_logging(args, default_level="INFO")
    registry = _load_plugins(args)
    config = load_config(args.config, registry=registry)
    _setup_logging(args, default_level=config.logging.level, default_format=config.logging.format)
    return run_cli(
        config, registry, simulate=args.simulate, record=args.out, record_options=_rotation(args), record_only=True, duration_s=args.duration
    )


def _rotation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rotate-mb", type=float, default=256.0, metavar="MB", help="start a new recording file after this many MB (default 256)")
    p.add_argument("--rotate-s", type=float, default=3600.0, metavar="SECONDS", help="... or after this long (default 3600)")


def _rotation(args: argparse.Namespace) -> dict[str, float]:
    if not (args.rotate_mb > 0 and args.rotate_s > 0):
        raise ConfigError("--rotate-mb and --rotate-s must be above 0")
    return {"rotate_bytes": args.rotate_mb * 1e6, "rotate_s": args.rotate_s}


def cmd_replay(args: argparse.Namespace) -> int:
    import anyio

    from .config import load_config
    from .replay import load_replay, parse_time, replay
    from .sink import Sink

    _setup_logging(args, default_level="WARNING")
    registry = _load_plugins(args)
    config = load_config(args.config, registry=registry)
    _setup_logging(args, default_level="WARNING", default_format=config.logging.format)
    speed: float | None = None
    if args.speed != "max":
        try:
            speed = float(args.speed)
        except ValueError:
            speed = -1.0
        if not speed > 0:
            raise ConfigError(f"--speed {args.speed!r}: a number above 0, or max")
    data = load_replay(args.paths, registry)
    first, _ = data.span()
    start = parse_time(args.start, first) if args.start else None
    end = parse_time(args.end, first) if args.end else None
    sinks: list[Sink] = []
    if not any(s.enabled for s in config.sinks.values()):
        cls = registry.sinks.get("stdout")
        if cls is None:
            raise PluginError("the built-in 'stdout' sink is not available (disabled or failed to load)", plugin="stdout")
        sinks.append(cls(cls.Config()))
    result = anyio.run(lambda: replay(config, registry, data, speed=speed, start=start, end=end, sinks=sinks))
    for err in result.errors:
        print(f"aggcore replay: error: {err}", file=sys.stderr)
    for name, requests in result.unanswered.items():
        print(f"aggcore replay: {name}: the recording could not answer {len(requests)} request(s): {', '.join(requests[:5])}", file=sys.stderr)
    rate = result.frames / result.wall_s if result.wall_s > 0 else 0.0
    print(
        f"aggcore replay: {result.frames} frames, {result.seconds:.1f} s of recorded time, in {result.wall_s:.2f} s ({rate:,.0f} frames/s)",
        file=sys.stderr,
    )
    return EXIT_ERROR if result.errors else EXIT_OK


# -- helpers ----------------------------------------------------------------------------------------


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM before the runtime's handlers. A subclass: CPython marks a process
    whose code object ended in a plain ``KeyboardInterrupt`` and kills itself with SIGINT at
    exit, even when the interrupt was caught and the exit code is 0."""


#: the signal that interrupted start-up: an interrupt raised from a signal handler can land in
#: code that swallows it (a ``__del__``, a callback), so the runtime also checks this flag
_received: list[int] = []


def _interrupt(signum: int, frame: Any) -> None:
    _received.append(signum)
    raise _Interrupted


def _quiet_interrupts(previous: Callable[[Any], Any]) -> Callable[[Any], None]:
    """An unraisable-exception hook for start-up: an interrupt that a signal raised inside a
    callback or a ``__del__`` (an import lock's weakref callback, say) cannot propagate, and
    Python would print it with a traceback. ``_received`` has it and the runtime stops on it, so
    it is dropped here; any other unraisable exception goes to ``previous``."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, _Interrupted):
            return
        previous(unraisable)

    return hook


def _interrupt_on_signals() -> dict[int, Any]:
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _interrupt)
        except ValueError:  # not the main thread (an embedding application): leave signals alone
            break
    return previous


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:
            pass


def with_dashboard(config: "AppConfig", registry: "PluginRegistry", spec: str) -> "AppConfig":
    """``--dashboard [HOST:]PORT``: the config with ``sinks.dashboard`` enabled on that address
    (other keys of an existing ``sinks.dashboard`` section are kept)."""
    host, sep, port_text = spec.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--dashboard {spec}: expected [HOST:]PORT with a port from 0 to 65535") from None
    cls = registry.sinks.get("dashboard")
    if cls is None:
        why = registry.why_missing("dashboard")
        raise ConfigError(
            "--dashboard needs the dashboard sink plugin: "
            + (why or "install aggcore-plugin-dashboard (pip install aggcore-plugin-dashboard)")
        )
    current = config.sinks.get("dashboard")
    section = dict(current) if current is not None else {}
    section.update(enabled=True, host=host or "127.0.0.1", port=port)
    try:
        validated = cls.Config.model_validate(section)
    except ValueError as exc:
        raise ConfigError(f"--dashboard {spec}: {exc}") from exc
    return config.model_copy(update={"sinks": {**config.sinks, "dashboard": validated}})


def _load_plugins(args: argparse.Namespace) -> "PluginRegistry":
    from .plugins import load_plugins

    strict = True if getattr(args, "strict_plugins", False) else None  # None: AGGCORE_STRICT_PLUGINS decides
    registry = load_plugins(strict=strict)
    return registry


def _setup_logging(args: argparse.Namespace, *, default_level: str, default_format: str = "human") -> None:
    from .log import setup_logging

    level = getattr(args, "log_level", default_level)
    fmt = getattr(args, "log_format", default_format)
    try:
        setup_logging(level, "json" if fmt == "json" else "human")
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print_config_error(exc: ConfigError) -> None:
    if exc.errors:
        source = exc.source or "<config>"
        for loc, msg in exc.errors:
            print(f"{source}: {loc}: {msg}", file=sys.stderr)
        n = len(exc.errors)
        print(f"{source}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
    else:
        print(f"aggcore: configuration error: {exc}", file=sys.stderr)


def _print_table(rows: "list[PluginInfo]", out: TextIO) -> None:
    header = ("NAME", "DISTRIBUTION", "VERSION", "PROVIDES", "STATUS")
    table = [
        (p.name, p.distribution or "-", p.version or "-", ", ".join(p.provides) or "-", p.status)
        for p in rows
    ]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
