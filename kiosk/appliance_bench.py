"""``kiosk bench appliance``: what the appliance's own upkeep costs the scanner and the operator.

* ``kiosk status`` on a state database of N check-ins (monitoring runs it every minute);
* correcting the time of N unsynchronised check-ins at once (a long offline stretch, then NTP);
* one :meth:`ScannerHealth.tick` (the scanner loop pays it every frame).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kiosk.config import Config
from kiosk.store import Store


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
    from kiosk.watchdog import LoopWatch, Notifier

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
        pipeline.close()
    return results
