"""Helpers for the console tests: a real upstream with console users, devices at two venues,
check-ins today and on earlier days, and a logged-in HTTP session."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field

import requests

from conftest import run_kiosk
from kiosk.core.privacy import seal_subject
from sync import protocol as p
from sync.upstream.console import localtime as lt
from upstream_helpers import AUTHORITY_KEYS, RawDevice, Upstream, start_upstream

PASSWORDS = {"op": "operator password 1", "op2": "second operator pw", "viewer": "viewer password 1",
             "locked": "will be locked 1"}
ROLES = {"op": "operator", "op2": "operator", "viewer": "viewer", "locked": "viewer"}
HEARTBEAT = {"software_version": "1.0", "queue_depth": 7, "oldest_unsent_age_s": 3.0, "clock_offset_ms": -120,
             "clock_synced": True, "disk_free_bytes": 10**9, "nearby_phones": 2,
             "components": {"camera": {"state": "ok", "detail": {}}, "beacon": {"state": "advertising", "detail": {}}}}
BEACON_KEY = "4C5224B397F8AB3896781D5AA0F3119F280513F1B592CA280EBDED6357E21084"


@dataclass
class ConsoleRig:
    upstream: Upstream
    devices: dict[str, RawDevice] = field(default_factory=dict)
    today_ids: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.upstream.url

    @property
    def db(self) -> str:
        return self.upstream.db


def add_user(db: str, name: str, role: str, password: str) -> None:
    result = run_kiosk("upstream", "user", "add", "--db", db, "--name", name, "--role", role, "--password-stdin",
                       input=password + "\n")
    assert result.returncode == 0, result.stderr


def start_console(db: str, *extra: str) -> ConsoleRig:
    """An upstream with every test user, a heard-from device and a silent one at CHO-BEN-THANH,
    one at BEN-XE-MIEN-DONG; three check-ins today (sealed identities) and two three days ago."""
    rig = ConsoleRig(start_upstream(db, "127.0.0.1:0", *extra))
    for name, password in PASSWORDS.items():
        add_user(db, name, ROLES[name], password)
    for device_id, venue in (("kiosk-cbt-1", "CHO-BEN-THANH"), ("kiosk-cbt-2", "CHO-BEN-THANH"),
                             ("kiosk-bx-1", "BEN-XE-MIEN-DONG")):
        device = RawDevice(rig.url, device_id)
        assert device.enroll(db, venue).status_code == 200
        rig.devices[device_id] = device
    heard = rig.devices["kiosk-cbt-1"]
    assert heard.send(p.PATH_HEARTBEAT, {**HEARTBEAT, "sent_utc_ms": time.time_ns() // 1_000_000}).status_code == 200
    assert heard.send(p.PATH_BEACON_KEY, {"base_key": BEACON_KEY, "key_day": "2020-08-08"}).status_code == 200
    assert rig.devices["kiosk-bx-1"].send(p.PATH_HEARTBEAT, {**HEARTBEAT, "sent_utc_ms": time.time_ns() // 1_000_000}
                                          ).status_code == 200
    now = time.time_ns() // 1_000_000
    today = lt.day_start_ms(now)
    sealed = [base64.b64encode(seal_subject(f"07909000{i:04d}|Nguyễn Văn {i}", AUTHORITY_KEYS[1])).decode()
              for i in range(3)]
    # A sealed identity whose base64 starts with '+': a spreadsheet would take the CSV cell for a formula.
    sealed.append(base64.b64encode(b"\xfb" + bytes(40)).decode())
    items = [heard.item("CHO-BEN-THANH", utc_ms=min(today + 60_000 * (i + 1), now), sealed_subject=s)
             for i, s in enumerate(sealed)]
    items += [heard.item("CHO-BEN-THANH", utc_ms=lt.day_start_ms(now, 3) + 3_600_000 * (i + 8)) for i in range(2)]
    assert heard.send(p.PATH_CHECKINS, {"checkins": items}).json()["stored"] == len(items)
    rig.today_ids = [i["id"] for i in items[:4]]
    return rig


def login(url: str, name: str, password: str | None = None, **headers: str) -> requests.Session:
    """A requests session logged in through the login form (its CSRF token included)."""
    session = requests.Session()
    session.headers.update(headers)
    page = session.get(url + "/login", timeout=30)
    answer = session.post(url + "/login", data={"csrf": form_token(page.text), "username": name,
                                                "password": password or PASSWORDS[name]}, timeout=30)
    assert answer.url.endswith("/fleet"), answer.text
    return session


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
