"""``kiosk bench fleet``: a simulated fleet against a multi-worker upstream on PostgreSQL.

N devices, each with its own Ed25519 key, enroll through ``POST /v1/enroll``, upload a backlog of K
check-ins through the real signed, gzip protocol and send a heartbeat, all from one asyncio client
(httpx) rather than N processes: the server cannot tell the difference, and the machine can hold
thousands of devices. The devices behave as sync/client.py does: a 5xx, 429 or a connection failure
is retried with full-jitter exponential backoff, never sooner than the server's Retry-After.

Figures are counted on the server's side of the wire where it matters: ``delivered``, ``lost`` and
``duplicates`` (rows stored more than once) come from the database, not from the client's belief.
The floor is PostgreSQL's own ``COPY`` of the same rows into a table of the same shape (partitioned,
same primary key), in the same run, so ``ingest_per_s`` reads as a ratio on any machine.

Without ``--storm`` devices come online ``--concurrency`` at a time (a fleet trickling in); with it,
all of them start at the same instant with their backlog (a province after a network outage).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kiosk

ROOT = Path(kiosk.__file__).resolve().parent.parent
STATEMENT_TIMEOUT_S = 5.0  # PgStorage's default: the longest any one database statement may take


@dataclass
class Tally:
    """What the simulated devices saw."""

    stored: int = 0
    duplicate_answers: int = 0
    rejected: int = 0
    errors: int = 0
    shed_503: int = 0
    other_5xx: int = 0
    retries: int = 0
    heartbeats: int = 0
    upload_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)  # every answer, 503s included
    server_ms: list[float] = field(default_factory=list)  # the worker's own time per answer (Server-Timing)
    error_samples: list[str] = field(default_factory=list)


@dataclass
class SimDevice:
    device_id: str
    venue_id: str
    key: Any
    token: str
    items: list[dict[str, Any]]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _make_items(device_id: str, venue_id: str, count: int, now: int) -> list[dict[str, Any]]:
    """A backlog over the last 36 hours (so it crosses day partitions), as the device's rows look."""
    start = now - 36 * 3_600_000
    times = sorted(random.randrange(start, now) for _ in range(count))
    return [{"id": str(uuid.uuid4()), "venue_id": venue_id, "device_id": device_id,
             "direction": "entry" if n % 3 else "exit", "utc_ms": t, "monotonic_ns": 10**9 * (n + 1),
             "boot_id": "b0e5d1a2-0000-4000-8000-000000000001", "clock_synced": True, "kind": "personal",
             "visitor_ref": os.urandom(32).hex(),
             "sealed_subject": base64.b64encode(os.urandom(96)).decode("ascii"), "source": "camera",
             "companion_of": None} for n, t in enumerate(times)]


