"""``kiosk status``: is this kiosk in service, and if not, what needs a person's attention.

It reads the state database without changing it (``Store.reader``: SQLite read-only, immutable when
no service has it open), so even run as root it never leaves files the ``kiosk`` user could not open. The exit code is 0 when nothing needs attention, 1 when something does (each reason printed),
3 when there is no readable state database; 2 stays the CLI's "config error".
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.core.clock import boot_id, kernel_clock_synced, local_day_start_ms
from kiosk.core.config import Config
from kiosk.core.statefiles import DEVICE_ID_FILE, DamagedStateFile, parse_device_id, read_state_file, state_file_problems
from kiosk.core.statedb import DB_NAME, read_only_connection
from kiosk.core.records import (BEACON_ON, SYNC_FINE, CameraState, Component, EnrollmentState, Record, StoreState,
                           SyncState, read_records)


# Thresholds for "needs attention"; docs/appliance.md explains each one.
STALE_REPORT_S = 60           # the scanner reports its camera every 10 s: older means it is not running
UPLOAD_BEHIND_S = 3600        # a check-in waiting longer than this for upload
SYNC_SILENT_S = 3600          # no successful upload for this long while check-ins wait
DISK_FREE_MIN_BYTES = 50 * 2**20
DISK_FREE_MIN_FRACTION = 0.05

EXIT_OK, EXIT_ATTENTION, EXIT_NO_STATE = 0, 1, 3


@dataclass
class Report:
    """What ``kiosk status`` found (``facts``) and what needs a person (``attention``)."""

    facts: dict[str, Any] = field(default_factory=dict)
    attention: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.facts.get("store", {}).get("state") == "missing":
            return EXIT_NO_STATE
        return EXIT_ATTENTION if self.attention else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {**self.facts, "attention": self.attention, "healthy": not self.attention}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="health of this kiosk; exit 1 when something needs attention")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args

    report = gather(config_from_args(args))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False, sort_keys=True))
    else:
        print(render_text(report))
    return report.exit_code


# ---- gathering ---------------------------------------------------------------------------------
def gather(config: Config, now_ms: int | None = None, clock_synced: bool | None = None) -> Report:
    """Everything ``kiosk run`` and ``kiosk sync`` check before they work, checked the same way."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    synced = clock_synced if clock_synced is not None else (config.clock.assume_synced or kernel_clock_synced())
    state_dir = config.state_dir
    report = Report()
    f, need = report.facts, report.attention
    f["version"] = __version__
    f["config"] = config.source
    f["state_dir"] = str(state_dir)
    device = config.device
    f["device"] = {"id": device.id or _stored_device_id(state_dir), "venue_id": device.venue_id,
                   "venue_name": device.venue_name, "direction": device.direction}
    if config.settings_problem:
        need.append(f"device settings damaged, the last good ones are in use: {config.settings_problem}")
    _keys(config, need)
    f["clock"] = {"synced": synced}
    if not synced:
        need.append("clock not synchronised: check-ins are marked until NTP reaches a time server")
    _disk(state_dir, f, need)
    need.extend(state_file_problems(state_dir))
    db = state_dir / DB_NAME
    if not db.exists():
        f["store"] = {"state": "missing", "path": str(db)}
        need.append(f"no state database at {db}: the scanner has never run with this state directory")
        return report
    try:
        conn = read_only_connection(state_dir)
        try:
            records = _from_database(conn, now_ms, f, need)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        f["store"] = {"state": "unreadable", "error": str(exc)}
        need.append(f"state database unreadable: {exc}")
        return report
    if device.venue_id:
        _enrollment(config, records, f, need)
    return report


def _keys(config: Config, need: list[str]) -> None:
    """The files and keys ``kiosk run`` loads before it scans: each one it would refuse, named."""
    from kiosk.core.config import ConfigError
    from kiosk.core.privacy import read_key

    where = config.file_source
    if not config.device.venue_id:
        need.append("not provisioned: visitors are refused; scan a provisioning QR code or run `kiosk provision`")
    try:
        if read_key(config.privacy.authority_public_key, "privacy.authority_public_key") is None:
            need.append(f"privacy.authority_public_key is not set: check-ins are refused (set it in {where})")
    except ConfigError as exc:
        need.append(f"{exc}: check-ins are refused (fix it in {where})")
    try:
        if not config.provisioning.authority_key and not config.device.venue_id:
            need.append(f"provisioning.authority_key is not set: provisioning codes are refused (set it in {where})")
        from kiosk.credentials import default_registry

        default_registry(config)  # the provisioning key and the HC1 trust list, as the scanner loads them
    except ConfigError as exc:
        need.append(f"{exc}: `kiosk run` will not start (fix it in {where})")


