"""Bluezone's ID chain: base key → daily keys → 96 sub-keys a day → 12-byte IDs, aligned to UTC.

The derivation must match the phones' byte for byte, because a phone matches an exposure by
regenerating the IDs from a published daily key and looking them up in its own log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("beacon.ids")

DAY_MS = 86_400_000
SLOTS_PER_DAY = 96
SLOT_MS = DAY_MS // SLOTS_PER_DAY  # 15 minutes
SUBKEY_SALT = b"bluzonesubkey"  # sic: Bluezone's spelling
ID_OFFSETS = (0, 4, 8, 12, 16, 18, 20, 22, 24, 26, 28, 30)
KEY_FILE = "beacon-base-key.json"


class ChainError(ValueError):
    """A key or key day that cannot produce an ID (wrong length, time before the key existed)."""


@dataclass(frozen=True)
class BaseKey:
    key: bytes
    day: dt.date  # the UTC day the key was made: its daily key for that day is the key itself

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ChainError(f"a Bluezone base key is 32 bytes, not {len(self.key)}")

    @property
    def day_start_ms(self) -> int:
        return day_start_ms(self.day)


def day_start_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_MS


def utc_day(utc_ms: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=utc_ms // DAY_MS)


def slot_of(utc_ms: int) -> int:
    return (utc_ms % DAY_MS) // SLOT_MS


def slot_start_ms(utc_ms: int) -> int:
    return utc_ms - utc_ms % SLOT_MS


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def daily_key(base: BaseKey, day: dt.date) -> bytes:
    """DK[d+1] = SHA256(DK[d]), starting from the base key on its own day."""
    days = (day - base.day).days
    if days < 0:
        raise ChainError(f"{day} is before the key's creation day {base.day}")
    key = base.key
    for _ in range(days):
        key = sha256(key)
    return key


def subkey_to_id(subkey: bytes) -> bytes:
    return bytes(subkey[i] for i in ID_OFFSETS)


def day_ids(dk: bytes, slots: int = SLOTS_PER_DAY) -> list[bytes]:
    """The IDs of every slot of one day: SK0 = SHA256(DK || salt), SK[i+1] = SHA256(SK[i])."""
    subkey = sha256(dk + SUBKEY_SALT)
    ids = []
    for _ in range(slots):
        ids.append(subkey_to_id(subkey))
        subkey = sha256(subkey)
    return ids


def slot_id(dk: bytes, slot: int) -> bytes:
    if not 0 <= slot < SLOTS_PER_DAY:
        raise ChainError(f"slot {slot} is outside 0..{SLOTS_PER_DAY - 1}")
    return day_ids(dk, slot + 1)[slot]


def id_at(base: BaseKey, utc_ms: int) -> bytes:
    """The ID a device with this key broadcasts at this instant."""
    return slot_id(daily_key(base, utc_day(utc_ms)), slot_of(utc_ms))


def new_base_key(utc_ms: int) -> BaseKey:
    return BaseKey(secrets.token_bytes(32), utc_day(utc_ms))


def load_base_key(state_dir: Path) -> BaseKey | None:
    """This device's key, or None if none was made yet. A damaged file is set aside, never reused."""
    path = state_dir / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        return BaseKey(bytes.fromhex(data["base_key"]), dt.date.fromisoformat(data["created_day"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        kept = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(kept)
        log.error("beacon key %s is unreadable (%s); kept it as %s; a new key will be made and must be "
                  "registered again", path, exc, kept)
        return None


def load_or_create_base_key(state_dir: Path, utc_ms: int) -> BaseKey:
    """Call only with a trustworthy clock: the creation day is part of the key's identity upstream."""
    from kiosk.core.privacy import write_private_file

    existing = load_base_key(state_dir)
    if existing is not None:
        return existing
    base = new_base_key(utc_ms)
    from kiosk.core.statefiles import private_dir

    private_dir(state_dir)
    record = {"base_key": base.key.hex().upper(), "created_day": base.day.isoformat()}
    write_private_file(state_dir / KEY_FILE, (json.dumps(record) + "\n").encode("utf-8"))
    log.info("made a new beacon base key for %s; register it upstream", base.day)
    return base
