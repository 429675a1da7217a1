"""What goes upstream about the beacon: its key registration, and the F0 entries of an exposure.

Semantics checked in Bluezone's Android source (BluezoneGlobal/react-native-bluetooth-scan,
``BluezoneIdTrace.checkContactF`` and ``BluezoneIdConstants.TraceInfo``): an F0 message is
``{"data": [{"daily_key", "time_start", "max", "time_end"}, ...]}``; times are Unix SECONDS (the phone
multiplies them by 1000). From ``time_start`` the phone regenerates ``max`` IDs per day, one every
``86400 / max`` seconds, rolls on to the next daily key (SHA-256 of this one) after ``max`` slots, and
stops at the first slot starting after ``time_end``; a sighting matches when its ID equals a slot's
ID and its time lies within that slot (both ends inclusive). So ``time_start`` must be the UTC
midnight the daily key belongs to, and an exposure can only start at a day boundary.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from beacon.ids import DAY_MS, SLOTS_PER_DAY, BaseKey, day_start_ms, daily_key, utc_day


def registration_record(base: BaseKey) -> dict[str, Any]:
    """The key as the authority needs it to publish exposures (and to revoke a stolen kiosk)."""
    return {
        "scheme": "bluezone",
        "base_key": base.key.hex().upper(),
        "created_day": base.day.isoformat(),
        "time": day_start_ms(base.day) // 1000,  # the phones' "time" field for a base id: UTC midnight, seconds
        "slots_per_day": SLOTS_PER_DAY,
    }


def f0_entries(key: bytes, key_day: dt.date, t_start_ms: int, t_end_ms: int) -> list[dict[str, Any]]:
    """One F0 entry per UTC day overlapping [t_start, t_end] (days before the key existed are skipped).

    Each day's entry covers that day from midnight (the format cannot start later) to ``t_end`` or
    the day's last second, whichever comes first.
    """
    if t_end_ms < t_start_ms:
        raise ValueError("the exposure window ends before it starts")
    base = BaseKey(key, key_day)
    entries = []
    day = max(utc_day(t_start_ms), key_day)
    while day_start_ms(day) <= t_end_ms:
        start_ms = day_start_ms(day)
        entries.append({
            "daily_key": daily_key(base, day).hex().upper(),
            "time_start": start_ms // 1000,
            "max": SLOTS_PER_DAY,
            "time_end": min(t_end_ms, start_ms + DAY_MS - 1000) // 1000,
        })
        day += dt.timedelta(days=1)
    return entries


def f0_message(key: bytes, key_day: dt.date, t_start_ms: int, t_end_ms: int) -> dict[str, Any]:
    return {"data": f0_entries(key, key_day, t_start_ms, t_end_ms)}


def device_registration(state_dir: Path) -> dict[str, Any] | None:
    """This device's registration record for the sync process; None until the beacon has made its key."""
    from beacon.ids import load_base_key

    base = load_base_key(state_dir)
    return None if base is None else registration_record(base)
