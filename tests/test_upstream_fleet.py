"""The national upstream on a real PostgreSQL server: stateless workers sharing replay protection,
check-ins partitioned by day with retention by whole partitions, migrations from every earlier
version, load shedding, hostile batches, and the fleet benchmark printing its figures."""

import datetime as dt
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from conftest import run_kiosk, wait_until
from sync.upstream import partitions
from sync import protocol as p
from sync.upstream.pg_migrations import LATEST, MIGRATIONS, _v1_reference_schema, migrate
from sync.upstream.pg_storage import PgStorage
from sync.upstream.engines import open_storage
from upstream_helpers import RawDevice, start_upstream, upstream_ids

DAY = partitions.DAY_MS


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _noon(day: dt.date) -> int:
    return partitions.day_ms(day) + DAY // 2


def _item(device_id, venue="VENUE-1", **over):
    item = {"id": str(uuid.uuid4()), "venue_id": venue, "device_id": device_id, "direction": "entry",
            "utc_ms": time.time_ns() // 1_000_000, "monotonic_ns": time.monotonic_ns(), "boot_id": "boot",
            "clock_synced": 1, "kind": "personal", "visitor_ref": uuid.uuid4().hex * 2, "sealed_subject": None}
    item.update(over)
    return item


def _enrolled(storage, device_id="pg-device", venue="VENUE-1"):
    storage.enroll(storage.create_token("enroll", venue, ttl_s=60), device_id, venue, b"k" * 32, "test")
    return storage.device(device_id)


def _worker_pids(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]


