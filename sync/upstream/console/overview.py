"""What the console's pages show, read from the upstream's tables: venues with their counts per
local day, devices and beacon keys; the fleet with silent devices first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync.upstream.console import localtime as lt
from sync.upstream.storage import Storage, now_ms

CHART_DAYS = 14


@dataclass
class Venue:
    venue_id: str
    today: int = 0
    week: int = 0
    per_day: list[tuple[str, int]] = field(default_factory=list)  # (local date, check-ins), oldest first
    devices: list[str] = field(default_factory=list)
    beacon_keys: list[dict[str, Any]] = field(default_factory=list)


def venue_ids(storage: Storage) -> set[str]:
    """Every venue the upstream knows: enrolled at, or with check-ins."""
    rows = storage._query("SELECT venue_id FROM device_venues UNION SELECT venue_id FROM devices "
                          "UNION SELECT DISTINCT venue_id FROM checkins")
    return {r["venue_id"] for r in rows}


def venue_known(storage: Storage, venue_id: str) -> bool:
    return bool(storage._query(
        "SELECT 1 AS x FROM device_venues WHERE venue_id = ? UNION SELECT 1 AS x FROM devices WHERE venue_id = ? "
        "UNION SELECT 1 AS x FROM checkins WHERE venue_id = ?", [venue_id, venue_id, venue_id]))


def venues(storage: Storage, only: str | None = None, at_ms: int | None = None) -> list[Venue]:
    at = now_ms() if at_ms is None else at_ms
    first_day = lt.day_start_ms(at, CHART_DAYS - 1)
    week = lt.week_start_ms(at)
    today = lt.day_start_ms(at)
    since = min(first_day, week)
    offset = lt.utc_offset_ms()
    where, params = ("AND venue_id = ?", [only]) if only else ("", [])
    counts = storage._query(
        f"SELECT venue_id, (utc_ms + ?) / {lt.DAY_MS} AS day, count(*) AS n FROM checkins "
        f"WHERE utc_ms >= ? AND utc_ms <= ? {where} GROUP BY 1, 2", [offset, since, at, *params])
    by_id = {v: Venue(v) for v in sorted({only} if only else venue_ids(storage))}
    day_of = {(lt.day_start_ms(at, back) + offset) // lt.DAY_MS: back for back in range(CHART_DAYS)}
    for venue in by_id.values():
        venue.per_day = [(lt.local(lt.day_start_ms(at, back)).strftime("%Y-%m-%d"), 0)
                         for back in reversed(range(CHART_DAYS))]
    for r in counts:
        venue = by_id.setdefault(r["venue_id"], Venue(r["venue_id"]))
        day_ms = int(r["day"]) * lt.DAY_MS - offset
        if day_ms >= today:
            venue.today += r["n"]
        if day_ms >= week:
            venue.week += r["n"]
        back = day_of.get(int(r["day"]))
        if back is not None and venue.per_day:
            index = CHART_DAYS - 1 - back
            venue.per_day[index] = (venue.per_day[index][0], venue.per_day[index][1] + r["n"])
    for r in storage._query("SELECT device_id, venue_id FROM device_venues ORDER BY device_id"):
        if r["venue_id"] in by_id:
            by_id[r["venue_id"]].devices.append(r["device_id"])
    for r in storage._query("SELECT venue_id, device_id, base_key, key_day, registered_ms FROM beacon_keys "
                            "ORDER BY key_day DESC, device_id"):
        if r["venue_id"] in by_id:
            by_id[r["venue_id"]].beacon_keys.append(r)
    return list(by_id.values())


def fleet(storage: Storage, silent_after_s: int) -> list[dict[str, Any]]:
    """Devices for the fleet page: silent ones first, then by venue and id; the heartbeat's fields
    a person reads (queue, clock, camera, beacon) lifted out."""
    devices = storage.fleet(silent_after_s)
    for d in devices:
        beat = d["heartbeat"] or {}
        components = beat.get("components") or {}
        d["queue_depth"] = beat.get("queue_depth")
        d["clock_offset_ms"] = beat.get("clock_offset_ms")
        d["camera"] = (components.get("camera") or {}).get("state")
        d["beacon"] = (components.get("beacon") or {}).get("state")
        d["software_version"] = beat.get("software_version")
    return sorted(devices, key=lambda d: (not d["silent"], d["revoked_ms"] is not None, d["venue_id"], d["device_id"]))
