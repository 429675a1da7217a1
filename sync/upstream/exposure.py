"""Bluezone exposure entries for a venue window, from the beacon keys the venue's devices registered.

The ID-chain arithmetic has one home, the beacon package (``beacon.register.f0_entries``); this
module only finds which registered keys apply, so the upstream carries no second copy of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from beacon.register import f0_entries


def exposure_entries(keys: list[dict[str, Any]], start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """F0 entries ``{daily_key, time_start, max, time_end}`` of every key in use during the window."""
    entries: list[dict[str, Any]] = []
    for key in keys:
        entries.extend(f0_entries(bytes.fromhex(key["base_key"]), dt.date.fromisoformat(key["key_day"]),
                                  start_ms, end_ms))
    return entries
