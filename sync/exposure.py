"""Bluezone exposure entries for a venue window, from the beacon keys the venue's devices registered.

The ID-chain arithmetic has one home, the beacon package; this module only finds the keys and asks
it for F0 entries through one small interface, so the upstream never carries a second copy of
Bluezone's derivation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

# (base key, UTC day the key was made for, window start ms, window end ms) -> F0 entries
F0Entries = Callable[[bytes, dt.date, int, int], list[dict[str, Any]]]

class ExposureUnavailable(RuntimeError):
    """The beacon package (and with it Bluezone's ID chain) is not installed here."""


def load_f0_entries() -> F0Entries:
    try:
        from beacon.register import f0_entries
    except ImportError:
        raise ExposureUnavailable("the beacon package's f0_entries is not available on this server") from None
    return f0_entries


def exposure_entries(keys: list[dict[str, Any]], start_ms: int, end_ms: int,
                     f0_entries: F0Entries | None = None) -> list[dict[str, Any]]:
    """F0 entries for every registered key made on or before the window's end."""
    f0 = f0_entries or load_f0_entries()
    end_day = dt.datetime.fromtimestamp(end_ms / 1000, dt.timezone.utc).date()
    entries: list[dict[str, Any]] = []
    for key in keys:
        day = dt.date.fromisoformat(key["key_day"])
        if day <= end_day:
            entries.extend(f0(bytes.fromhex(key["base_key"]), day, start_ms, end_ms))
    return entries



def load_beacon_record(config: Any) -> dict[str, Any] | None:
    """The beacon's key registration record, or None (no beacon package here, or no key made yet)."""
    try:
        from beacon.ids import load_base_key
        from beacon.register import registration_record
    except ImportError:
        return None
    base = load_base_key(config.state_dir)
    return registration_record(base) if base is not None else None