def _enrollment(config: Config, records: dict, f: dict[str, Any], need: list[str]) -> None:
    from sync.enroll import enrollment_problem

    state, problem = enrollment_problem(config)
    record = records.get(Component.ENROLLMENT)
    f["enrollment"] = {"state": str(state or (EnrollmentState.ENROLLED if not problem else "not-enrolled"))}
    if record is not None and record.state == EnrollmentState.REFUSED and state is None and problem:
        need.append(f"enrollment refused by {record.get('upstream_url', 'the upstream')}: {record.get('error', '')}; "
                    "ask the health authority for a new provisioning code")
    elif state == EnrollmentState.PENDING and record is not None and record.get("error"):
        need.append(f"{problem}; last attempt: {record.get('error')}")
    elif problem and problem not in need:  # a damaged file is already named by state_file_problems
        need.append(problem)


def _from_database(conn: sqlite3.Connection, now_ms: int, f: dict[str, Any], need: list[str]) -> dict:
    records = read_records(conn)
    store = records.get(Component.STORE)
    f["store"] = {"state": str(store.state) if store else "ok", **(store.detail if store else {})}
    if store is not None and store.state == StoreState.RECOVERED:
        need.append(f"state database was unreadable and was set aside as {store.get('kept_as')}")

    total, last = conn.execute("SELECT count(*), max(utc_ms) FROM checkins").fetchone()
    f["checkins"] = {"total": total, "last_age_s": _age(now_ms, last)}
    f["checkins_today"] = conn.execute("SELECT count(*) FROM checkins WHERE utc_ms >= ?",
                                       [local_day_start_ms(now_ms)]).fetchone()[0]  # since local midnight
    counts = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    oldest = conn.execute(
        """SELECT min(c.utc_ms) FROM outbox o JOIN checkins c ON c.id = o.checkin_id
           WHERE o.state IN ('pending', 'inflight')""").fetchone()[0]
    unsent = counts.get("pending", 0) + counts.get("inflight", 0)
    f["queue"] = {"unsent": unsent, "dead": counts.get("dead", 0), "acked": counts.get("acked", 0),
                  "oldest_unsent_age_s": _age(now_ms, oldest)}
    if oldest is not None and now_ms - oldest > UPLOAD_BEHIND_S * 1000:
        need.append(f"{unsent} check-in(s) not uploaded, the oldest {_human(now_ms - oldest)} old")
    if counts.get("dead", 0):
        need.append(f"{counts['dead']} check-in(s) refused by the upstream for good (see `kiosk sync` logs)")
    this, earlier = conn.execute(
        "SELECT coalesce(sum(boot_id = ?), 0), coalesce(sum(boot_id != ?), 0) FROM checkins WHERE clock_synced = 0",
        [boot_id(), boot_id()]).fetchone()
    f["clock"]["unsynced_checkins"] = {"this_boot": this, "earlier_boots": earlier}

    camera = records.get(Component.CAMERA)
    f["camera"] = _component(camera, now_ms)
    if camera is None:
        need.append("camera: no report yet (is kiosk-scanner running?)")
    elif f["camera"]["age_s"] > STALE_REPORT_S:
        need.append(f"camera: last report {_human(f['camera']['age_s'] * 1000)} ago (is kiosk-scanner running?)")
    elif camera.state != CameraState.OK:
        need.append(f"camera {camera.state}: {camera.get('error', 'no frames')}")

    sync = records.get(Component.SYNC)
    f["sync"] = _component(sync, now_ms)
    last_ok = sync.get("last_success_ms") if sync else None
    f["sync"]["last_ok_age_s"] = _age(now_ms, last_ok)
    if sync is not None and sync.state == SyncState.REVOKED:
        need.append("sync: this kiosk was revoked by the health authority: nothing will upload; ask them to enroll it again")
    elif sync is not None and sync.state not in SYNC_FINE | {SyncState.NOT_ENROLLED}:
        need.append(f"sync {sync.state}: {sync.get('last_error') or sync.get('error') or ''}".rstrip(": "))
    elif unsent and (last_ok is None or now_ms - last_ok > SYNC_SILENT_S * 1000) and oldest is not None \
            and now_ms - oldest > SYNC_SILENT_S * 1000:
        need.append("sync: no successful upload for over an hour while check-ins wait")

    beacon = records.get(Component.BEACON)
    f["beacon"] = _component(beacon, now_ms)
    if beacon is not None:
        f["beacon"]["slot"] = beacon.get("slot")
        if beacon.state not in BEACON_ON:
            need.append(f"beacon {beacon.state}: {beacon.get('error') or beacon.get('reason') or ''}".rstrip(": "))
    return records


