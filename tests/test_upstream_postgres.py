"""The upstream on a real PostgreSQL server (started here, as CI has none running): same exactly-once
guarantees as on SQLite, concurrent repeats included, and a database restart costs nothing."""

import json
import subprocess
import sys
import threading
import time
import uuid


from conftest import ROOT, kiosk_env, run_kiosk
from faultproxy import FaultProxy
from kiosk.core.store import Store
from sync import protocol as p
from sync.backlog import seed_backlog
from sync.upstream.engines import open_storage
from upstream_helpers import RawDevice, provision, start_upstream, upstream_ids, write_device_config


def _item(device_id, **over):
    item = {"id": str(uuid.uuid4()), "venue_id": "VENUE-1", "device_id": device_id, "direction": "entry",
            "utc_ms": 1_700_000_000_000, "monotonic_ns": time.monotonic_ns(), "boot_id": "boot", "clock_synced": 1,
            "kind": "personal", "visitor_ref": uuid.uuid4().hex * 2, "sealed_subject": b"\x01sealed"}
    item.update(over)
    return item


def test_concurrent_repeats_are_stored_once(pg_url):
    storage = open_storage(pg_url)
    tok = storage.create_token("enroll", "VENUE-1", ttl_s=60)
    storage.enroll(tok, "pg-device", "VENUE-1", b"k" * 32, "test")
    device = storage.device("pg-device")
    items = [_item("pg-device") for _ in range(400)]
    results: list = []

    def upload(batch):
        results.append(storage.store_checkins(device, batch))

    # Eight uploads of overlapping halves at once, as retries racing a slow first attempt would.
    threads = [threading.Thread(target=upload, args=(items[(i % 2) * 200:][:300],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r["id"] for batch in results for r in batch if r["status"] == "stored"]
    assert len(stored) == len(set(stored)) == 400 and set(stored) == {i["id"] for i in items}
    assert all(r["status"] in ("stored", "duplicate") for b in results for r in b)
    assert storage.stats() == {"total": 400, "distinct": 400, "devices": 1, "venues": 1}
    trace = storage.trace("VENUE-1", 1_700_000_000_000, 1_700_000_000_000)
    assert len(trace) == 400 and trace[0]["sealed_subject"] == b"\x01sealed" and trace[0]["clock_synced"] is True
    assert storage.remember_nonce("pg-device", "ab" * 16, 300_000) is True
    assert storage.remember_nonce("pg-device", "ab" * 16, 300_000) is False
    assert storage.revoke("pg-device") and storage.device("pg-device").revoked_ms is not None
    storage.close()


def test_real_client_through_faults_into_postgres(pg_url, tmp_path):
    upstream = start_upstream(pg_url)
    proxy = FaultProxy(int(upstream.url.rsplit(":", 1)[1]),
                       {"http503": 0.1, "cut_request": 0.1, "cut_response": 0.15}).start()
    try:
        config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", batch_max_items=100,
                                     read_timeout_s=2.0, backoff_base_s=0.05, backoff_cap_s=0.3, retry_after_max_s=1.0)
        proxy.set_faults({})
        provision(config, upstream, url=proxy.url)
        store = Store.open(tmp_path / "state")
        ids = seed_backlog(store, 2000, "VENUE-1", "test-device")
        store.close()
        proxy.set_faults({"http503": 0.1, "cut_request": 0.1, "cut_response": 0.15})
        client = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "sync"], env=kiosk_env(),
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while _acked(tmp_path / "state") < 2000 and time.monotonic() < deadline and client.poll() is None:
                time.sleep(0.2)
        finally:
            client.terminate()
            assert client.wait(20) == 0
        assert _acked(tmp_path / "state") == 2000
        assert proxy.stats.modes["cut_response"] > 0
        stored = upstream_ids(pg_url)
        assert len(stored) == len(set(stored)) and set(stored) == set(ids)
        stats = json.loads(run_kiosk("upstream", "stats", "--db", pg_url).stdout)
        assert stats["total"] == stats["distinct"] == 2000
    finally:
        proxy.stop()
        upstream.stop()


def _acked(state_dir) -> int:
    store = Store.open(state_dir)
    try:
        return store.outbox_counts()["acked"]
    finally:
        store.close()


def test_bad_input_and_a_database_restart_leave_postgres_consistent(pg_url, postgres):
    upstream = start_upstream(pg_url)
    try:
        dev = RawDevice(upstream.url, "pg-raw")
        assert dev.enroll(pg_url).status_code == 200
        item = dev.item()
        bad = dev.send(p.PATH_CHECKINS, {"checkins": [item, {**dev.item(), "utc_ms": -5}]})
        assert bad.status_code == 422 and bad.json()["reason"] == "invalid-field"
        assert upstream_ids(pg_url) == []  # nothing stored partially
        postgres.pause()
        try:
            down = dev.send(p.PATH_CHECKINS, {"checkins": [item]})
            assert down.status_code == 503 and down.json()["reason"] == "storage-unavailable"
            assert down.headers["Retry-After"]
        finally:
            postgres.resume()
        assert upstream.alive()
        again = dev.send(p.PATH_CHECKINS, {"checkins": [item]})
        assert again.status_code == 200, again.text
        assert again.json()["stored"] == 1
        assert upstream_ids(pg_url) == [item["id"]]
    finally:
        upstream.stop()