async def _send(client: Any, url: str, path: str, dev: SimDevice, obj: Any, tally: Tally,
                timeout_s: float) -> Any:
    """One request as the device sends it, retried until it is answered for good; None if refused."""
    from sync import protocol as p

    attempt = 0
    raw = p.gzip_json(obj)  # as the device compresses (level 1), so the server inflates what it would in the field
    while True:
        headers = p.sign(dev.key, "POST", path, dev.device_id, raw, time.time_ns() // 1_000_000)
        headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        started = time.perf_counter()
        retry_after = 0.0
        try:
            answer = await client.post(url + path, content=raw, headers=headers, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - a device treats every transport failure alike: retry later
            if len(tally.error_samples) < 5:
                tally.error_samples.append(f"{path}: {type(exc).__name__} {exc}"[:200])
        else:
            elapsed = (time.perf_counter() - started) * 1000
            tally.answer_ms.append(elapsed)
            timing = answer.headers.get("server-timing", "")
            if timing.startswith("app;dur="):
                tally.server_ms.append(float(timing[8:]))
            if answer.status_code == 200:
                if path == p.PATH_CHECKINS:
                    tally.upload_ms.append(elapsed)
                return answer.json()
            if answer.status_code == 503:
                tally.shed_503 += 1
            elif answer.status_code >= 500 or answer.status_code == 429:
                tally.other_5xx += 1
            else:
                tally.errors += 1
                if len(tally.error_samples) < 5:
                    tally.error_samples.append(f"{path}: {answer.status_code} {answer.text[:160]}")
                return None
            retry_after = float(answer.headers.get("Retry-After", "0") or 0)
        attempt += 1
        tally.retries += 1
        await asyncio.sleep(max(random.uniform(0, min(30.0, 0.5 * 2 ** attempt)), retry_after))


async def _device_life(client: Any, url: str, dev: SimDevice, batch: int, tally: Tally, timeout_s: float) -> None:
    from sync import protocol as p

    for start in range(0, len(dev.items), batch):
        reply = await _send(client, url, p.PATH_CHECKINS, dev, {"checkins": dev.items[start:start + batch]},
                            tally, timeout_s)
        if reply is not None:
            tally.stored += reply["stored"]
            tally.duplicate_answers += reply["duplicates"]
            tally.rejected += reply["rejected"]
    beat = {"software_version": "fleet-bench", "sent_utc_ms": time.time_ns() // 1_000_000, "queue_depth": 0,
            "clock_offset_ms": 0, "clock_synced": True, "components": {}}
    if await _send(client, url, p.PATH_HEARTBEAT, dev, beat, tally, timeout_s) is not None:
        tally.heartbeats += 1


async def _enroll_all(url: str, devices: list[SimDevice], concurrency: int, timeout_s: float) -> Tally:
    import httpx

    from sync import protocol as p

    tally = Tally()
    gate = asyncio.Semaphore(concurrency)
    tls = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def one(dev: SimDevice) -> None:
        body = {"token": dev.token, "device_id": dev.device_id, "venue_id": dev.venue_id,
                "public_key": base64.b64encode(p.public_key_bytes(dev.key)).decode(), "software_version": "fleet-bench"}
        async with gate, httpx.AsyncClient(limits=limits, timeout=timeout_s, verify=tls) as client:
            await _send(client, url, p.PATH_ENROLL, dev, body, tally, timeout_s)

    await asyncio.gather(*(one(d) for d in devices))
    return tally


async def _fleet(url: str, devices: list[SimDevice], batch: int, concurrency: int | None,
                 timeout_s: float) -> Tally:
    """Every device's upload and heartbeat; ``concurrency`` None = all at once (the storm)."""
    import httpx

    tally = Tally()
    gate = asyncio.Semaphore(concurrency or len(devices))
    tls = ssl.create_default_context()  # made once: a context per client would cost more than its requests
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def one(dev: SimDevice) -> None:
        # A client (one keep-alive connection) per device, as each kiosk has: httpcore's pool scans all its
        # connections on every request, so one shared pool of thousands costs more than the server.
        async with gate, httpx.AsyncClient(limits=limits, timeout=timeout_s, verify=tls) as client:
            await _device_life(client, url, dev, batch, tally, timeout_s)

    await asyncio.gather(*(one(d) for d in devices))
    return tally


def _copy_floor(url: str, venue_prefix: str) -> dict[str, Any]:
    """PostgreSQL's own COPY of the same rows into a partitioned table of the same shape, timed; and
    dropping that table's fullest day, timed (retention's cost)."""
    import psycopg

    from sync.upstream import partitions

    with psycopg.connect(url, autocommit=True) as conn:
        buffer = io.BytesIO()
        with conn.cursor().copy("COPY (SELECT * FROM checkins WHERE venue_id LIKE %s) TO STDOUT (FORMAT binary)",
                                [venue_prefix + "%"]) as copy:
            for chunk in copy:
                buffer.write(chunk)
        days = [r[0] for r in conn.execute(
            "SELECT DISTINCT utc_ms / %s FROM checkins WHERE venue_id LIKE %s", [partitions.DAY_MS, venue_prefix + "%"])]
        rows = conn.execute("SELECT count(*) FROM checkins WHERE venue_id LIKE %s", [venue_prefix + "%"]).fetchone()[0]
        data = buffer.getvalue()
        best_s = float("inf")
        for _ in range(3):  # the best of three: the floor is what PostgreSQL can do, not what a busy second allowed
            conn.execute("DROP TABLE IF EXISTS copy_floor")
            conn.execute("CREATE TABLE copy_floor (LIKE checkins INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
                         "PRIMARY KEY (venue_id, utc_ms, id)) PARTITION BY RANGE (utc_ms)")
            for d in days:
                conn.execute(f"CREATE TABLE copy_floor_{d} PARTITION OF copy_floor FOR VALUES FROM "
                             f"({d * partitions.DAY_MS}) TO ({(d + 1) * partitions.DAY_MS})")
            started = time.perf_counter()
            with conn.transaction():
                with conn.cursor().copy("COPY copy_floor FROM STDIN (FORMAT binary)") as copy:
                    for at in range(0, len(data), 1 << 20):
                        copy.write(data[at:at + (1 << 20)])
            best_s = min(best_s, time.perf_counter() - started)
        copy_s = best_s
        fullest = conn.execute("SELECT utc_ms / %s AS d, count(*) FROM copy_floor GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
                               [partitions.DAY_MS]).fetchone()
        started = time.perf_counter()
        conn.execute(f"DROP TABLE copy_floor_{fullest[0]}")
        drop_ms = (time.perf_counter() - started) * 1000
        conn.execute("DROP TABLE copy_floor")
    return {"rows": rows, "copy_s": copy_s, "copy_floor_per_s": round(rows / copy_s) if copy_s else None,
            "day_partition_drop_ms": round(drop_ms, 1), "day_partition_rows": fullest[1]}


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants, the reaped ones included (cutime, cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _start_upstream(url: str, workers: int, pool_size: int, max_inflight: int, log: Any) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--log-level", "WARNING", "upstream", "serve", "--db", url,
                             "--listen", "127.0.0.1:0", "--workers", str(workers), "--pool-size", str(pool_size),
                             "--max-inflight", str(max_inflight), "--enroll-per-minute", "0"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the upstream did not start: {line!r}")
    base = line.split()[4]
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/v1/time", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the upstream did not answer")


def _fresh_database(server_url: str) -> tuple[str, str]:
    """A new database on the given server (never the bench's rows in someone's database); (url, name)."""
    import psycopg

    name = "kiosk_fleet_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}", name


def run_fleet(pg_server_url: str | None, devices: int, per_device: int, workers: int, storm: bool = False,
              batch: int = 100, concurrency: int = 20, pool_size: int = 8, max_inflight: int = 64,
              timeout_s: float = 30.0) -> dict[str, Any]:
    """The whole benchmark; ``pg_server_url`` None = a throwaway PostgreSQL server of its own."""
    import psycopg
    import uvloop  # the server's event loop too: the simulated fleet should not cost more per request than it must
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.upstream.pgtemp import PostgresServer
    from sync.upstream.engines import open_storage

    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the figures
    load_before = os.getloadavg()
    temp = None
    if pg_server_url is None:
        temp = PostgresServer({"max_connections": str(max(100, workers * pool_size + 20))}).start()
        pg_server_url = temp.url
    url, name = _fresh_database(pg_server_url)
    log = tempfile.TemporaryFile("w+")
    proc = None
    try:
        proc, base = _start_upstream(url, workers, pool_size, max_inflight, log)
        storage = open_storage(url, pool_size=2)
        now = time.time_ns() // 1_000_000
        fleet = []
        for n in range(devices):
            device_id, venue_id = f"fleet-{n:06d}", f"FLEET-V{n // 2:05d}"
            fleet.append(SimDevice(device_id, venue_id, Ed25519PrivateKey.generate(),
                                   storage.create_token("enroll", venue_id, ttl_s=3600),
                                   _make_items(device_id, venue_id, per_device, now)))
        storage.close()
        started = time.perf_counter()
        enrolled = uvloop.run(_enroll_all(base, fleet, min(concurrency, 100), timeout_s))
        enroll_s = time.perf_counter() - started
        postmaster = _postmaster_pid(temp.data) if temp else None
        cpu_before = (_tree_cpu_s(proc.pid), _tree_cpu_s(postmaster) if postmaster else 0.0, time.process_time())
        started = time.perf_counter()
        tally = uvloop.run(_fleet(base, fleet, batch, None if storm else concurrency, timeout_s))
        wall_s = time.perf_counter() - started
        cpu = (_tree_cpu_s(proc.pid) - cpu_before[0],
               (_tree_cpu_s(postmaster) - cpu_before[1]) if postmaster else None, time.process_time() - cpu_before[2])
        expected = {i["id"] for d in fleet for i in d.items}
        with psycopg.connect(url) as conn:
            stored_ids = [r[0] for r in conn.execute("SELECT id FROM checkins WHERE venue_id LIKE 'FLEET-%'")]
            beats = conn.execute("SELECT count(*) FROM devices WHERE last_heartbeat_ms IS NOT NULL").fetchone()[0]
            size = conn.execute("SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                                "WHERE inhparent = 'checkins'::regclass").fetchone()[0]
        floor = _copy_floor(url, "FLEET-")
        delivered = len(set(stored_ids) & expected)
        ingest = delivered / wall_s if wall_s else 0.0
        answered = len(tally.answer_ms)
        # What 0.1x COPY would leave for one request on this machine's cores, all three programs together:
        # if PostgreSQL alone spends more per request, no server or client could reach it here.
        target_wall_s = delivered / (0.1 * floor["copy_floor_per_s"]) if floor["copy_floor_per_s"] else None
        return {
            "devices": devices, "workers": workers, "checkins_per_device": per_device, "storm": storm,
            "batch": batch, "concurrency": "all" if storm else concurrency, "pool_size_per_worker": pool_size,
            "max_inflight_per_worker": max_inflight,
            "expected": len(expected), "delivered": delivered, "lost": len(expected) - delivered,
            "duplicates": len(stored_ids) - len(set(stored_ids)),
            "duplicate_answers": tally.duplicate_answers,
            "errors": tally.errors + tally.rejected + enrolled.errors,
            "heartbeats": beats,
            "bytes_per_checkin": round(size / len(stored_ids)) if stored_ids else None,  # table + key + TOAST, as stored
            "ingest_per_s": round(ingest), "copy_floor_per_s": floor["copy_floor_per_s"],
            "ingest_vs_copy": round(ingest / floor["copy_floor_per_s"], 3) if floor["copy_floor_per_s"] else None,
            "p50_ms": _percentile(tally.upload_ms, 0.50), "p99_ms": _percentile(tally.upload_ms, 0.99),
            "slowest_answer_ms": round(max(tally.answer_ms), 1) if tally.answer_ms else None,
            "server_p99_ms": _percentile(tally.server_ms, 0.99),
            "slowest_server_ms": round(max(tally.server_ms), 1) if tally.server_ms else None,
            "server_timeout_s": STATEMENT_TIMEOUT_S, "client_timeout_s": timeout_s,
            "shed_503": tally.shed_503 + enrolled.shed_503, "other_5xx": tally.other_5xx,
            "retries": tally.retries + enrolled.retries,
            "wall_s": round(wall_s, 2), "enroll_s": round(enroll_s, 2),
            "cpu_s": {"upstream_workers": round(cpu[0], 2), "postgres": round(cpu[1], 2) if cpu[1] is not None else None,
                      "fleet_client": round(cpu[2], 2)},
            "requests": answered,
            "cpu_ms_per_request": {name: round(1000 * c / answered, 2) if answered and c is not None else None
                                   for name, c in zip(("upstream_workers", "postgres", "fleet_client"), cpu)},
            "cpu_ms_per_request_at_0_1x_copy": (round(1000 * (os.cpu_count() or 1) * target_wall_s / answered, 2)
                                                if answered and target_wall_s else None),
            "day_partition_drop_ms": floor["day_partition_drop_ms"], "day_partition_rows": floor["day_partition_rows"],
            "error_samples": tally.error_samples + enrolled.error_samples,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "postgres": "temporary server (--pg-temp)" if temp else "given server (--pg-url)",
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if temp is not None:
            temp.stop()
        else:
            with psycopg.connect(pg_server_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench_fleet(args: argparse.Namespace) -> dict[str, Any]:
    """``kiosk bench fleet``: see the module's docstring."""
    if not args.pg_temp and not args.pg_url:
        raise SystemExit("kiosk bench fleet: give --pg-url postgresql://... (a server where a database may be "
                         "created) or --pg-temp")
    return run_fleet(None if args.pg_temp else args.pg_url, args.devices, args.checkins_per_device, args.workers,
                     storm=args.storm, batch=args.batch, concurrency=args.concurrency)
