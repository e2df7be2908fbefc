"""Chaos soak (issue 16 item 6): is the aggregator's memory flat under every fault, for 30 minutes?

    uv run --all-packages python bench/soak.py                      # 30 minutes, 15 minutes warm-up
    uv run --all-packages python bench/soak.py --duration 120 --warmup 30   # a short proof run

Not run in CI. This process serves every installed exchange plugin's fake exchange (their
default symbols) on loopback and injects a seeded random fault every ``--fault-interval``
seconds: every fault each fake supports, the adversarial ones included (impossible levels, lost
and absurd snapshots, malformed REST bodies, error replies, floods of far-away levels, fuzzed
frames, disconnects, stalls, oversize snapshots, 429/418). A separate process runs the real
aggregator (``python -m aggcore run``, default engine settings, its stdout thrown away) against
those fakes; its resident memory (``VmRSS`` from ``/proc``) is sampled every ``--sample``
seconds and its Prometheus endpoint is scraped for book states, resyncs and invalid messages.

The report (stdout, and ``--out`` as JSON): RSS at the end of the warm-up, at the end, its
maximum after warm-up and the least-squares slope after warm-up (MB per 10 minutes), the faults
injected by kind, and the books LIVE at the end. Memory is flat when the slope after warm-up is
within noise (a few MB per 10 minutes) and the final RSS is not above the post-warm-up maximum.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from aggcore.plugins import load_plugins
from aggcore.testing.server import FakeExchange, Fault

#: fault parameters (the rest are injected with their defaults)
PARAMS: dict[Fault, dict[str, Any]] = {
    Fault.STALL: {"seconds": 3.0},
    Fault.REST_429: {"retry_after": 0.5},
    Fault.REST_418: {"retry_after": 0.5},
    Fault.OVERSIZE_SNAPSHOT: {"levels": 20_000},
    Fault.FAR_LEVELS: {"levels": 15_000},
    Fault.FUZZ: {"count": 20},
}
#: faults aimed at one symbol (those about a snapshot wait for that symbol's next one, which the
#: other faults' resyncs bring); the others (stall, 429/418) hit the whole fake
SYMBOL_FAULTS = {
    Fault.GAP,
    Fault.REORDER,
    Fault.DUPLICATE,
    Fault.BAD_CHECKSUM,
    Fault.MALFORMED,
    Fault.ERROR_REPLY,
    Fault.SNAPSHOT,
    Fault.OVERSIZE_SNAPSHOT,
    Fault.IMPOSSIBLE_LEVEL,
    Fault.LOST_SNAPSHOT,
    Fault.ABSURD_SNAPSHOT,
    Fault.MALFORMED_REST,
    Fault.FAR_LEVELS,
    Fault.FUZZ,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) / 1024 if m else None


def scrape(port: int) -> dict[str, float]:
    """A few totals from the aggregator's /metrics (Prometheus text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    books: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name.startswith("aggcore_book_state"):
            book = re.sub(r',?state="[A-Z]+"', "", labels)
            books.add(book)
            if 'state="LIVE"' in labels:
                out["books_live"] = out.get("books_live", 0) + value
        for key in ("resyncs", "invalid_messages", "reconnects", "frames", "level_updates"):
            if re.match(rf"^aggcore_{key}(_total)?$", name):
                out[key] = out.get(key, 0) + value
    out["books"] = len(books)
    return out


