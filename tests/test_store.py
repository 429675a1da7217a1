"""The state database: durability settings, migrations, corruption and storage faults."""

import os
import subprocess
from pathlib import Path

import pytest

from kiosk.pipeline import Pipeline
from kiosk.core.store import DB_NAME, SCHEMA_VERSION, StorageError, Store
from scanner.camera.synthetic import demo_token
from test_pipeline import FixedClock

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root (CI runs as root)")


def test_database_is_durable_wal_and_versioned(state_dir):
    store = Store.open(state_dir)
    pragma = lambda name: store.db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL: an acknowledged check-in survives a pulled plug
    assert pragma("user_version") == SCHEMA_VERSION
    assert {"checkins", "outbox", "status"} <= set(store.db.table_names())
    store.close()
    assert (state_dir / DB_NAME).exists()


def test_reopening_keeps_data_and_does_not_migrate_again(config):
    p = Pipeline(config, clock=FixedClock())
    checkin_id = p.handle_payload(demo_token(1)).checkin_id
    p.close()
    store = Store.open(config.state_dir)
    assert store.checkin(checkin_id) is not None
    store.close()


def test_a_fresh_file_another_service_is_writing_is_waited_for_not_refused(state_dir):
    """The scanner and the enrollment thread (or two services) open a new state directory at once:
    turning the file to WAL waits for the other writer instead of answering "database is locked"."""
    import sqlite3
    import threading

    other = sqlite3.connect(state_dir / DB_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE left_by_the_other_writer (a)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    store = Store.open(state_dir)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    other.close()


def test_newer_schema_is_refused_not_downgraded(state_dir):
    store = Store.open(state_dir)
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    store.close()
    with pytest.raises(StorageError, match="newer than this software"):
        Store.open(state_dir)


@pytest.mark.parametrize("damage", ["garbage", "torn-pages"])
def test_corrupt_database_is_kept_aside_and_a_fresh_one_started(config, damage, caplog):
    p = Pipeline(config, clock=FixedClock())
    for n in range(200):
        p.handle_payload(demo_token(n))
    p.close()
    db = config.state_dir / DB_NAME
    Store.open(config.state_dir).db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "garbage":
        db.write_bytes(b"this is not a database at all" * 100)
    else:
        data = bytearray(db.read_bytes())
        data[4096 * 2:4096 * 4] = os.urandom(4096 * 2)  # overwrite b-tree pages in the middle
        db.write_bytes(bytes(data))
    original = db.read_bytes()

    p = Pipeline(config, clock=FixedClock())
    assert p.handle_payload(demo_token(999)).event == "accepted"
    status = p.store.statuses()["store"]
    p.close()
    kept = Path(status["detail"]["kept_as"])
    assert status["state"] == "recovered"
    assert kept.read_bytes() == original, "the damaged file must be kept byte for byte, never deleted"
    assert kept.parent == config.state_dir and kept.name.startswith("kiosk.db.corrupt-")
    assert "unreadable" in caplog.text and str(kept) in caplog.text


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)], check=True)  # the kiosk's own, not 1777
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.system
@needs_root
def test_disk_full_refuses_scan_keeps_earlier_checkins_and_recovers(config, small_fs):
    config = config.replace(device={"state_dir": str(small_fs)})
    p = Pipeline(config, clock=FixedClock())
    kept = [p.handle_payload(demo_token(n)).checkin_id for n in range(5)]
    filler = small_fs / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    refused = [p.handle_payload(demo_token(100 + n)) for n in range(50)]
    assert {(o.event, o.reason) for o in refused} == {("error", "storage-unavailable")}
    assert all(o.checkin_id is None for o in refused)

    filler.unlink()
    back = p.handle_payload(demo_token(200))
    assert back.event == "accepted"
    assert set(kept) | {back.checkin_id} <= p.store.checkin_ids()
    assert p.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    p.close()


@pytest.mark.system
@needs_root
def test_read_only_state_directory_refuses_scan_and_recovers(config, small_fs):
    config = config.replace(device={"state_dir": str(small_fs)})
    p = Pipeline(config, clock=FixedClock())
    first = p.handle_payload(demo_token(1)).checkin_id
    p.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    refused = p.handle_payload(demo_token(2))
    assert (refused.event, refused.reason) == ("error", "storage-unavailable")
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert p.handle_payload(demo_token(3)).event == "accepted"
    assert first in p.store.checkin_ids()
    p.close()


def test_reader_never_creates_migrates_or_sets_aside(state_dir):
    with pytest.raises(StorageError):
        Store.reader(state_dir)  # no database yet: a reader does not make one
    assert not (state_dir / DB_NAME).exists()
    Store.open(state_dir).close()
    db = state_dir / DB_NAME
    db.write_bytes(b"damaged" * 1000)
    with pytest.raises(Exception):  # noqa: B017 - whichever way SQLite reports the damage
        Store.reader(state_dir).statuses()
    assert db.read_bytes() == b"damaged" * 1000  # only the writer may set a damaged file aside
