import datetime as dt
import json
import stat

import pytest

from beacon.ids import (SLOT_MS, BaseKey, ChainError, daily_key, day_ids, id_at, load_base_key,
                        load_or_create_base_key, slot_of)
from conftest import run_kiosk

VECTOR_KEY = "4C5224B397F8AB3896781D5AA0F3119F280513F1B592CA280EBDED6357E21084"
VECTOR_DAY = dt.date(2020, 8, 8)  # the UTC day starting 1596844800
VECTOR_MS = 1596866191387


def test_real_phone_vector():
    base = BaseKey(bytes.fromhex(VECTOR_KEY), VECTOR_DAY)
    assert slot_of(VECTOR_MS) == 23
    assert id_at(base, VECTOR_MS).hex().upper() == "B9A665D754FE65E665D76A45"


@pytest.mark.system
def test_vector_through_the_command():
    result = run_kiosk("beacon", "id", "--key", VECTOR_KEY, "--key-day", "2020-08-08", "--at", "2020-08-08T05:56:31.387Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "B9A665D754FE65E665D76A45"
    # the same instant written with a zone other than UTC
    result = run_kiosk("beacon", "id", "--key", VECTOR_KEY, "--key-day", "2020-08-08", "--at", "2020-08-08T12:56:31.387+07:00")
    assert result.stdout.strip() == "B9A665D754FE65E665D76A45"


def test_ids_change_every_fifteen_minutes_and_roll_over_days():
    base = BaseKey(bytes.fromhex(VECTOR_KEY), VECTOR_DAY)
    day0 = 1596844800000
    ids = [id_at(base, day0 + n * SLOT_MS) for n in range(96 * 2)]
    assert len(set(ids)) == len(ids)  # 192 distinct IDs over two days
    assert id_at(base, day0 + SLOT_MS - 1) == ids[0] and id_at(base, day0 + SLOT_MS) == ids[1]
    # day 1 is SHA-256 of day 0's key, and its slot 0 comes from that key
    import hashlib
    dk1 = hashlib.sha256(bytes.fromhex(VECTOR_KEY)).digest()
    assert daily_key(base, VECTOR_DAY + dt.timedelta(days=1)) == dk1
    assert ids[96] == day_ids(dk1, 1)[0]


@pytest.mark.system
def test_no_id_before_the_key_existed():
    base = BaseKey(bytes.fromhex(VECTOR_KEY), VECTOR_DAY)
    with pytest.raises(ChainError, match="before the key's creation day"):
        id_at(base, 1596844800000 - 1)
    result = run_kiosk("beacon", "id", "--key", VECTOR_KEY, "--key-day", "2020-08-08", "--at", "2020-08-07T23:59:59Z")
    assert result.returncode == 2 and "before the key's creation day" in result.stderr


@pytest.mark.system
@pytest.mark.parametrize("args, words", [
    (["--key", "00" * 31, "--key-day", "2020-08-08"], "64 hex digits"),
    (["--key", "zz" * 32, "--key-day", "2020-08-08"], "not hexadecimal"),
    (["--key", VECTOR_KEY, "--key-day", "2020-13-40"], "not a day as YYYY-MM-DD"),
    (["--key", VECTOR_KEY], "--key and --key-day go together"),
    (["--key", VECTOR_KEY, "--key-day", "2020-08-08", "--at", "yesterday"], "neither ISO 8601 nor milliseconds"),
])
def test_bad_command_input_is_refused_clearly(args, words):
    result = run_kiosk("beacon", "id", *args)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr


def test_base_key_is_made_once_private_and_dated(state_dir):
    now = 1596866191387
    base = load_or_create_base_key(state_dir, now)
    path = state_dir / "beacon-base-key.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base.day == VECTOR_DAY and len(base.key) == 32
    assert load_or_create_base_key(state_dir, now + 10 * 86_400_000) == base  # kept, not re-made
    record = json.loads(path.read_text())
    assert record == {"base_key": base.key.hex().upper(), "created_day": "2020-08-08"}


@pytest.mark.system
def test_device_key_drives_id_and_registration_commands(state_dir):
    base = load_or_create_base_key(state_dir, VECTOR_MS)
    result = run_kiosk("--state-dir", str(state_dir), "beacon", "id", "--at", "2020-08-08T05:56:31Z")
    assert result.returncode == 0 and result.stdout.strip() == id_at(base, VECTOR_MS).hex().upper()
    record = json.loads(run_kiosk("--state-dir", str(state_dir), "beacon", "key").stdout)
    assert record["base_key"] == base.key.hex().upper() and record["created_day"] == "2020-08-08"
    assert record["time"] == 1596844800 and record["slots_per_day"] == 96


@pytest.mark.system
def test_commands_without_a_key_say_how_to_get_one(state_dir):
    result = run_kiosk("--state-dir", str(state_dir), "beacon", "id")
    assert result.returncode != 0 and "no beacon key yet" in result.stderr


def test_damaged_key_file_is_kept_aside_and_replaced(state_dir):
    (state_dir / "beacon-base-key.json").write_text('{"base_key": "12", "created_day": "2020-08-08"}')
    assert load_base_key(state_dir) is None
    kept = list(state_dir.glob("beacon-base-key.json.corrupt-*"))
    assert len(kept) == 1 and "12" in kept[0].read_text()
    base = load_or_create_base_key(state_dir, VECTOR_MS)
    assert len(base.key) == 32