# ---- migrations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [0, *[v for v, _, _ in MIGRATIONS if v < LATEST]])
def test_a_database_of_every_earlier_version_upgrades_with_its_rows(pg_url, start):
    """0 is a database made by a release before versioned migrations (no schema_migrations table)."""
    day = _today() - dt.timedelta(days=3)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if start == 0:
            _v1_reference_schema(conn)
        else:
            assert migrate(conn, target=start) == list(range(1, start + 1))
            if start >= 2:
                partitions.create_partitions(conn, [day])
        conn.execute("INSERT INTO devices (device_id, venue_id, public_key, software_version, enrolled_ms) "
                     "VALUES ('old-device', 'VENUE-OLD', %s, 'v0', 1)", [b"k" * 32])
        conn.execute("INSERT INTO device_venues (device_id, venue_id) VALUES ('old-device', 'VENUE-OLD')")
        conn.execute("INSERT INTO beacon_keys (device_id, venue_id, base_key, key_day, registered_ms) "
                     "VALUES ('old-device', 'VENUE-OLD', %s, '2026-01-01', 1)", ["ab" * 32])
        for n, at in enumerate((_noon(day), _noon(day) + 1, _noon(dt.date(1999, 5, 1)))):
            conn.execute("INSERT INTO checkins (id, venue_id, device_id, direction, utc_ms, monotonic_ns, boot_id, "
                         "clock_synced, kind, visitor_ref, sealed_subject, received_ms) VALUES "
                         "(%s, 'VENUE-OLD', 'old-device', 'entry', %s, %s, 'b', 1, 'personal', 'ab12ab12ab12ab12', "
                         "%s, 1)", [f"00000000-0000-4000-8000-00000000000{n}", at, n, b"sealed"])
    storage = open_storage(pg_url)
    try:
        assert isinstance(storage, PgStorage)
        versions = [r["version"] for r in storage._query("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, LATEST + 1))
        assert storage._query("SELECT count(*) AS n FROM pg_partitioned_table "
                              "WHERE partrelid = 'checkins'::regclass")[0]["n"] == 1
        assert partitions.partition_name(day) in storage.partition_names()
        trace = storage.trace("VENUE-OLD", _noon(day), _noon(day) + 1)
        assert [r["id"][-1] for r in trace] == ["0", "1"] and trace[0]["sealed_subject"] == b"sealed"
        assert storage.stats()["total"] == 3
        assert [k["base_key"] for k in storage.beacon_keys("VENUE-OLD")] == ["ab" * 32]
        # The trace query's index is the primary key; no other index is kept on check-ins.
        indexes = storage._query("SELECT indexdef FROM pg_indexes WHERE tablename = 'checkins'")
        assert [i["indexdef"].split(" USING ")[1] for i in indexes] == ["btree (venue_id, utc_ms, id)"]
        # Venue id in every unique key of the tables that grow with visits (Citus: distribute by venue_id).
        for table in ("checkins", "beacon_keys"):
            keys = storage._query("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint "
                                  "WHERE conrelid = ?::regclass AND contype IN ('p', 'u', 'f')", [table])
            assert keys and all("venue_id" in k["d"] for k in keys), keys
        # And the old device still uploads into the new table; the old rows count as its duplicates.
        device = storage.device("old-device")
        again = _item("old-device", "VENUE-OLD", id="00000000-0000-4000-8000-000000000000", utc_ms=_noon(day))
        assert [r["status"] for r in storage.store_checkins(device, [again, _item("old-device", "VENUE-OLD")])] \
            == ["duplicate", "stored"]
    finally:
        storage.close()
    second = open_storage(pg_url)  # migrating an up-to-date database is a no-op
    second.close()


# ---- partitions ---------------------------------------------------------------------------------
def test_partitions_roll_over_and_retention_drops_whole_days(pg_url):
    today = _today()
    storage = open_storage(pg_url, pool_size=2)
    other_worker = open_storage(pg_url, pool_size=2)
    try:
        ahead = {partitions.partition_name(today + dt.timedelta(days=n)) for n in range(0, 8)}
        assert ahead <= set(storage.partition_names())  # made ahead at start-up
        device = _enrolled(storage)
        days = {n: today + dt.timedelta(days=n) for n in (-30, -25, -22, -2, 0, 12)}
        items = [_item("pg-device", utc_ms=_noon(d) + k) for d in days.values() for k in range(3)]
        edge = [_item("pg-device", utc_ms=_noon(dt.date(1990, 1, 1))), _item("pg-device", utc_ms=2**53)]
        assert {r["status"] for r in storage.store_checkins(device, items + edge)} == {"stored"}
        names = set(storage.partition_names())
        assert {partitions.partition_name(d) for d in days.values()} <= names  # made on demand: 12 days ahead, 30 back
        made_days = [partitions.partition_day(n) for n in names if partitions.partition_day(n)]
        assert all(abs((d - today).days) <= 31 for d in made_days)  # none for 1990 or 2^53: the default has them
        # The other worker learns of the days it will write to (and so caches them as existing).
        other_worker.store_checkins(device, [_item("pg-device", utc_ms=_noon(days[-25]) + 99)])

        result = run_kiosk("upstream", "retention", "--db", pg_url, "--keep-days", "21", "--ahead-days", "3")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert sorted(report["dropped"]) == sorted(partitions.partition_name(days[n]) for n in (-30, -25, -22))
        assert not set(report["dropped"]) & set(report["partitions"])
        with psycopg.connect(pg_url) as conn:  # dropped whole: the tables are gone, not emptied
            gone = conn.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", [report["dropped"]]).fetchone()
            assert gone[0] == 0
        kept = storage.trace("VENUE-1", partitions.day_ms(days[-2]), partitions.day_ms(days[12]) + DAY)
        assert len(kept) == 9
        assert storage.trace("VENUE-1", partitions.day_ms(days[-30]), partitions.day_ms(days[-22]) + DAY) == []
        assert storage.stats()["total"] == 9 + 1  # the year-2^53 row stays in the default partition; 1990's went

        # A late row for a day retention dropped, from a worker that still believes the day has its
        # partition: stored, in the default partition, and gone at the next retention.
        late = _item("pg-device", utc_ms=_noon(days[-25]) + 5)
        assert [r["status"] for r in other_worker.store_checkins(device, [late])] == ["stored"]
        assert partitions.partition_name(days[-25]) not in storage.partition_names()
        assert storage._query(f"SELECT id FROM {partitions.DEFAULT} WHERE id = ?", [late["id"]])
        assert run_kiosk("upstream", "retention", "--db", pg_url).returncode == 0
        assert not storage._query("SELECT id FROM checkins WHERE id = ?", [late["id"]])

        # A day too far ahead for a partition on demand waits in the default partition, and moves into
        # its own when retention's look-ahead reaches it.
        far_day = today + dt.timedelta(days=20)
        far = _item("pg-device", utc_ms=_noon(far_day))
        assert [r["status"] for r in storage.store_checkins(device, [far])] == ["stored"]
        assert partitions.partition_name(far_day) not in storage.partition_names()
        assert partitions.partition_name(far_day) in storage.retain(21, 21, today)["created"]
        assert storage._query(f"SELECT id FROM {partitions.partition_name(far_day)}") == [{"id": far["id"]}]
        assert storage._query(f"SELECT count(*) AS n FROM {partitions.DEFAULT} WHERE utc_ms >= ?",
                              [partitions.day_ms(today)])[0]["n"] == 1  # only the year-2^53 row
        assert [r["status"] for r in other_worker.store_checkins(device, [far])] == ["duplicate"]
    finally:
        storage.close()
        other_worker.close()


# ---- many workers -------------------------------------------------------------------------------
def test_replay_is_refused_whichever_worker_answers(pg_url):
    upstream = start_upstream(pg_url, "127.0.0.1:0", "--workers", "2")
    try:
        assert len(_worker_pids(upstream.process.pid)) == 2
        dev = RawDevice(upstream.url, "multi-worker")
        assert dev.enroll(pg_url).status_code == 200
        item = dev.item()
        at, nonce = time.time_ns() // 1_000_000, "c0ffee" * 4
        first = dev.send(p.PATH_CHECKINS, {"checkins": [item]}, timestamp_ms=at, nonce=nonce)
        assert first.status_code == 200 and first.json()["stored"] == 1
        # The same signed request again, each on a new connection (either worker may take it).
        for _ in range(12):
            again = dev.send(p.PATH_CHECKINS, {"checkins": [item]}, timestamp_ms=at, nonce=nonce)
            assert again.status_code == 401 and again.json()["reason"] == "replay"
        # Ten copies of one fresh request at the same instant: exactly one gets through.
        fresh = dev.item()
        at, nonce = time.time_ns() // 1_000_000, "beef" * 6
        barrier = threading.Barrier(10)

        def race(_):
            barrier.wait()
            return dev.send(p.PATH_CHECKINS, {"checkins": [fresh]}, timestamp_ms=at, nonce=nonce)

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(race, range(10)))
        assert sorted(a.status_code for a in answers) == [200] + [401] * 9
        assert {a.json()["reason"] for a in answers if a.status_code == 401} == {"replay"}
        assert sorted(upstream_ids(pg_url)) == sorted([item["id"], fresh["id"]])
    finally:
        upstream.stop()
    assert not upstream.alive()


def test_workers_need_postgresql(tmp_path):
    result = run_kiosk("upstream", "serve", "--db", str(tmp_path / "up.db"), "--listen", "127.0.0.1:0",
                       "--workers", "2")
    assert result.returncode == 2 and "SQLite storage serves one worker" in result.stderr


# ---- load shedding ------------------------------------------------------------------------------
def _locked_devices(pg_url):
    """Hold an exclusive lock on the devices table, as a saturated or stuck database would."""
    conn = psycopg.connect(pg_url)
    conn.execute("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
    return conn


def _waiting_on_a_lock(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0]


def test_a_saturated_pool_answers_503_with_retry_after_quickly(pg_url):
    upstream = start_upstream(pg_url, "127.0.0.1:0", "--pool-size", "1", "--pool-timeout-s", "0.3")
    try:
        dev = RawDevice(upstream.url, "shed-device")
        assert dev.enroll(pg_url).status_code == 200
        lock = _locked_devices(pg_url)
        try:
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]}), range(4)))
        finally:  # every answer came while the table was still locked: none waited for the lock to go
            lock.rollback()
            lock.close()
        shed = [a for a in answers if a.json().get("reason") == "overloaded"]
        assert shed, [a.text for a in answers]
        for answer in shed:  # refused at the pool's wait ("overloaded"), not at the statement's timeout
            assert answer.status_code == 503 and 1 <= int(answer.headers["Retry-After"]) <= 3
        for answer in answers:  # the one holding the connection: its statement's lock timeout, then 503
            assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
            assert answer.json()["reason"] in ("overloaded", "storage-unavailable"), answer.text
        after = dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]})
        assert after.status_code == 200 and after.json()["stored"] == 1
    finally:
        upstream.stop()


