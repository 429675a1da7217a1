"""Bluezone exposure entries for a venue window, from the beacon keys the venue's devices registered.

The ID-chain arithmetic has one home, the beacon package; this module only finds the keys and asks
it for F0 entries through one small interface, so the upstream never carries a second copy of
Bluezone's derivation.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any, Callable

# (base key, UTC day the key was made for, window start ms, window end ms) -> F0 entries
F0Entries = Callable[[bytes, dt.date, int, int], list[dict[str, Any]]]

# Where the beacon package provides the function (first that imports wins).
F0_PROVIDERS = ("beacon.exposure:f0_entries", "beacon.idchain:f0_entries", "beacon:f0_entries")


class ExposureUnavailable(RuntimeError):
    """The beacon package (and with it Bluezone's ID chain) is not installed here."""


def load_f0_entries() -> F0Entries:
    for spec in F0_PROVIDERS:
        module, name = spec.split(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ExposureUnavailable("the beacon package's f0_entries is not available on this server")


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


# Where the beacon package provides its key record for registration: a function taking the Config
# and returning {"base_key": hex, "key_day": "YYYY-MM-DD"} or None before the beacon made a key.
RECORD_PROVIDERS = ("beacon.keys:registration_record", "beacon.idchain:registration_record",
                    "beacon:registration_record")


def load_beacon_record(config: Any) -> dict[str, Any] | None:
    for spec in RECORD_PROVIDERS:
        module, name = spec.split(":")
        try:
            provider = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return provider(config)
    return None
