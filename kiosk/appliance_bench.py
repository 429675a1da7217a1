"""``kiosk bench appliance``: what the appliance's own upkeep costs the scanner and the operator.

* ``kiosk status`` on a state database of N check-ins (monitoring runs it every minute);
* correcting the time of N unsynchronised check-ins at once (a long offline stretch, then NTP);
* one :meth:`ScannerHealth.tick` and one look at the settings file (the scanner loop pays both every frame);
* the CPU of a whole ``kiosk status`` process, next to the floor of ``kiosk --version`` in the same run;
* how long a settings change takes to reach a running ``kiosk run`` (save → first check-in with it).
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kiosk.core.config import Config, SettingsWatch
from kiosk.core.store import Store


def _fill(store: Store, rows: int, boot: str) -> None:
    now = time.time_ns() // 1_000_000
    with store.transaction():
        for i in range(rows):
            cid = str(uuid.uuid4())
            store.conn.execute(
                "INSERT INTO checkins (id, venue_id, device_id, direction, utc_ms, monotonic_ns, boot_id, clock_synced,"
                " kind, visitor_ref) VALUES (?, 'V', 'D', 'entry', ?, ?, ?, 0, 'personal', ?)",
                [cid, now - rows + i, i * 1_000_000, boot, cid])
            store.conn.execute("INSERT INTO outbox (checkin_id, state, updated_ms) VALUES (?, ?, ?)",
                             [cid, "pending" if i % 10 == 0 else "acked", now])


def bench_appliance(args: argparse.Namespace) -> dict[str, Any]:
    from kiosk.health import ScannerHealth
    from kiosk.pipeline import Pipeline
    from kiosk.status import gather
    from kiosk.core.watchdog import LoopWatch, Notifier

    results: dict[str, Any] = {}
    for rows in (10_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp)
            config = Config().replace(device={"venue_id": "V", "state_dir": str(state)})
            store = Store.open(state)
            _fill(store, rows, "bench-boot")
            start = time.perf_counter()
            gather(config, clock_synced=True)
            results[f"status_ms_{rows}_checkins"] = round((time.perf_counter() - start) * 1000, 1)
            start = time.perf_counter()
            fixed = store.correct_unsynced_times("bench-boot", time.time_ns() // 1_000_000, rows * 1_000_000)
            results[f"clock_correction_ms_{rows}_checkins"] = round((time.perf_counter() - start) * 1000, 1)
            assert fixed == rows
            store.close()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(Config().replace(device={"venue_id": "V", "state_dir": tmp}))
        health = ScannerHealth(pipeline, LoopWatch(Notifier(None)))
        health.camera("ok", {"backend": "bench", "fps": 15.0})
        health.tick()  # the first tick checks the clock (a database write); time the steady state
        n = 20_000
        start = time.perf_counter()
        for _ in range(n):
            health.frame()
            health.tick()
        results["tick_us"] = round((time.perf_counter() - start) / n * 1e6, 2)
        watch = SettingsWatch(pipeline.config)
        start = time.perf_counter()
        for _ in range(n):
            watch.poll()
        results["settings_poll_us"] = round((time.perf_counter() - start) / n * 1e6, 2)
        pipeline.close()
    results.update(_status_cpu())
    results.update(_settings_to_effect())
    return results


def _child_cpu_s(*args: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _status_cpu(runs: int = 5) -> dict[str, Any]:
    """`kiosk status` (config, keys, trust list, enrollment, database) against `kiosk --version`."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        Store.open(state).close()
        config = Path(tmp) / "kiosk.toml"
        config.write_text(f'[device]\nvenue_id = "V"\nstate_dir = "{state}"\n[clock]\nassume_synced = true\n')
        status = sorted(_child_cpu_s("--config", str(config), "status") for _ in range(runs))
        floor = sorted(_child_cpu_s("--version") for _ in range(runs))
    return {"status_cpu_s_median": round(status[runs // 2], 3), "version_cpu_s_median": round(floor[runs // 2], 3),
            "status_cpu_ratio_to_version": round(status[runs // 2] / max(floor[runs // 2], 1e-3), 2)}


def _settings_to_effect(changes: int = 5) -> dict[str, Any]:
    """Save a new direction while `kiosk run --headless` checks in a stream of visitors; the delay
    until the first check-in made with it."""
    from kiosk.core.config import save_overrides
    from kiosk.core.privacy import new_sealing_keypair

    delays = []
    with tempfile.TemporaryDirectory() as tmp:
        state, events = Path(tmp) / "state", Path(tmp) / "events.jsonl"
        config = Path(tmp) / "kiosk.toml"
        key = base64.b64encode(new_sealing_keypair()[1]).decode()
        config.write_text(f'[device]\nvenue_id = "V"\nstate_dir = "{state}"\n[clock]\nassume_synced = true\n'
                          f'[camera]\nbackend = "synthetic"\nsynthetic_script = "unique"\nfps = 10\n'
                          f'[privacy]\nauthority_public_key = "{key}"\n'
                          "[[formats.personal]]\nname = \"demo-health-qr\"\npattern = 'DEMO-HQR-[0-9A-F]{12}'\n")
        run = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "run", "--headless",
                                "--events", str(events)], stderr=subprocess.DEVNULL)
        try:
            direction = "entry"
            deadline = time.monotonic() + 120
            while not events.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            for _ in range(changes):
                direction = "exit" if direction == "entry" else "entry"
                saved_ms = time.time_ns() // 1_000_000
                save_overrides(state, {"device": {"direction": direction}})
                while time.monotonic() < deadline:
                    seen = [json.loads(line) for line in events.read_text().splitlines() if line.endswith("}")]
                    first = [e for e in seen if e["at_utc_ms"] >= saved_ms and e["direction"] == direction]
                    if first:
                        delays.append(first[0]["at_utc_ms"] - saved_ms)
                        break
                    time.sleep(0.02)
        finally:
            run.terminate()
            run.wait(30)
    delays.sort()
    return {"settings_to_first_checkin_ms": {"median": delays[len(delays) // 2] if delays else None,
                                             "max": delays[-1] if delays else None, "changes": len(delays)}}
