"""A way in without a working QR code: an ID number typed on the screen, and companions, end to end."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
import time

import pygame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_kiosk
from kiosk.core.config import load_config
from kiosk.credentials.typed import typed_credential
from kiosk.desk import CheckinDesk
from kiosk.core.store import MIGRATIONS, SCHEMA_VERSION, Store
from test_screen_app import click, fonts, key, kiosk, outcome, press_button, shown  # noqa: F401 - fixtures
from upstream_helpers import AUTHORITY_KEYS, provision, start_upstream, write_device_config

NOW_MS = int(dt.datetime(2026, 6, 1, 3, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)


# ---- the checks a typed number gets -------------------------------------------------------------
@pytest.mark.parametrize("number, year, verdict, field", [
    ("079090001234", "", "accepted", None),          # 1990, male, Hồ Chí Minh City
    ("079 090 001 234", "", "accepted", None),       # spaces as people group the digits
    ("079090001234", "1990", "accepted", None),
    ("079090001234", "1991", "rejected", "number-birth-year"),
    ("000090001234", "", "rejected", "province"),
    ("097090001234", "", "rejected", "province"),
    ("079290001234", "", "rejected", "number-birth-year"),  # 2090: born in the future
    ("07909000123", "", "rejected", "number"),       # 11 digits
    ("07909000123x", "", "rejected", "number"),
    ("٠٧٩٠٩٠٠٠١٢٣٤", "", "rejected", "number"),       # Arabic-Indic digits are digits to Python, not to us
    ("9" * 10_000, "", "rejected", "number"),
    ("012345678", "", "rejected", "birth-year"),     # an old CMND cannot be checked alone
    ("012345678", "1975", "accepted", None),
    ("012345678", "1850", "rejected", "birth-year"),
    ("012345678", "2999", "rejected", "birth-year"),
    ("012345678", "19a5", "rejected", "birth-year"),
])
def test_a_typed_number_gets_the_checks_of_the_qr(number, year, verdict, field):
    credential = typed_credential(number, year, NOW_MS)
    assert credential.verdict == verdict
    if field:
        assert credential.reason == "invalid-cccd" and credential.facts["field"] == field
    else:
        assert credential.subject and credential.display_name.endswith(credential.subject.split("|")[0][-3:])
        assert "0790900" not in credential.display_name  # the screen shows only the last digits


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=8), st.integers(0, 2**42))
def test_any_typed_text_gets_a_verdict_never_an_exception(number, year, now_ms):
    credential = typed_credential(number, year, now_ms)
    assert credential.verdict in ("accepted", "rejected")
    if credential.accepted:
        assert credential.subject.split("|")[0].isdigit() and credential.subject.isascii()


def test_a_typed_card_number_is_the_same_visitor_as_the_scanned_card(config):
    from kiosk.pipeline import Pipeline

    pipeline = Pipeline(config)
    scanned = pipeline.handle_payload(
        "079090001234||NGUYỄN VĂN AN|01011990|Nam|12 Lê Lợi, Quận 1, TP.HCM|01012021".encode())
    typed = pipeline.handle_typed("079090001234", "", "manual")
    assert scanned.event == "accepted" and typed.event == "duplicate" and typed.source == "manual"
    pipeline.close()


# ---- the screen: staff button, PIN, keypad; the visitor keypad --------------------------------------
def type_digits(app, digits: str) -> None:
    for digit in digits:
        press_button(app, digit)


def test_staff_open_the_keypad_behind_the_pin_and_type_a_number(kiosk):
    typed = []
    kiosk.on_typed = lambda *args: typed.append(args)
    press_button(kiosk, "entry")
    assert shown(kiosk) == "maintenance" and kiosk.maintenance.stage == "pin"
    type_digits(kiosk, "2468")
    press_button(kiosk, "ok")
    assert shown(kiosk) == "manual-entry" and kiosk.keypad.source == "manual"
    type_digits(kiosk, "07909000123")
    press_button(kiosk, "ok")
    assert shown(kiosk) == "manual-entry" and kiosk.keypad.message == "manual-entry.need_digits"
    type_digits(kiosk, "4")
    press_button(kiosk, "ok")
    assert typed == [("079090001234", "", "manual")]
    assert shown(kiosk) == "ready" and kiosk.keypad.number == ""  # the digits are gone from the screen
    press_button(kiosk, "entry")  # the staff session lasts: the next visitor is typed in without the PIN
    assert shown(kiosk) == "manual-entry"
    key(kiosk, pygame.K_ESCAPE)
    assert shown(kiosk) == "ready"


def test_an_old_cmnd_number_asks_for_the_birth_year(kiosk):
    typed = []
    kiosk.on_typed = lambda *args: typed.append(args)
    kiosk.keypad.staff_until = kiosk.now() + 60
    key(kiosk, pygame.K_k)
    for digit in "012345678":
        key(kiosk, 0, digit)
    key(kiosk, pygame.K_RETURN)
    assert kiosk.keypad.stage == "year" and not typed
    for digit in "197":
        key(kiosk, 0, digit)
    key(kiosk, pygame.K_RETURN)
    assert kiosk.keypad.message == "manual-entry.need_year" and not typed
    key(kiosk, 0, "5")
    key(kiosk, pygame.K_RETURN)
    assert typed == [("012345678", "1975", "manual")]


def test_the_camera_lost_screen_offers_staff_entry(kiosk):
    from kiosk.screen.samples import sample_snapshot

    kiosk.test_status["snapshot"] = sample_snapshot(
        time.time_ns() // 10**6, statuses={"camera": {"state": "lost", "detail": {}, "updated_ms": 0}})
    kiosk.step([])
    assert shown(kiosk) == "camera-lost" and "entry" in kiosk._buttons


def test_a_visitor_keypad_by_config_needs_no_pin(kiosk):
    typed = []
    kiosk.on_typed = lambda *args: typed.append(args)
    kiosk.config = kiosk.config.replace(screen={"visitor_keypad": True})
    kiosk.invalidate()
    kiosk.step([])
    press_button(kiosk, "entry")
    assert shown(kiosk) == "manual-entry" and kiosk.keypad.source == "keypad"
    type_digits(kiosk, "079090001234")
    press_button(kiosk, "ok")
    assert typed == [("079090001234", "", "keypad")]


def test_the_keypad_takes_no_more_digits_than_a_number_has(kiosk):
    kiosk.keypad.open(kiosk.now(), "manual")
    kiosk.step([])
    for _ in range(40):
        key(kiosk, 0, "7")
    key(kiosk, 0, "x")
    key(kiosk, 0, "٣")  # not an ASCII digit
    assert kiosk.keypad.number == "7" * 12
    key(kiosk, pygame.K_BACKSPACE)
    assert kiosk.keypad.number == "7" * 11


def test_the_keypad_closes_when_left_alone(kiosk):
    kiosk.keypad.open(kiosk.now(), "manual")
    kiosk.step([])
    kiosk.test_clock.t += 61
    kiosk.step([])
    assert shown(kiosk) == "ready"


# ---- companions ---------------------------------------------------------------------------------
def test_a_companion_button_after_an_accepted_checkin(kiosk):
    added = []
    kiosk.on_companion = added.append
    accepted = outcome("accepted", name="Nguyễn V. A.")
    kiosk.post_outcome(type(accepted)(**{**accepted.__dict__, "checkin_id": "adult-1"}))
    kiosk.step([])
    press_button(kiosk, "companion")
    key(kiosk, 0, "+")
    assert added == ["adult-1", "adult-1"]
    child = outcome("accepted", kind="companion", companion_of="adult-1")
    for n in (1, 2):
        kiosk.post_outcome(child)
        kiosk.step([])
        assert shown(kiosk) == "accepted" and kiosk.result.title == "companion.title"
        assert ("companion.count", {"n": n}) in kiosk.result.lines
        assert kiosk.result.link == "adult-1"  # a third child is linked to the adult too
    kiosk.post_outcome(outcome("duplicate", "already-checked-in"))
    kiosk.step([])
    assert "companion" not in kiosk._buttons  # no companions for a repeat scan


# ---- the store ----------------------------------------------------------------------------------
def test_migration_v4_keeps_earlier_rows_as_camera_checkins(state_dir):
    conn = sqlite3.connect(state_dir / "kiosk.db", isolation_level=None)
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:3]:
        migration(db)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO checkins (id, venue_id, device_id, direction, utc_ms, monotonic_ns, boot_id, "
                 "clock_synced, kind, visitor_ref) VALUES ('old', 'V', 'D', 'entry', 1, 1, 'b', 1, 'cccd', 'ab')")
    conn.close()
    store = Store.open(state_dir)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert store.checkin("old")["source"] == "camera" and store.checkin("old")["companion_of"] is None
    store.close()


def test_an_upstream_database_from_before_gets_the_new_columns(tmp_path):
    from sync.upstream.storage import Storage

    db = tmp_path / "old-upstream.db"
    conn = sqlite3.connect(db)
    conn.execute("""CREATE TABLE checkins (id TEXT PRIMARY KEY, venue_id TEXT NOT NULL, device_id TEXT NOT NULL,
                    direction TEXT NOT NULL, utc_ms INTEGER NOT NULL, monotonic_ns INTEGER NOT NULL,
                    boot_id TEXT NOT NULL, clock_synced SMALLINT NOT NULL, kind TEXT NOT NULL,
                    visitor_ref TEXT NOT NULL, sealed_subject BLOB, received_ms INTEGER NOT NULL)""")
    conn.execute("INSERT INTO checkins VALUES ('old', 'VENUE-1', 'd', 'entry', 5, 0, 'b', 1, 'cccd', 'ab', NULL, 6)")
    conn.commit()
    conn.close()
    storage = Storage(str(db))
    try:
        storage = Storage(str(db))  # and a second start changes nothing
        assert storage.trace("VENUE-1", 0, 10) == [
            {"id": "old", "venue_id": "VENUE-1", "device_id": "d", "direction": "entry", "utc_ms": 5,
             "clock_synced": True, "kind": "cccd", "visitor_ref": "ab", "sealed_subject": None, "source": "camera",
             "companion_of": None, "received_ms": 6}]
    finally:
        storage.close()


# ---- end to end: typed on the screen's desk, uploaded, unsealed by the authority --------------------
@pytest.mark.system
def test_a_staff_entry_and_a_companion_reach_the_upstream_sealed(tmp_path):
    upstream = start_upstream(str(tmp_path / "upstream.db"))
    try:
        config_file = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state")
        provision(config_file, upstream)
        outcomes = []
        desk = CheckinDesk(load_config(config_file), [outcomes.append])
        desk.typed("012345678", "1975", "manual")
        deadline = time.monotonic() + 30
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
        adult = outcomes[0]
        assert adult.event == "accepted" and adult.source == "manual" and adult.kind == "cmnd"
        desk.companion(adult.checkin_id)
        while len(outcomes) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        desk.stop()
        child = outcomes[1]
        assert child.event == "accepted" and child.kind == "companion" and child.source == "companion"

        store = Store.reader(tmp_path / "state")
        rows = {r["id"]: r for r in store.db["checkins"].rows}
        store.close()
        assert b"012345678" not in rows[adult.checkin_id]["sealed_subject"]  # sealed at rest
        assert rows[child.checkin_id]["companion_of"] == adult.checkin_id

        result = run_kiosk("--config", str(config_file), "sync", "--once")
        assert result.returncode == 0, result.stderr
        key_file = tmp_path / "authority.key"
        key_file.write_text(base64.b64encode(AUTHORITY_KEYS[0]).decode())
        trace = run_kiosk("upstream", "trace", "--db", upstream.db, "--venue", "VENUE-1", "--from", "2020-01-01",
                          "--to", "2100-01-01")
        assert trace.returncode == 0, trace.stderr
        assert "012345678" not in trace.stdout  # the server holds it sealed only
        export = run_kiosk("upstream", "export", "--db", upstream.db, "--venue", "VENUE-1", "--from", "2020-01-01",
                           "--to", "2100-01-01", "--authority-key", str(key_file))
        assert export.returncode == 0, export.stderr
        by_id = {r["id"]: r for r in json.loads(export.stdout)["checkins"]}
        assert by_id[adult.checkin_id]["subject"] == "012345678|1975"
        assert by_id[adult.checkin_id]["source"] == "manual"
        assert by_id[child.checkin_id]["source"] == "companion"
        assert by_id[child.checkin_id]["companion_of"] == adult.checkin_id
        assert by_id[child.checkin_id]["subject"] == f"companion-of:{adult.checkin_id}"
    finally:
        upstream.stop()
