"""Operator commands that tell the truth: a missing database, an unknown venue or an inverted window is
an error with a reason, never an empty answer; times in and out are Vietnam's local time; the console's
users are managed from the command line, passwords read from standard input."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import run_kiosk
from console_helpers import start_console
from upstream_helpers import AUTHORITY_KEYS


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    rig = start_console(str(tmp_path_factory.mktemp("console") / "upstream.db"))
    yield rig
    rig.upstream.stop()


@pytest.mark.parametrize("command", [["stats"], ["fleet"], ["token", "--operator"], ["revoke", "--device", "d"],
                                     ["user", "list"], ["trace", "--venue", "V", "--from", "0", "--to", "1"]])
def test_a_mistyped_database_path_is_an_error_not_a_new_database(tmp_path, command):
    missing = tmp_path / "typo.db"
    result = run_kiosk("upstream", *command[:2], "--db", str(missing), *command[2:]) if command[0] == "user" \
        else run_kiosk("upstream", command[0], "--db", str(missing), *command[1:])
    assert result.returncode == 2 and "no upstream database at" in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()


def test_trace_and_export_refuse_unknown_venues_and_inverted_windows(rig, tmp_path):
    (tmp_path / "authority.key").write_text(base64.b64encode(AUTHORITY_KEYS[0]).decode())
    for command in (["trace"], ["exposure"], ["export", "--authority-key", str(tmp_path / "authority.key")]):
        unknown = run_kiosk("upstream", *command[:1], "--db", rig.db, "--venue", "CHO-BEN-THAHN", "--from", "2026-01-01",
                            "--to", "2100-01-01", *command[1:])
        assert unknown.returncode == 1 and "'CHO-BEN-THAHN' is not known" in unknown.stderr, unknown.stderr
        assert unknown.stdout == ""
        inverted = run_kiosk("upstream", *command[:1], "--db", rig.db, "--venue", "CHO-BEN-THANH",
                             "--from", "2026-12-02T00:00", "--to", "2026-12-01T00:00", *command[1:])
        assert inverted.returncode == 2, inverted.stderr
        assert "--to (2026-12-01T00:00:00.000+07:00) is before --from (2026-12-02T00:00:00.000+07:00)" in inverted.stderr


def test_times_out_of_range_are_usage_errors(rig):
    for far in ("99999999999999999999", "0001-01-01T00:00+14:00", "yesterday"):
        result = run_kiosk("upstream", "trace", "--db", rig.db, "--venue", "CHO-BEN-THANH", "--from", far, "--to", "0")
        assert result.returncode == 2 and "between 1970 and 9999" in result.stderr and "Traceback" not in result.stderr


def test_trace_in_local_time_and_as_csv(rig):
    window = ["--venue", "CHO-BEN-THANH", "--from", "2000-01-01T00:00", "--to", "2100-01-01T00:00"]
    trace = json.loads(run_kiosk("upstream", "trace", "--db", rig.db, *window).stdout)
    assert trace["from"] == "2000-01-01T00:00:00.000+07:00"  # no offset given: Vietnam time
    assert trace["start_ms"] == 946_659_600_000
    assert trace["count"] == 6 and all(c["scanned_at"].endswith("+07:00") for c in trace["checkins"])
    same = json.loads(run_kiosk("upstream", "trace", "--db", rig.db, "--venue", "CHO-BEN-THANH", "--from",
                                "1999-12-31T17:00:00Z", "--to", "2100-01-01T00:00+07:00").stdout)
    assert same["checkins"] == trace["checkins"]
    csv = run_kiosk("upstream", "trace", "--db", rig.db, *window, "--format", "csv")
    lines = csv.stdout.splitlines()
    assert lines[0] == ("checkin_id,venue_id,device_id,direction,scanned_at,clock_synced,kind,visitor_ref,"
                        "sealed_subject,received_at")
    assert [line.split(",")[0] for line in lines[1:]] == [c["id"] for c in trace["checkins"]]
    assert [line.split(",")[4] for line in lines[1:]] == [c["scanned_at"] for c in trace["checkins"]]
    assert "Nguyễn" not in csv.stdout
    fleet = json.loads(run_kiosk("upstream", "fleet", "--db", rig.db).stdout)
    heard = next(d for d in fleet["devices"] if d["device_id"] == "kiosk-cbt-1")
    assert heard["last_heartbeat_at"].endswith("+07:00") and fleet["silent"] == ["kiosk-cbt-2"]


def test_export_as_csv_unseals_with_the_authority_key(rig, tmp_path):
    (tmp_path / "authority.key").write_text(base64.b64encode(AUTHORITY_KEYS[0]).decode())
    result = run_kiosk("upstream", "export", "--db", rig.db, "--venue", "CHO-BEN-THANH", "--from", "2000-01-01",
                       "--to", "2100-01-01", "--authority-key", str(tmp_path / "authority.key"), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split(",")[8] == "subject" and len(lines) == 7
    assert sum("Nguyễn Văn" in line for line in lines) == 3


def test_user_commands(rig):
    def add(name: str, role: str, password: str):
        return run_kiosk("upstream", "user", "add", "--db", rig.db, "--name", name, "--role", role, "--password-stdin",
                         input=password)

    assert add("ward-7", "viewer", "a long enough pw\n").returncode == 0
    again = add("ward-7", "viewer", "a long enough pw\n")
    assert again.returncode == 2 and "exists" in again.stderr
    short = add("ward-8", "viewer", "short\n")
    assert short.returncode == 2 and "10 to 1024 characters" in short.stderr
    empty = add("ward-8", "viewer", "")
    assert empty.returncode == 2
    bad_name = add("ward 8; drop", "viewer", "a long enough pw\n")
    assert bad_name.returncode == 2 and "user name" in bad_name.stderr
    bad_role = add("ward-8", "admin", "a long enough pw\n")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    no_stdin_flag = run_kiosk("upstream", "user", "add", "--db", rig.db, "--name", "x", "--role", "viewer")
    assert no_stdin_flag.returncode == 2
    users = json.loads(run_kiosk("upstream", "user", "list", "--db", rig.db).stdout)["users"]
    ward = next(u for u in users if u["name"] == "ward-7")
    assert ward["role"] == "viewer" and ward["created"].endswith("+07:00")
    assert "a long enough pw" not in json.dumps(users) and "argon2" not in json.dumps(users)
    assert run_kiosk("upstream", "user", "remove", "--db", rig.db, "--name", "ward-7").returncode == 0
    gone = run_kiosk("upstream", "user", "remove", "--db", rig.db, "--name", "ward-7")
    assert gone.returncode == 1 and "no user 'ward-7'" in gone.stderr
