"""``kiosk bench``: benchmarks that print figures as JSON; targets live in BENCHMARKS.

Nothing here is a pass/fail test: the README quotes these figures with the command and machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path
from typing import Any, Callable

# Only BENCHMARKS is read when `kiosk checkin` or `kiosk run` builds its parser: everything else this
# module needs is imported by the function that needs it.

# target -> "module:function(args) -> dict"; imported only when that benchmark runs.
BENCHMARKS: dict[str, str] = {
    "pipeline": "kiosk.bench:bench_pipeline",
    "sync": "sync.bench:bench_sync",
    "fleet": "sync.fleet_bench:bench_fleet",
    "credentials": "kiosk.credentials.bench:bench_credentials",
    "beacon": "beacon.bench:bench_beacon",
    "screen": "kiosk.screen.bench:bench_screen",
    "scanner": "scanner.bench:bench_scanner",
    "appliance": "kiosk.appliance_bench:bench_appliance",
    "efficiency": "kiosk.efficiency_bench:bench_efficiency",
}


def run_benchmark(target: str, args: argparse.Namespace) -> dict[str, Any]:
    module, func = BENCHMARKS[target].split(":")
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