def _component(record: Record | None, now_ms: int) -> dict[str, Any]:
    if record is None:
        return {"state": "unknown", "age_s": None}
    return {**record.detail, "state": str(record.state), "age_s": _age(now_ms, record.updated_ms)}


def _disk(state_dir: Path, f: dict[str, Any], need: list[str]) -> None:
    probe = state_dir if state_dir.exists() else state_dir.parent
    try:
        usage = os.statvfs(probe)  # what shutil.disk_usage reads, without importing shutil at every status
    except OSError as exc:
        f["disk"] = {"error": str(exc)}
        need.append(f"cannot read free space of {state_dir}: {exc}")
        return
    free, total = usage.f_bavail * usage.f_frsize, usage.f_blocks * usage.f_frsize
    f["disk"] = {"free_bytes": free, "total_bytes": total}
    if state_dir.exists() and (usage.f_flag & os.ST_RDONLY or not os.access(state_dir, os.W_OK)):  # probe is state_dir
        f["disk"]["writable"] = False
        need.append(f"storage read-only: {state_dir} cannot be written, so check-ins are refused "
                    "(check the data partition and its mount)")
    if free < DISK_FREE_MIN_BYTES or free < DISK_FREE_MIN_FRACTION * total:
        need.append(f"disk nearly full: {free // 2**20} MiB free for {state_dir}")


def _stored_device_id(state_dir: Path) -> str:
    """The generated device id, or "" when there is none or it is damaged (reported with the state files)."""
    try:
        return read_state_file(state_dir / DEVICE_ID_FILE, parse_device_id) or ""
    except (DamagedStateFile, OSError):
        return ""


def _age(now_ms: int, then_ms: int | None) -> float | None:
    return None if then_ms is None else round(max(0, now_ms - then_ms) / 1000, 1)


def _human(ms: float) -> str:
    s = int(ms // 1000)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


# ---- text --------------------------------------------------------------------------------------
def render_text(report: Report) -> str:
    f = report.facts

    def age(v: float | None, never: str = "never") -> str:
        return never if v is None else _human(v * 1000) + " ago"

    d = f["device"]
    lines = [
        f"kiosk {f['version']}  device {d['id'] or '?'}  config {f['config']}",
        f"venue       {d['venue_id'] or '(not provisioned)'} {d['venue_name']}".rstrip() + f"  [{d['direction']}]",
    ]
    if "checkins" in f:
        q = f["queue"]
        lines += [
            f"check-ins   {f['checkins_today']} today, {f['checkins']['total']} kept, last {age(f['checkins']['last_age_s'])}",
            f"queue       {q['unsent']} waiting, oldest {age(q['oldest_unsent_age_s'], 'none')}; "
            f"{q['acked']} uploaded, {q['dead']} refused",
            f"sync        {f['sync']['state']}, last success {age(f['sync']['last_ok_age_s'])}",
            f"beacon      {f['beacon']['state']}" + (f", slot {f['beacon']['slot']}" if f['beacon'].get('slot') is not None else ""),
            f"camera      {f['camera']['state']}" + (f", {f['camera']['fps']:.1f} fps" if "fps" in f["camera"] else "")
            + (f" ({f['camera']['backend']})" if "backend" in f["camera"] else ""),
        ]
    lines.append(f"store       {f.get('store', {}).get('state', '?')} in {f['state_dir']}")
    if "free_bytes" in f.get("disk", {}):
        lines.append(f"disk        {f['disk']['free_bytes'] // 2**20} MiB free of {f['disk']['total_bytes'] // 2**20} MiB")
    clock = f["clock"]
    unsynced = clock.get("unsynced_checkins", {})
    lines.append(f"clock       {'synchronised' if clock['synced'] else 'NOT synchronised'}"
                 + (f"; {unsynced['this_boot'] + unsynced['earlier_boots']} check-in(s) with uncorrected time"
                    if unsynced and unsynced["this_boot"] + unsynced["earlier_boots"] else ""))
    lines.append("")
    lines += [f"ATTENTION: {a}" for a in report.attention] or ["OK: nothing needs attention"]
    return "\n".join(lines)
