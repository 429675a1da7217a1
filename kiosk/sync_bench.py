"""``kiosk bench sync``: a days-offline backlog to a local upstream, and the upstream's ingest rate.

Both sides run as separate processes, as on a real device and server: the upstream is
``kiosk upstream serve`` on loopback, the client is ``kiosk sync --once``, and the client's resident
memory is sampled from /proc while it works.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kiosk

ROOT = Path(kiosk.__file__).resolve().parent.parent
VENUE = "BENCH-VENUE"


def _kiosk(*args: str, **popen: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "kiosk", *args], env=env, cwd=ROOT, **popen)


def start_upstream(db: str) -> tuple[subprocess.Popen, str]:
    proc = _kiosk("upstream", "serve", "--db", db, "--listen", "127.0.0.1:0", stdout=subprocess.PIPE,
                  stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the upstream did not start: {line!r}")
    return proc, line.split()[4]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) once the process is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return int(fields.get("VmRSS", "0 kB").split()[0]), int(fields.get("VmHWM", "0 kB").split()[0])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enrolled_device(work: Path, db: str, url: str, device_id: str) -> Path:
    """A device config (state in ``work/state``) enrolled with the upstream at ``url``; returns its path."""
    from kiosk.core.config import load_config
    from sync.enroll import provision
    from sync.upstream.engines import open_storage

    config_file = work / "kiosk.toml"
    config_file.write_text(f'[device]\nid = "{device_id}"\nstate_dir = "{work / "state"}"\n'
                           '[clock]\nassume_synced = true\n', encoding="utf-8")
    storage = open_storage(db)
    provision(load_config(config_file), url, storage.create_token("enroll", VENUE, ttl_s=600), VENUE)
    storage.close()
    return config_file


def bench_sync(args: argparse.Namespace) -> dict[str, Any]:
    from nacl.public import PrivateKey

    from kiosk.core.config import Config
    from kiosk.core.store import Store
    from sync.backlog import seed_backlog
    from sync.upstream.engines import open_storage

    backlog = int(getattr(args, "backlog", None) or 100_000)
    work = Path(tempfile.mkdtemp(prefix="kiosk-bench-sync-"))
    db = str(work / "upstream.db")
    upstream, url = start_upstream(db)
    result: dict[str, Any] = {"backlog": backlog}
    try:
        config_file = enrolled_device(work, db, url, "bench-device")
        store = Store.open(work / "state")
        started = time.perf_counter()
        seed_backlog(store, backlog, VENUE, "bench-device", bytes(PrivateKey.generate().public_key))
        result["seed_s"] = round(time.perf_counter() - started, 1)
        store.close()
        settings = Config().sync
        result["batch"] = {"max_items": settings.batch_max_items, "max_bytes": settings.batch_max_bytes}

        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        upstream_before = _cpu_s(upstream.pid)
        started = time.perf_counter()
        client = _kiosk("--config", str(config_file), "--log-level", "WARNING", "sync", "--once",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples, peak = [], 0
        while client.poll() is None:
            rss, hwm = _rss_kb(client.pid)
            if rss:
                samples.append(rss)
                peak = max(peak, hwm)
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        out, err = client.communicate()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {"client": round(children.ru_utime + children.ru_stime - children_before.ru_utime
                               - children_before.ru_stime, 1),
               "upstream": round(_cpu_s(upstream.pid) - upstream_before, 1)}
        summary = json.loads(out) if client.returncode == 0 else {"error": err[-500:]}
        storage = open_storage(db)
        stored = storage.stats()
        storage.close()
        result.update({
            "seconds": round(elapsed, 2), "checkins_per_s": round(backlog / elapsed),
            "client": summary, "upstream_stored": stored["total"], "upstream_distinct": stored["distinct"],
            "client_rss_mb": {"max_sampled": round(max(samples) / 1024, 1), "peak_vmhwm": round(peak / 1024, 1),
                              "samples": len(samples)},
            "cpu_s": cpu,  # which side the time went to (each process, user + system)
            "target": {"seconds": 10, "rss_mb": 50},
        })
    finally:
        _stop(upstream)
    result["floor_executemany_s"] = executemany_floor(work / "floor.db", backlog)
    result["ratio_to_floor"] = (round(result["seconds"] / result["floor_executemany_s"], 1)
                                if "seconds" in result and result["floor_executemany_s"] else None)
    result["upstream_ingest"] = {"sqlite": ingest_rate(str(work / "ingest.db"))}
    pg_url = getattr(args, "pg_url", None) or os.environ.get("KIOSK_BENCH_PG_URL")
    result["upstream_ingest"]["postgresql"] = ingest_rate(pg_url) if pg_url else \
        "not measured: no PostgreSQL URL given (--pg-url postgresql://... or $KIOSK_BENCH_PG_URL)"
    return result


def executemany_floor(path: Path, rows: int) -> float:
    """The floor: the same number of rows inserted into the upstream's table by one executemany, in
    one WAL + synchronous=FULL transaction (no network, no signatures, no JSON)."""
    import uuid

    from sync.upstream.storage import CHECKIN_COLUMNS, Storage

    Storage(str(path)).close()  # the upstream's schema
    now = time.time_ns() // 1_000_000
    values = [(str(uuid.uuid4()), VENUE, "bench-device", "entry", now - n, n, "bench", 1, "personal",
               os.urandom(32).hex(), os.urandom(80), "camera", None, now) for n in range(rows)]
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO checkins ({', '.join(CHECKIN_COLUMNS)}) VALUES ({', '.join('?' * len(CHECKIN_COLUMNS))})",
                     values)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return round(elapsed, 3)


def ingest_rate(db: str, batches: int = 60, batch_size: int = 500, threads: int = 2) -> dict[str, Any]:
    """Check-ins per second the upstream stores from pre-signed, pre-compressed batches (2 senders)."""
    import base64
    import uuid

    import requests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync import protocol as p
    from sync.upstream.engines import open_storage

    device_id = "ingest-" + uuid.uuid4().hex[:8]
    upstream, url = start_upstream(db)
    try:
        storage = open_storage(db)
        key = Ed25519PrivateKey.generate()
        storage.enroll(storage.create_token("enroll", VENUE, ttl_s=600), device_id, VENUE, p.public_key_bytes(key), "bench")
        before = storage.stats()["total"]
        storage.close()
        now = time.time_ns() // 1_000_000
        bodies = []
        for b in range(batches):
            items = [{"id": str(uuid.uuid4()), "venue_id": VENUE, "device_id": device_id, "direction": "entry",
                      "utc_ms": now - i * 1000, "monotonic_ns": b * batch_size + i, "boot_id": "bench", "clock_synced": True,
                      "kind": "personal", "visitor_ref": os.urandom(32).hex(),
                      "sealed_subject": base64.b64encode(os.urandom(80)).decode()} for i in range(batch_size)]
            bodies.append(p.gzip_json({"checkins": items}))
        queue = list(bodies)
        lock = threading.Lock()
        failures = []

        def sender() -> None:
            session = requests.Session()
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                headers = p.sign(key, "POST", p.PATH_CHECKINS, device_id, body, time.time_ns() // 1_000_000)
                headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
                reply = session.post(url + p.PATH_CHECKINS, data=body, headers=headers, timeout=60)
                if reply.status_code != 200:
                    failures.append(reply.status_code)

        started = time.perf_counter()
        workers = [threading.Thread(target=sender) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        storage = open_storage(db)
        stored = storage.stats()["total"] - before
        storage.close()
    finally:
        _stop(upstream)
    return {"checkins": batches * batch_size, "stored": stored, "failed_requests": len(failures),
            "batch_size": batch_size, "senders": threads, "seconds": round(elapsed, 2),
            "checkins_per_s": round(stored / elapsed)}
