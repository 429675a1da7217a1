"""The typed status contract: one record per component, its state from a closed set, named details.

Every service writes its component's record through ``Store.set_status``, which refuses a state or a
detail this module does not name; the status bar, the maintenance page, ``kiosk status`` and the
upstream heartbeat read the records through :func:`read_records`. So a reader never guesses a
state name or a detail key that no writer produces, and adding a state means adding it here.

Imports nothing outside the standard library: ``kiosk status`` and the screen use it cheaply.
"""

from __future__ import annotations

import json
from dataclasses import field
from enum import StrEnum
from typing import Any, Iterable

from kiosk.core.frozen import Frozen, frozen


class Component(StrEnum):
    CAMERA = "camera"
    STORE = "store"
    SYNC = "sync"
    ENROLLMENT = "enrollment"
    BEACON = "beacon"
    NEARBY = "nearby"  # the beacon's count of nearby Bluezone phones
    CLOCK = "clock"
    CONFIG = "config"


class CameraState(StrEnum):
    OK = "ok"                # frames are coming
    STALLED = "stalled"      # open, but no frame for longer than the read timeout
    LOST = "lost"            # failed or missing; reopened with backoff


class StoreState(StrEnum):
    OK = "ok"
    RECOVERED = "recovered"  # an unreadable database was set aside and a fresh one started


class SyncState(StrEnum):
    STARTING = "starting"
    ONLINE = "online"            # the last exchange with the upstream succeeded
    OFFLINE = "offline"          # no answer, or the upstream's own trouble (5xx, 429): retried
    ERROR = "error"              # the upstream refused the device (signature, unknown device)
    REVOKED = "revoked"          # the upstream revoked this device: nothing will upload
    NOT_ENROLLED = "not-enrolled"


class EnrollmentState(StrEnum):
    PENDING = "pending"      # the intent is saved; the upstream has not answered yet (retried)
    ENROLLED = "enrolled"
    REFUSED = "refused"      # the upstream refused the token: a new provisioning code is needed
    CONFIRM = "confirm"      # a code for another venue was shown once; show it again to move
    DAMAGED = "damaged"      # the enrollment or intent file cannot be read


class BeaconState(StrEnum):
    ADVERTISING = "advertising"
    WAITING_FOR_CLOCK = "waiting-for-clock"
    ADAPTER_MISSING = "adapter-missing"
    ERROR = "error"
    STOPPED = "stopped"


class NearbyState(StrEnum):
    OK = "ok"
    ERROR = "error"


class ClockState(StrEnum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"


class ConfigState(StrEnum):
    OK = "ok"
    DAMAGED = "damaged"      # settings.toml unreadable: the last good settings are in force


STATES: dict[Component, type[StrEnum]] = {
    Component.CAMERA: CameraState, Component.STORE: StoreState, Component.SYNC: SyncState,
    Component.ENROLLMENT: EnrollmentState, Component.BEACON: BeaconState, Component.NEARBY: NearbyState,
    Component.CLOCK: ClockState, Component.CONFIG: ConfigState,
}

_COMMON = {"error", "reason"}
DETAILS: dict[Component, frozenset[str]] = {c: frozenset(_COMMON | set(keys.split())) for c, keys in {
    Component.CAMERA: "backend fps dropped_fps frames decode_ms_p50 retry_in_s failures",
    Component.STORE: "kept_as",
    Component.SYNC: "upstream last_success_ms last_error last_error_ms queue_depth oldest_unsent_age_s "
                    "clock_offset_ms sent dead next_retry_s",
    Component.ENROLLMENT: "venue_id upstream_url attempts next_retry_s",
    Component.BEACON: "transport controller day slot id address interval_ms since_utc_ms attempts retry_in_s",
    Component.NEARBY: "phones window_s rssi_threshold scanned_utc_ms",
    Component.CLOCK: "unsynced_checkins",
    Component.CONFIG: "file kept",
}.items()}

# What readers may conclude from a state: defined once, here.
SYNC_UPLOADING = frozenset({SyncState.ONLINE})
SYNC_FINE = frozenset({SyncState.STARTING, SyncState.ONLINE, SyncState.OFFLINE})  # offline: only its queue age matters
CAMERA_DOWN = frozenset({CameraState.STALLED, CameraState.LOST})
BEACON_ON = frozenset({BeaconState.ADVERTISING})


def checked(component: str, state: str, detail: dict[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    """The record as it may be written; ValueError for a component, state or detail key not in the contract."""
    try:
        name = Component(component)
        value = STATES[name](state)
    except ValueError:
        raise ValueError(f"status contract: no state {state!r} for component {component!r}") from None
    detail = dict(detail or {})
    unknown = set(detail) - DETAILS[name]
    if unknown:
        raise ValueError(f"status contract: {component} has no detail {', '.join(sorted(unknown))}")
    return name.value, value.value, detail


@frozen
class Record(Frozen):
    """One component's last status row: its state, what it said, and when (UTC milliseconds)."""

    component: Component
    state: StrEnum
    detail: dict[str, Any] = field(default_factory=dict)
    updated_ms: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.detail.get(key, default)


def parse_rows(rows: Iterable[tuple[str, str, str, int]]) -> dict[Component, Record]:
    """Records from (component, state, detail JSON, updated_ms) rows; rows outside the contract
    (written by another version) are left out rather than guessed at."""
    records: dict[Component, Record] = {}
    for component, state, detail, updated_ms in rows:
        try:
            name = Component(component)
            value = STATES[name](state)
            parsed = json.loads(detail or "{}")
        except ValueError:
            continue
        if isinstance(parsed, dict):
            records[name] = Record(name, value, {k: v for k, v in parsed.items() if k in DETAILS[name]}, updated_ms)
    return records


def read_records(conn: Any) -> dict[Component, Record]:
    """Every component's record from a state database connection (sqlite3 or sqlite-utils)."""
    return parse_rows(conn.execute("SELECT component, state, detail, updated_ms FROM status").fetchall())
