"""The status bar's data: read from the real state database by a background poller, in local Vietnam time."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from kiosk.screen.statusbar import StatusPoller, bar_items
from kiosk.core.store import CheckinRow, Store


@pytest.mark.system
def test_poller_reads_statuses_and_queue_from_the_real_database(state_dir):
    store = Store.open(state_dir)
    now = time.time_ns() // 10**6
    store.set_status("sync", "online", {"last_success_ms": now - 5 * 60_000})
    store.set_status("beacon", "advertising", {"slot": 12})
    store.set_status("nearby", "ok", {"phones": 7, "window_s": 300.0})  # as beacon/service.py writes them
    store.set_status("camera", "lost", {"error": "no camera found"})
    for n in range(3):
        store.record_checkin(CheckinRow(f"id-{n}", "V", "D", "entry", now, n, "boot", True, "personal", f"ref{n}"),
                             lambda s: False)
    poller = StatusPoller(state_dir, assume_synced=True, interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not poller.latest.statuses and time.monotonic() < deadline:
            time.sleep(0.02)
        snapshot = poller.latest
    finally:
        poller.stop()
        store.close()
    assert snapshot.camera_lost and snapshot.queue_depth == 3 and snapshot.sync_online
    assert snapshot.nearby_phones == 7 and snapshot.beacon_on and snapshot.disk_free_bytes > 0
    assert ("camera", "no camera found") in snapshot.errors()
    items = bar_items(snapshot, "Chợ Bến Thành", "en", now)
    assert items["sync"] == ("cloud", "Online · sent 5 min ago · 3 queued")
    assert items["beacon"] == ("beacon", "Beacon on · ~7 phones")
    vi = bar_items(snapshot, "", "vi", now)
    assert vi["venue"][1] == "Chưa có địa điểm" and vi["sync"][1] == "Trực tuyến · đã gửi 5 phút trước · 3 chờ gửi"


def test_poller_survives_no_database_and_an_unreadable_one(state_dir):
    poller = StatusPoller(state_dir, assume_synced=True)
    assert poller.poll_once().statuses == {} and not (state_dir / "kiosk.db").exists()  # never creates it
    (state_dir / "kiosk.db").write_bytes(b"this is not a database" * 100)
    snapshot = poller.poll_once()
    assert "not a database" in snapshot.problem  # reported, not raised
    assert (state_dir / "kiosk.db").read_bytes().startswith(b"this is not")  # the reader never moves or mends it
    items = bar_items(snapshot, "V", "en", 0)
    assert items["sync"][1].startswith("Offline")  # nothing known about sync: shown as offline


def test_missing_sync_and_beacon_reports_and_an_untrusted_clock():
    from kiosk.screen.statusbar import StatusSnapshot

    items = bar_items(StatusSnapshot(clock_synced=False), "V", "en", 0)
    assert items["sync"] == ("cloud-off", "Offline · Nothing sent yet")
    assert items["beacon"] == ("beacon-off", "Beacon off")  # no nearby estimate: not shown
    assert items["clock"] == (None, "--:--")


def test_local_time_is_vietnam_time_with_or_without_tzdata(monkeypatch):
    import zoneinfo

    from kiosk.core import clock

    instant_ms = int(dt.datetime(2021, 8, 15, 17, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert clock.local_time(instant_ms).strftime("%H:%M %d/%m") == "00:30 16/08"

    def no_tzdata(name: str):
        raise zoneinfo.ZoneInfoNotFoundError(name)

    monkeypatch.setattr(zoneinfo, "ZoneInfo", no_tzdata)
    fallback = clock.local_zone()
    assert fallback.utcoffset(None) == dt.timedelta(hours=7)
    assert clock.local_time(instant_ms, fallback).strftime("%H:%M %d/%m") == "00:30 16/08"
