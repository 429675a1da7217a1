"""``kiosk bench``: benchmarks that print figures as JSON; targets, and each one's options, live in
BENCHMARKS (an option of one target is an error with another).

Nothing here is a pass/fail test: the README quotes these figures with the command and machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

# Only the parser is built when `kiosk bench` starts: everything else this module needs is imported by
# the function that needs it.

Option = tuple[tuple[str, ...], dict[str, Any]]
_SCANS: Option = (("--scans",), {"type": int, "default": 2000, "help": "scans (payloads) to time"})
# target -> ("module:function(args) -> dict", help, its own options); the module is imported only
# when that benchmark runs.
BENCHMARKS: dict[str, tuple[str, str, list[Option]]] = {
    "pipeline": ("kiosk.bench:bench_pipeline", "frame to committed check-in, p50/p99, scans/s, memory", [
        _SCANS,
        (("--soak-seconds",), {"type": float, "default": 0.0, "help": "then this long at --rate scans/s"}),
        (("--rate",), {"type": float, "default": 5.0, "help": "scans/s during the soak"}),
    ]),
    "sync": ("kiosk.sync_bench:bench_sync", "a queued backlog to a local upstream", [
        (("--backlog",), {"type": int, "default": 100_000, "help": "queued check-ins to upload"}),
        (("--pg-url",), {"help": "also measure the upstream's ingest on this PostgreSQL database"}),
    ]),
    "fleet": ("sync.upstream.fleet_bench:bench_fleet",
              "a simulated fleet uploading to a multi-worker upstream on PostgreSQL, beside COPY", [
        (("--pg-url",), {"help": "the PostgreSQL server to use (a fresh database is made there)"}),
        (("--pg-temp",), {"action": "store_true", "help": "start a throwaway PostgreSQL server of its own"}),
        (("--devices",), {"type": int, "default": 200, "help": "simulated devices"}),
        (("--checkins-per-device",), {"type": int, "default": 20, "help": "each device's backlog"}),
        (("--workers",), {"type": int, "default": 2, "help": "upstream worker processes"}),
        (("--storm",), {"action": "store_true", "help": "every device reconnects at the same instant"}),
        (("--concurrency",), {"type": int, "default": 20, "help": "devices online at once (without --storm)"}),
        (("--batch",), {"type": int, "default": 100, "help": "check-ins per upload"}),
    ]),
    "credentials": ("kiosk.credentials.bench:bench_credentials", "classify and verify each payload kind",
                    [_SCANS]),
    "beacon": ("beacon.bench:bench_beacon", "slot IDs and a slot switch on the emulated controller", []),
    "screen": ("kiosk.screen.bench:bench_screen", "frame times of every screen state and size", [
        (("--frames",), {"type": int, "default": 240, "help": "frames timed per state and size"}),
    ]),
    "scanner": ("scanner.bench:bench_scanner", "the decoder on a corpus of rendered codes", [
        (("--seed",), {"type": int, "default": 0, "help": "corpus seed"}),
        (("--save-frames",), {"metavar": "DIR", "help": "also write every corpus frame as a PNG"}),
    ]),
    "appliance": ("kiosk.appliance_bench:bench_appliance", "kiosk status and settings propagation at scale", []),
    "efficiency": ("kiosk.efficiency_bench:bench_efficiency", "CPU and memory against floors measured beside them",
                   []),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks; each prints one JSON object",
                       description="Benchmarks; each prints one JSON object. Without a target: pipeline.")
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    for target, (_, help_text, options) in BENCHMARKS.items():
        t = targets.add_parser(target, help=help_text)
        for flags, kwargs in options:
            t.add_argument(*flags, **kwargs)
        t.set_defaults(func=cmd_bench)

    def pipeline_by_default(args: argparse.Namespace) -> int:
        """`kiosk bench` alone: the pipeline benchmark with its defaults."""
        args.target = "pipeline"
        return cmd_bench(targets.choices["pipeline"].parse_args([], namespace=args))

    p.set_defaults(func=pipeline_by_default)


def cmd_bench(args: argparse.Namespace) -> int:
    print(json.dumps(run_benchmark(args.target, args), indent=2))
    return 0


def run_benchmark(target: str, args: argparse.Namespace) -> dict[str, Any]:
    module, func = BENCHMARKS[target][0].split(":")
    result: Callable[[argparse.Namespace], dict[str, Any]] = getattr(importlib.import_module(module), func)
    return {"benchmark": target, "machine": machine(), **result(args)}


def machine() -> dict[str, Any]:
    import platform

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith(("model name", "Model"))), cpu)
    except OSError:
        pass
    return {"python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count(),
            "system": platform.platform(terse=True), "load_avg_1m": round(os.getloadavg()[0], 2)}


def rss_mb() -> float:
    """Current resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def bench_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """Scan-to-commit: a 640x480 frame handed to the pipeline until its outcome event, synchronous=FULL."""
    import statistics
    import tempfile

    from kiosk.demo import demo_config
    from kiosk.pipeline import Pipeline
    from scanner.camera.synthetic import demo_token
    from scanner.render import render_code, scene

    state = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    config = demo_config(state).replace(scan={"repeat_quiet_s": 0.0})
    emitted: list[float] = []
    pipeline = Pipeline(config, sinks=[lambda outcome: emitted.append(time.perf_counter())])
    latencies, events = [], {}
    busy = 0.0

    def one_scan(n: int) -> None:
        nonlocal busy
        frame = scene(640, 480, render_code(demo_token(n), module_px=6), seed=n % 7)
        start = time.perf_counter()
        outcome = pipeline.handle_frame(frame)
        busy += time.perf_counter() - start
        if outcome:
            latencies.append((emitted[-1] - start) * 1000)
            events[outcome[0].event] = events.get(outcome[0].event, 0) + 1

    rss_start = rss_mb()
    for n in range(args.scans):
        one_scan(n)
    result: dict[str, Any] = {
        "scans": args.scans,
        "outcomes": events,
        "scan_to_commit_ms": {"p50": round(percentile(latencies, 50), 2), "p99": round(percentile(latencies, 99), 2),
                              "max": round(max(latencies), 2), "mean": round(statistics.fmean(latencies), 2)},
        "sustained_scans_per_s": round(len(latencies) / busy, 1),
        "synchronous": pipeline.store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2 and "FULL",
        "rss_mb": {"start": round(rss_start, 1), "after_scans": round(rss_mb(), 1)},
    }
    if args.soak_seconds:
        samples = []
        n, end = args.scans, time.monotonic() + args.soak_seconds
        while time.monotonic() < end:
            tick = time.monotonic()
            one_scan(n)
            n += 1
            if n % int(max(1, args.rate * 30)) == 0:
                samples.append(round(rss_mb(), 1))
            time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - tick)))
        result["soak"] = {"seconds": args.soak_seconds, "rate": args.rate, "scans": n - args.scans,
                          "rss_mb_samples": samples}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    pipeline.close()
    return result
