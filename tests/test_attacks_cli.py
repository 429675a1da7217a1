"""Every CLI boundary answers hostile input with a clear message and an exit code, never a traceback,
and records nothing it should not."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from conftest import ROOT, kiosk_env, run_kiosk
from credential_factory import CCCD, CCCD_FEMALE


def checkins(state_dir) -> int:
    if not (state_dir / "kiosk.db").exists():
        return 0
    with sqlite3.connect(state_dir / "kiosk.db") as conn:
        return conn.execute("SELECT count(*) FROM checkins").fetchone()[0]


def kiosk_bytes(*args: bytes | str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI with raw argument bytes, as a shell passes them."""
    argv = [os.fsencode(a) if isinstance(a, str) else a for a in args]
    return subprocess.run([os.fsencode(sys.executable), b"-m", b"kiosk", *argv], capture_output=True,
                          env=kiosk_env(), cwd=ROOT, timeout=timeout)


def test_a_payload_that_is_not_utf8_is_judged_not_a_traceback(config_file, state_dir):
    for cmd in (b"checkin", b"inspect"):
        args = (b"--config", bytes(config_file), cmd, *((b"--payload",) if cmd == b"checkin" else ()), b"DEMO\xff\xfeHQR")
        result = kiosk_bytes(*args)
        assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    assert b"not-recognised" in kiosk_bytes(b"--config", bytes(config_file), b"checkin", b"--payload", b"\xc3\x28").stderr
    assert checkins(state_dir) == 0


def test_from_file_that_is_missing_a_directory_or_a_device(config_file, state_dir, tmp_path):
    for path, words in ((tmp_path / "absent.txt", "No such file"), (tmp_path, "Is a directory"),
                        ("/dev/zero", "not a regular file")):
        result = run_kiosk("--config", str(config_file), "checkin", "--from-file", str(path), timeout=60)
        assert result.returncode == 2 and f"{path}: cannot read" in result.stderr and words in result.stderr
        assert "Traceback" not in result.stderr
    assert checkins(state_dir) == 0


def test_an_over_long_line_is_refused_as_too_large_and_the_others_still_count(config_file, state_dir, tmp_path):
    sheet = tmp_path / "sheet.txt"
    with open(sheet, "wb") as fh:
        fh.write(CCCD.encode() + b"\n")
        fh.write(b"A" * (8 * 2**20) + b"\r\n")  # 8 MB on one line: more than any QR code holds
        fh.write(CCCD_FEMALE.encode() + b"\n")
        fh.write(b"B" * 2955)  # just over the limit (2953 + a line ending), no newline at the end
    result = run_kiosk("--config", str(config_file), "checkin", "--from-file", str(sheet))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["line"], x["event"], x["reason"]) for x in lines] == [
        (1, "accepted", "ok"), (2, "rejected", "too-large"), (3, "accepted", "ok"), (4, "rejected", "too-large")]
    assert result.returncode == 1 and checkins(state_dir) == 2


def test_inspect_file_boundaries(config_file, tmp_path):
    for path in (tmp_path, tmp_path / "absent"):
        result = run_kiosk("--config", str(config_file), "inspect", "--file", str(path))
        assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_a_config_path_that_is_a_directory_or_not_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[device]\nid = \"\xff\"\n")
    for path, words in ((tmp_path, "is a directory"), (bad, "not UTF-8"), (tmp_path / "none.toml", "cannot read")):
        result = run_kiosk("--config", str(path), "status")
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