def test_too_many_requests_in_progress_are_shed_before_the_body_is_read(pg_url):
    upstream = start_upstream(pg_url, "127.0.0.1:0", "--max-inflight", "1")
    try:
        dev = RawDevice(upstream.url, "inflight-device")
        assert dev.enroll(pg_url).status_code == 200
        lock = _locked_devices(pg_url)
        try:
            with ThreadPoolExecutor(1) as pool:
                stuck = pool.submit(dev.send, p.PATH_CHECKINS, {"checkins": [dev.item()]})
                wait_until(lambda: _waiting_on_a_lock(pg_url), 10, "the first upload to wait on the locked table")
                shed = dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]})
                assert shed.status_code == 503 and shed.json()["reason"] == "overloaded", shed.text
                assert "in progress" in shed.json()["message"] and int(shed.headers["Retry-After"]) >= 1
                assert not stuck.done()  # answered while the first still waited: shed, not queued behind it
                lock.rollback()
                assert stuck.result().status_code == 200
        finally:
            lock.close()
    finally:
        upstream.stop()


# ---- hostile input with several workers ---------------------------------------------------------
def test_hostile_batches_are_refused_clearly_and_leave_no_tables(pg_url):
    upstream = start_upstream(pg_url, "127.0.0.1:0", "--workers", "2")
    try:
        dev = RawDevice(upstream.url, "hostile")
        assert dev.enroll(pg_url).status_code == 200
        before = open_storage(pg_url, pool_size=1)
        tables = set(before.partition_names())
        cases = [
            (dev.send(p.PATH_CHECKINS, raw=b"\x00" * (p.MAX_BODY_BYTES + 1), compress=False), 413, "body-too-large"),
            (dev.send(p.PATH_CHECKINS, raw=b"\x1f\x8b broken", compress=False,
                      headers={"Content-Encoding": "gzip"}), 400, "malformed-gzip"),
            (dev.send(p.PATH_CHECKINS, raw=b'{"checkins": [{"id": '), 400, "malformed-json"),
            (dev.send(p.PATH_CHECKINS, {"checkins": [dev.item() for _ in range(1001)]}), 422, "invalid-field"),
            (dev.send(p.PATH_CHECKINS, {"checkins": [dev.item(utc_ms=-1)]}), 422, "invalid-field"),
            (dev.send(p.PATH_CHECKINS, {"checkins": [dev.item(utc_ms=2**53 + 1)]}), 422, "invalid-field"),
        ]
        for answer, status, reason in cases:
            assert (answer.status_code, answer.json()["reason"]) == (status, reason), answer.text
        assert upstream_ids(pg_url) == []
        # Scan times from every century, and a thousand rows each on its own day: all stored, in the
        # default partition, and not one table made for them.
        odd = [dev.item(utc_ms=0), dev.item(utc_ms=2**53), dev.item(utc_ms=_noon(dt.date(2099, 12, 31)))]
        odd += [dev.item(utc_ms=_noon(dt.date(2030, 1, 1)) + n * DAY) for n in range(996)]
        repeat = dict(odd[0])
        answer = dev.send(p.PATH_CHECKINS, {"checkins": odd + [repeat]})
        assert answer.status_code == 200 and answer.json()["stored"] == 999, answer.text[:300]
        assert set(before.partition_names()) == tables
        assert sorted(upstream_ids(pg_url)) == sorted(i["id"] for i in odd)
        before.close()
    finally:
        upstream.stop()


