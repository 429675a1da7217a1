"""Manual entry: `kiosk checkin` records exactly what a scan would."""

import json
import re

from conftest import run_kiosk
from kiosk.core.store import Store
from scanner.camera.synthetic import demo_token

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_checkin_payload_prints_id_after_commit(config_file, state_dir):
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", demo_token(1).decode())
    assert result.returncode == 0, result.stderr
    checkin_id = result.stdout.strip()
    assert UUID.fullmatch(checkin_id)
    store = Store.open(state_dir)
    assert store.checkin(checkin_id)["kind"] == "personal"
    store.close()

    again = run_kiosk("--config", str(config_file), "checkin", "--payload", demo_token(1).decode())
    assert again.returncode == 1 and again.stdout == ""
    assert "duplicate: already-checked-in" in again.stderr


def test_checkin_rejects_unknown_code_with_reason(config_file):
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", "hello")
    assert result.returncode == 1 and "rejected: not-recognised" in result.stderr


def test_checkin_from_file_gives_one_result_line_per_payload(config_file, state_dir, tmp_path):
    sheet = tmp_path / "sheet.txt"
    sheet.write_bytes(b"\r\n".join([demo_token(1), b"garbage", b"", demo_token(2), demo_token(1),
                                     b"\xff\xfe binary"]) + b"\r\n")
    result = run_kiosk("--config", str(config_file), "checkin", "--from-file", str(sheet))
    assert result.returncode == 1  # not every line was accepted
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["event"]) for r in lines] == [
        (1, "accepted"), (2, "rejected"), (4, "accepted"), (5, "duplicate"), (6, "rejected")]
    store = Store.open(state_dir)
    assert store.checkin_ids() == {lines[0]["checkin_id"], lines[2]["checkin_id"]}
    store.close()


def test_checkin_on_unwritable_state_reports_error_exit_3(config_file, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = run_kiosk("--config", str(config_file), "--state-dir", str(blocker / "state"),
                       "checkin", "--payload", demo_token(1).decode())
    assert result.returncode == 3
    assert "error: storage-unavailable" in result.stderr and "Traceback" not in result.stderr
