""""How many came in today?": check-ins since local midnight, in `kiosk status`, on the maintenance page
and, when configured, on the ready screen."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pygame
import pytest

from conftest import run_kiosk
from kiosk.core.clock import LOCAL_ZONE, local_day_start_ms
from kiosk.screen.statusbar import StatusPoller
from kiosk.core.store import CheckinRow, Store
from test_screen_app import fonts, kiosk  # noqa: F401 - fixtures


def add_checkin(store: Store, utc_ms: int, **extra) -> None:
    row = CheckinRow(id=str(uuid.uuid4()), venue_id="VENUE-1", device_id="test-device", direction="entry",
                     utc_ms=utc_ms, monotonic_ns=0, boot_id="b", clock_synced=True, kind="cccd",
                     visitor_ref=uuid.uuid4().hex, **extra)
    assert store.record_checkin(row, lambda _: False)


def test_local_midnight_is_vietnam_midnight():
    # 16:59:59 UTC on 1 June is 23:59:59 in Vietnam: still 1 June there; one second later it is 2 June
    before = int(dt.datetime(2024, 6, 1, 16, 59, 59, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert local_day_start_ms(before) == int(dt.datetime(2024, 5, 31, 17, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert local_day_start_ms(before + 1000) == before + 1000
    assert dt.datetime.fromtimestamp(local_day_start_ms(before) / 1000, LOCAL_ZONE).hour == 0


def test_the_fixed_utc7_midnight_is_zoneinfos_on_every_day_from_1976_to_2100():
    """`local_day_start_ms` computes the midnight as UTC+7 without zoneinfo (Vietnam has no DST):
    the same answer as the tz database's Asia/Ho_Chi_Minh, at and around every midnight."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    start = int(dt.datetime(1976, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    end = int(dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    for day in range(start, end, 86_400_000):
        for t in (day, day + 16 * 3_600_000, day + 17 * 3_600_000 - 1, day + 17 * 3_600_000, day + 23 * 3_600_000 + 1):
            assert local_day_start_ms(t) == local_day_start_ms(t, zone), t


@pytest.mark.system
def test_status_json_counts_todays_checkins_in_local_time(config_file, state_dir):
    assert run_kiosk("--config", str(config_file), "checkin", "--payload", "DEMO-HQR-00000000000A").returncode == 0
    store = Store.open(state_dir)
    midnight = local_day_start_ms(time.time_ns() // 10**6)
    add_checkin(store, midnight - 60_000)  # yesterday evening, local time
    add_checkin(store, midnight, source="companion")  # the first minute of today; companions count
    store.close()
    result = run_kiosk("--config", str(config_file), "status", "--json")
    report = json.loads(result.stdout)
    assert report["checkins_today"] == 2 and report["checkins"]["total"] == 3
    text = run_kiosk("--config", str(config_file), "status").stdout
    assert "2 today" in text


def test_the_maintenance_page_shows_today_and_since_start(kiosk, state_dir):
    store = Store.open(state_dir)
    add_checkin(store, local_day_start_ms(time.time_ns() // 10**6) - 1)  # yesterday
    poller = StatusPoller(state_dir, assume_synced=True)
    for _ in range(3):
        add_checkin(store, time.time_ns() // 10**6)
    snapshot = poller.poll_once()
    store.close()
    assert snapshot.checkins_today == 3 and snapshot.checkins_since_start == 3
    kiosk.test_status["snapshot"] = snapshot
    kiosk.maintenance.unlock(kiosk.now())
    lines = [line.text for line in kiosk.maintenance._status_lines("vi", kiosk.layout, snapshot, 0)]
    assert "Hôm nay: 3 lượt · từ khi bật máy: 3" in lines
    lines = [line.text for line in kiosk.maintenance._status_lines("en", kiosk.layout, snapshot, 0)]
    assert "Today: 3 check-ins · since start: 3" in lines


def test_the_ready_screen_shows_the_count_only_when_configured(kiosk, monkeypatch):
    from kiosk.screen import text as textbox

    drawn: list[str] = []
    real = textbox.draw
    monkeypatch.setattr(textbox, "draw", lambda surface, fonts_, text, *a, **k: (drawn.append(text),
                                                                                 real(surface, fonts_, text, *a, **k))[1])
    kiosk.invalidate()
    kiosk.step([])
    assert not any("148" in t for t in drawn)  # the sample snapshot says 148 today
    kiosk.config = kiosk.config.replace(screen={"show_today_count": True})
    kiosk.invalidate()
    kiosk.step([])
    assert "Hôm nay: 148 lượt ghi nhận" in drawn
    assert isinstance(kiosk.surface, pygame.Surface)
