"""F0 entries: checked against a phone that matches the way Bluezone's app does (bluezone_phone.py)."""

import datetime as dt
import hashlib

import pytest

from beacon.ids import SLOT_MS, BaseKey, id_at
from beacon.register import f0_entries, f0_message, registration_record
from bluezone_phone import Phone, Record
from conftest import run_kiosk

KEY = bytes.fromhex("4C5224B397F8AB3896781D5AA0F3119F280513F1B592CA280EBDED6357E21084")
DAY = dt.date(2020, 8, 8)
DAY0 = 1596844800000
H = 3_600_000


def phone_with(records):
    phone = Phone.__new__(Phone)  # the matcher only: no controller needed
    phone.log = list(records)
    return phone


def seen(base, at_ms):
    return Record(id_at(base, at_ms), -60, at_ms)


def test_one_entry_per_day_in_seconds():
    entries = f0_entries(KEY, DAY, DAY0 + 20 * H, DAY0 + 24 * H + 2 * H)
    assert [e["time_start"] for e in entries] == [1596844800, 1596844800 + 86400]
    assert entries[0]["daily_key"] == KEY.hex().upper()
    assert entries[1]["daily_key"] == hashlib.sha256(KEY).hexdigest().upper()
    assert entries[0]["time_end"] == 1596844800 + 86400 - 1  # a whole first day
    assert entries[1]["time_end"] == (DAY0 + 26 * H) // 1000
    assert all(e["max"] == 96 for e in entries)


def test_days_before_the_key_are_left_out():
    assert f0_entries(KEY, DAY, DAY0 - 48 * H, DAY0 - 24 * H) == []
    assert len(f0_entries(KEY, DAY, DAY0 - 48 * H, DAY0 + H)) == 1
    with pytest.raises(ValueError, match="ends before it starts"):
        f0_entries(KEY, DAY, DAY0 + H, DAY0)


def test_phone_matches_inside_the_window_only():
    base = BaseKey(KEY, DAY)
    visit = DAY0 + 24 * H + 10 * H + 7 * 60_000  # day 1, 10:07 UTC
    phone = phone_with([seen(base, visit)])
    assert phone.matches(f0_message(KEY, DAY, visit - H, visit + H))
    assert phone.matches(f0_message(KEY, DAY, DAY0, visit + H))  # a window starting the day before
    assert phone.matches(f0_message(KEY, DAY, visit, visit))  # the slot itself
    assert not phone.matches(f0_message(KEY, DAY, visit - 3 * H, visit - H))  # ended before the visit
    assert not phone.matches(f0_message(KEY, DAY, visit + 24 * H, visit + 26 * H))  # the next day
    assert not phone.matches(f0_message(KEY, DAY, DAY0, DAY0 + 23 * H))  # the day before only
    other = bytes(32)
    assert not phone.matches(f0_message(other, DAY, visit - H, visit + H))  # another kiosk's key


def test_window_start_rounds_down_to_midnight():
    """F0 has no way to start mid-day (the phone regenerates IDs from slot 0): over-inclusive, by design."""
    base = BaseKey(KEY, DAY)
    visit = DAY0 + 24 * H + 10 * H
    phone = phone_with([seen(base, visit)])
    assert phone.matches(f0_message(KEY, DAY, visit + H, visit + 3 * H))


def test_slot_windows_are_exact_at_both_ends():
    base = BaseKey(KEY, DAY)
    slot_start = DAY0 + 40 * SLOT_MS
    late = Record(id_at(base, slot_start), -60, slot_start + SLOT_MS + 1)  # an old ID heard after its slot
    assert not phone_with([late]).matches(f0_message(KEY, DAY, DAY0, DAY0 + 24 * H - 1))
    edge = Record(id_at(base, slot_start), -60, slot_start + SLOT_MS)  # Bluezone's window includes its end
    assert phone_with([edge]).matches(f0_message(KEY, DAY, DAY0, DAY0 + 24 * H - 1))
    assert not phone_with([seen(base, slot_start)]).matches(f0_message(KEY, DAY, DAY0, slot_start - 1000))


@pytest.mark.system
def test_registration_record_and_f0_command():
    record = registration_record(BaseKey(KEY, DAY))
    assert record == {"scheme": "bluezone", "base_key": KEY.hex().upper(), "created_day": "2020-08-08",
                      "time": 1596844800, "slots_per_day": 96}
    import json
    result = run_kiosk("beacon", "f0", "--key", KEY.hex(), "--key-day", "2020-08-08",
                       "--from", "2020-08-09T09:00:00Z", "--to", "2020-08-09T11:00:00Z")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == f0_message(KEY, DAY, DAY0 + 33 * H, DAY0 + 35 * H)
    result = run_kiosk("beacon", "f0", "--key", KEY.hex(), "--key-day", "2020-08-08",
                       "--from", "2020-08-09T11:00:00Z", "--to", "2020-08-09T09:00:00Z")
    assert result.returncode == 2 and "--to is before --from" in result.stderr


def test_device_registration_for_the_sync_process(state_dir):
    from beacon.ids import load_or_create_base_key
    from beacon.register import device_registration

    assert device_registration(state_dir) is None  # no key before the beacon first ran
    base = load_or_create_base_key(state_dir, DAY0 + H)
    assert device_registration(state_dir) == registration_record(base)