def slope_mb_per_10min(samples: list[tuple[float, float]]) -> float | None:
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if not var:
        return None
    return sum((t - mt) * (r - mr) for t, r in samples) / var * 600


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    registry = load_plugins()
    rng = random.Random(args.seed)
    fakes: dict[str, FakeExchange] = {}
    for name in sorted(registry.connectors):
        cls = registry.connectors[name]
        if not cls.fake_server or (args.exchanges and name not in args.exchanges):
            continue
        fakes[name] = cls.load_fake()(seed=args.seed, rate_hz=args.rate)
    metrics_port = free_port()
    for fake in fakes.values():
        await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="aggcore-soak-"))
    config = {
        # default engine settings, but a FAILED book (OKX's fake answers an error reply with
        # "instrument doesn't exist") is retried after a minute rather than ten
        "exchanges": {
            name: fake.connector_config(trading_pairs=list(fake.books), failed_retry_s=60.0) for name, fake in fakes.items()
        },
        "monitoring": {
            "health_check_interval_ms": 1000,
            "metrics": {"enabled": True, "prometheus": {"enabled": True, "host": "127.0.0.1", "port": metrics_port}},
        },
        "logging": {"level": "ERROR"},
    }
    (tmp / "soak.json").write_text(json.dumps(config))
    child = subprocess.Popen(
        [sys.executable, "-m", "aggcore", "run", str(tmp / "soak.json")],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "stderr.log", "w"),  # noqa: SIM115 - closed with the process
    )
    print(f"soak: aggregator pid {child.pid}, {len(fakes)} fakes, {args.duration:g}s ({args.warmup:g}s warm-up), "
          f"a fault every {args.fault_interval:g}s, logs in {tmp}", flush=True)
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    faults: dict[str, int] = {}
    next_fault = t0 + args.warmup / 4
    next_sample = t0
    try:
        while (now := time.monotonic()) - t0 < args.duration:
            if child.poll() is not None:
                raise SystemExit(f"the aggregator exited with {child.returncode}; see {tmp / 'stderr.log'}")
            if now >= next_sample:
                rss = rss_mb(child.pid)
                if rss is not None:
                    samples.append((now - t0, rss))
                next_sample += args.sample
                if len(samples) % max(1, int(60 / args.sample)) == 1:
                    m = scrape(metrics_port)
                    print(f"  t={now - t0:6.0f}s rss={rss:7.1f} MB live={m.get('books_live', 0):.0f}/{m.get('books', 0):.0f} "
                          f"resyncs={m.get('resyncs', 0):.0f} invalid={m.get('invalid_messages', 0):.0f} "
                          f"faults={sum(faults.values())}", flush=True)
            if now >= next_fault:
                name = rng.choice(sorted(fakes))
                fake = fakes[name]
                fault = rng.choice(sorted(fake.supported_faults, key=lambda f: f.value))
                symbol = rng.choice(sorted(fake.books))
                try:
                    fake.inject(fault, symbol if fault in SYMBOL_FAULTS or fault is Fault.DISCONNECT else None, **PARAMS.get(fault, {}))
                    faults[fault.value] = faults.get(fault.value, 0) + 1
                except Exception as exc:  # a fault a fake cannot express right now
                    faults[f"{fault.value} (not injected: {type(exc).__name__})"] = faults.get(fault.value, 0) + 1
                next_fault = now + args.fault_interval * (0.5 + rng.random())
            await asyncio.sleep(0.05)
        # the last faults heal: give the books their deadlines, then look
        for fake in fakes.values():
            fake.faults.clear()
        await asyncio.sleep(args.settle)
        final = scrape(metrics_port)
        final_rss = rss_mb(child.pid)
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        for fake in fakes.values():
            await fake.stop()
    after = [(t, r) for t, r in samples if t >= args.warmup]
    warm = after[0][1] if after else None
    result = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "seed": args.seed,
        "exchanges": sorted(fakes),
        "rss_mb_at_warmup_end": warm,
        "rss_mb_final": final_rss,
        "rss_mb_max_after_warmup": max((r for _, r in after), default=None),
        "rss_mb_min_after_warmup": min((r for _, r in after), default=None),
        "rss_slope_mb_per_10min_after_warmup": slope_mb_per_10min(after),
        "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "final_metrics": final,
        "samples": [(round(t, 1), round(r, 2)) for t, r in samples],
    }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of chaos (default 1800)")
    # the floods of far levels need about 15 minutes to have reached every full-depth book's cap
    ap.add_argument("--warmup", type=float, default=900.0, help="seconds before RSS counts (default 900)")
    ap.add_argument("--fault-interval", type=float, default=2.0, help="mean seconds between faults (default 2)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds without faults before the final look")
    ap.add_argument("--rate", type=float, default=20.0, help="book steps per second per fake symbol (default 20)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--exchanges", nargs="*", default=None, help="only these plugins (default: every installed one)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = ap.parse_args(argv)
    result = asyncio.run(soak(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
