"""``kiosk status``: what an operator reads, and the exit code a monitoring script acts on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
import uuid

import pytest

from conftest import run_kiosk
from kiosk.core.config import save_overrides
from kiosk.status import EXIT_ATTENTION, EXIT_NO_STATE, EXIT_OK, gather
from kiosk.core.store import DB_NAME, Store

DAY_MS = 86_400_000


def _status(config_file, *extra):
    result = run_kiosk("--config", str(config_file), "status", *extra)
    return result, (json.loads(result.stdout) if "--json" in extra else None)


def enrolled(state_dir: Path, venue: str = "VENUE-1") -> None:
    """An enrollment as `kiosk provision` leaves it (the uploader's key and record)."""
    from sync.identity import Enrollment, load_or_create_key, save_enrollment

    load_or_create_key(state_dir)
    save_enrollment(state_dir, Enrollment("test-device", venue, "http://127.0.0.1:9", "", 1))


@pytest.mark.system
def test_a_device_in_service_is_healthy(config_file, state_dir, tmp_path):
    from upstream_helpers import provision, start_upstream

    upstream = start_upstream(str(tmp_path / "upstream.db"))
    try:
        provision(config_file, upstream)
        run = run_kiosk("--config", str(config_file), "run", "--headless", "--seconds", "12")
        assert run.returncode == 0, run.stderr
        sent = run_kiosk("--config", str(config_file), "sync", "--once")
        assert sent.returncode == 0, sent.stderr
        again = run_kiosk("--config", str(config_file), "sync", "--once")  # a later run with nothing to send
        assert again.returncode == 0, again.stderr
    finally:
        upstream.stop()
    result, report = _status(config_file, "--json")
    assert result.returncode == EXIT_OK, result.stdout
    assert report["healthy"] and report["attention"] == []
    assert report["config"].startswith(str(config_file))  # the file actually in use, not /etc/kiosk/kiosk.toml
    assert report["device"] == {"id": "test-device", "venue_id": "VENUE-1", "venue_name": "Chợ Bến Thành",
                                "direction": "entry"}
    assert report["checkins"]["total"] >= 3 and report["checkins"]["last_age_s"] < 60
    assert report["queue"]["unsent"] == 0 and report["queue"]["acked"] == report["checkins"]["total"]
    assert report["sync"]["last_ok_age_s"] < 60  # kept across the second run
    assert report["enrollment"]["state"] == "enrolled"
    assert report["camera"]["state"] == "ok" and report["camera"]["backend"] == "synthetic"
    assert 5 < report["camera"]["fps"] <= 31  # configured 30 fps
    assert report["clock"]["synced"] is True
    assert report["disk"]["free_bytes"] > 0
    assert report["version"] == "0.1.0"
    text, _ = _status(config_file)
    assert text.returncode == EXIT_OK
    assert "VENUE-1" in text.stdout and "OK: nothing needs attention" in text.stdout
    assert f"config {config_file}" in text.stdout


@pytest.mark.system
def test_status_does_not_change_the_database(config_file, state_dir):
    run_kiosk("--config", str(config_file), "checkin", "--payload", "DEMO-HQR-00000000000A")
    before = hashlib.sha256((state_dir / DB_NAME).read_bytes()).hexdigest()
    listing = sorted(os.listdir(state_dir))
    _status(config_file, "--json")
    assert hashlib.sha256((state_dir / DB_NAME).read_bytes()).hexdigest() == before
    assert sorted(os.listdir(state_dir)) == listing


@pytest.mark.system
def test_no_state_database_exits_3_and_creates_none(config_file, state_dir):
    result, report = _status(config_file, "--json")
    assert result.returncode == EXIT_NO_STATE
    assert report["store"]["state"] == "missing"
    assert not (state_dir / DB_NAME).exists()


@pytest.mark.system
def test_unprovisioned_device_needs_attention(tmp_path):
    state = tmp_path / "s"
    Store.open(state).close()
    result = run_kiosk("--state-dir", str(state), "status")
    assert result.returncode == EXIT_ATTENTION
    assert "ATTENTION: not provisioned" in result.stdout
    # A fresh install without the authority's keys: both are named.
    assert "ATTENTION: provisioning.authority_key is not set" in result.stdout
    assert "ATTENTION: privacy.authority_public_key is not set: check-ins are refused" in result.stdout


def _insert(store: Store, utc_ms: int, state: str = "pending", boot: str = "b") -> None:
    cid = str(uuid.uuid4())
    with store.transaction():
        store.db["checkins"].insert(dict(id=cid, venue_id="V", device_id="D", direction="entry", utc_ms=utc_ms,
                                         monotonic_ns=1, boot_id=boot, clock_synced=1, kind="personal",
                                         visitor_ref=cid))
        store.db["outbox"].insert(dict(checkin_id=cid, state=state, updated_ms=utc_ms))


def test_each_problem_is_named(config, state_dir):
    now = time.time_ns() // 1_000_000
    store = Store.open(state_dir)
    store.set_status("camera", "ok", {"backend": "picamera2", "fps": 14.9})
    enrolled(state_dir)
    assert gather(config, clock_synced=True).attention == []

    _insert(store, now - 2 * DAY_MS)
    _insert(store, now - DAY_MS, state="dead")
    store.set_status("beacon", "error", {"error": "hci0: Operation not permitted"})
    store.set_status("sync", "error", {"last_error": "HTTP 403 Forbidden", "last_success_ms": now - 3 * DAY_MS})
    report = gather(config, clock_synced=False)
    text = "\n".join(report.attention)
    assert "1 check-in(s) not uploaded, the oldest 2 days old" in text
    assert "1 check-in(s) refused by the upstream" in text
    assert "beacon error: hci0: Operation not permitted" in text
    assert "sync error: HTTP 403 Forbidden" in text
    assert "clock not synchronised" in text
    assert report.facts["sync"]["last_ok_age_s"] >= 3 * 86400
    assert report.exit_code == EXIT_ATTENTION

    # The scanner stopped reporting a minute ago: it is not running.
    store.db.execute("UPDATE status SET updated_ms = ? WHERE component = 'camera'", [now - 120_000])
    assert any("camera: last report 2 min ago" in a for a in gather(config, clock_synced=True).attention)
    store.set_status("camera", "lost", {"error": "no camera found"})
    assert any(a == "camera lost: no camera found" for a in gather(config, clock_synced=True).attention)
    store.close()


def test_beacon_slot_and_last_sync_are_shown(config, state_dir):
    now = time.time_ns() // 1_000_000
    store = Store.open(state_dir)
    store.set_status("camera", "ok", {"backend": "picamera2", "fps": 15.0})
    store.set_status("beacon", "advertising", {"slot": 4711})
    store.set_status("sync", "online", {"last_success_ms": now - 30_000})
    store.close()
    enrolled(state_dir)
    report = gather(config, clock_synced=True)
    assert report.exit_code == EXIT_OK
    assert report.facts["beacon"]["slot"] == 4711 and report.facts["beacon"]["state"] == "advertising"
    assert 29 <= report.facts["sync"]["last_ok_age_s"] < 60


@pytest.mark.system
def test_status_reads_overrides_from_provisioning(config_file, state_dir):
    save_overrides(state_dir, {"device": {"venue_id": "CHO-LON-7", "direction": "exit"}})
    _, report = _status(config_file, "--json")
    assert report["device"]["venue_id"] == "CHO-LON-7" and report["device"]["direction"] == "exit"


@pytest.mark.system
def test_run_as_root_leaves_no_root_owned_files(config_file):
    """On the appliance the state directory belongs to `kiosk`; root running status must not take it over."""
    base = Path(tempfile.mkdtemp(prefix="kiosk-status-"))  # world-traversable, like /var/lib
    base.chmod(0o755)
    state_dir = base / "state"
    config_file.write_text(config_file.read_text().replace(str(config_file.parent / "state"), str(state_dir)))
    run_kiosk("--config", str(config_file), "checkin", "--payload", "DEMO-HQR-00000000000B")
    nobody = 65534
    for path in [state_dir, *state_dir.iterdir()]:
        os.chown(path, nobody, nobody)
    result, report = _status(config_file, "--json")
    assert result.stdout, result.stderr
    assert report["checkins"]["total"] == 1, result.stderr
    owners = {p.name: p.stat().st_uid for p in state_dir.iterdir()}
    assert set(owners.values()) == {nobody}, owners
    shutil.rmtree(base)


@pytest.mark.system
def test_a_garbage_database_is_reported_and_left_alone(config_file, state_dir):
    garbage = b"this is not SQLite\x00" * 100
    (state_dir / DB_NAME).write_bytes(garbage)
    result, report = _status(config_file, "--json")
    assert result.returncode == EXIT_ATTENTION
    assert report["store"]["state"] == "unreadable"
    assert any(a.startswith("state database unreadable") for a in report["attention"])
    assert (state_dir / DB_NAME).read_bytes() == garbage  # status never repairs or sets aside


def test_the_last_successful_upload_survives_an_uploader_restart(config, state_dir):
    """A new `kiosk sync` run must not report "last success never" over an upload made minutes ago."""
    import threading

    from sync.client import Uploader

    enrolled(state_dir)
    store = Store.open(state_dir)
    then = time.time_ns() // 1_000_000 - 90_000
    store.set_status("sync", "online", {"last_success_ms": then})
    store.close()
    stopped = threading.Event()
    stopped.set()  # the new run stops at once: only its start-up and final reports happen
    uploader = Uploader(config)
    try:
        uploader.run(stopped)
    finally:
        uploader.close()
    report = gather(config, clock_synced=True)
    assert 89 <= report.facts["sync"]["last_ok_age_s"] < 150