# ---- the fleet benchmark ------------------------------------------------------------------------
@pytest.mark.parametrize("storm", [False, True])
def test_fleet_bench_prints_its_figures(postgres, storm):
    result = run_kiosk("bench", "fleet", "--pg-url", postgres.url, "--devices", "24", "--checkins-per-device", "5",
                       "--workers", "2", "--batch", "3", *(["--storm"] if storm else []), timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("devices", "workers", "delivered", "duplicates", "errors", "ingest_per_s", "copy_floor_per_s",
                "p50_ms", "p99_ms", "shed_503"):
        assert key in figures, key
    assert (figures["devices"], figures["workers"], figures["storm"]) == (24, 2, storm)
    assert (figures["delivered"], figures["lost"], figures["duplicates"], figures["errors"]) == (120, 0, 0, 0)
    assert figures["heartbeats"] == 24 and figures["slowest_server_ms"] is not None
    assert figures["ingest_per_s"] > 0 and figures["copy_floor_per_s"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
    assert figures["requests"] >= 24 * 3  # two uploads of 3 and a heartbeat each, and any retries
    per_request = figures["cpu_ms_per_request"]  # PostgreSQL's is known only for the bench's own server (--pg-temp)
    assert per_request["upstream_workers"] > 0 and per_request["fleet_client"] > 0 and per_request["postgres"] is None
    assert figures["cpu_ms_per_request_at_0_1x_copy"] > 0
    with psycopg.connect(postgres.url) as conn:  # its database was its own, and is gone
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'kiosk_fleet_%'").fetchone()[0]
    assert left == 0


def test_console_sessions_hold_and_end_on_every_worker(pg_url):
    """A console login made on one worker is valid on all, and a logout ends it on all."""
    import requests

    from console_helpers import form_token, login, start_console

    rig = start_console(pg_url, "--workers", "2")
    try:
        cookies = login(rig.url, "op").cookies.get_dict()
        for _ in range(12):  # a new connection each time: either worker may answer
            page = requests.get(rig.url + "/fleet", cookies=cookies, headers={"Connection": "close"},
                                allow_redirects=False, timeout=30)
            assert page.status_code == 200 and "kiosk-cbt-1" in page.text
        out = requests.post(rig.url + "/logout", data={"csrf": form_token(page.text)}, cookies=cookies,
                            headers={"Connection": "close"}, allow_redirects=False, timeout=30)
        assert out.status_code == 303 and out.headers["location"].endswith("/login")
        for _ in range(6):
            after = requests.get(rig.url + "/fleet", cookies=cookies, headers={"Connection": "close"},
                                 allow_redirects=False, timeout=30)
            assert after.status_code == 303 and after.headers["location"].endswith("/login")
    finally:
        rig.upstream.stop()


def test_workers_tell_systemd_they_are_ready_and_alive(pg_url, tmp_path):
    """The unit is Type=notify with a watchdog: the supervisor of --workers speaks for its workers."""
    from test_watchdog import NotifySocket, _under_notify

    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        result = _under_notify(["upstream", "serve", "--db", pg_url, "--listen", "127.0.0.1:0", "--workers", "2"],
                               listener, pings=3)
    finally:
        listener.close()
    assert "2 workers" in result.stdout, result.stderr
    assert len(listener.times_of("READY=1")) == 1 and len(listener.times_of("WATCHDOG=1")) >= 3
    assert any(s == "serving with 2 of 2 workers" for s in listener.statuses())
