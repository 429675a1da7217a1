"""Files that lie: damaged device files are refused (and reported by `kiosk status`), never silently
replaced; modes are exact whatever the umask; a config or settings file other users can write is
not obeyed; temporary files cannot be hijacked through a planted link; path tricks in config values
get a clear error."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, kiosk_env, run_kiosk
from credential_factory import CCCD
from kiosk.core.privacy import write_private_file


@pytest.fixture
def config_file(config_file):
    """The shared config, without a fixed device id: the id comes from the state directory."""
    config_file.write_text(config_file.read_text().replace('id = "test-device"\n', ""))
    return config_file


def checkins(state_dir) -> int:
    if not (state_dir / "kiosk.db").exists():
        return 0
    with sqlite3.connect(state_dir / "kiosk.db") as conn:
        return conn.execute("SELECT count(*) FROM checkins").fetchone()[0]


def status(config_file) -> tuple[int, list[str]]:
    result = run_kiosk("--config", str(config_file), "status", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)["attention"]


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.system
@pytest.mark.parametrize("name, content", [
    ("device-id", b""),                         # empty: rows with an empty device id could never upload
    ("device-id", b"kiosk-1a\xff\x00"),          # torn
    ("device-secret.key", b"\x01" * 5),         # a secret cut short
])
def test_a_damaged_device_file_refuses_check_ins_and_is_kept(config_file, state_dir, name, content):
    assert run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD).returncode == 0
    before = checkins(state_dir)
    (state_dir / name).write_bytes(content)
    result = run_kiosk("--config", str(config_file), "checkin", "--payload",
                       CCCD.replace("NGUYỄN VĂN AN", "TRẦN VĂN BÌNH"))
    assert result.returncode == 3 and str(state_dir / name) in result.stderr and "damaged" in result.stderr
    assert "Traceback" not in result.stderr
    assert checkins(state_dir) == before
    assert (state_dir / name).read_bytes() == content  # never silently replaced
    code, attention = status(config_file)
    assert code == 1 and any(str(state_dir / name) in a and "damaged" in a for a in attention), attention


@pytest.mark.system
@pytest.mark.parametrize("name, content", [("sync-device.key", b"short"), ("sync-enrollment.json", b'{"device_id": ')])
def test_a_damaged_sync_identity_stops_the_uploader_with_a_clear_error(config_file, state_dir, name, content):
    (state_dir / name).write_bytes(content)
    result = run_kiosk("--config", str(config_file), "sync", "--once")
    assert result.returncode == 3 and str(state_dir / name) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and (state_dir / name).read_bytes() == content
    assert any(str(state_dir / name) in a for a in status(config_file)[1])


@pytest.mark.system
def test_a_symbolic_link_in_place_of_the_secret_is_refused(config_file, state_dir, tmp_path):
    elsewhere = tmp_path / "attacker-chosen-secret"
    elsewhere.write_bytes(b"\x00" * 32)
    (state_dir / "device-secret.key").symlink_to(elsewhere)
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD)
    assert result.returncode == 3 and "symbolic link" in result.stderr and checkins(state_dir) == 0


@pytest.mark.system
def test_modes_are_exact_whatever_the_umask(config_file, state_dir):
    state_dir.chmod(0o755)  # an existing directory made by someone with a looser habit
    proc = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config_file), "checkin", "--payload", CCCD],
                          capture_output=True, text=True, env=kiosk_env(), cwd=ROOT, timeout=120,
                          preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr
    assert mode(state_dir) == 0o700
    for name in ("device-secret.key", "device-id"):
        assert mode(state_dir / name) == 0o600, name
    assert run_kiosk("--config", str(config_file), "status").returncode in (0, 1)
    assert not [a for a in status(config_file)[1] if "open to other users" in a]


@pytest.mark.system
def test_status_reports_secrets_others_can_read(config_file, state_dir):
    assert run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD).returncode == 0
    (state_dir / "device-secret.key").chmod(0o644)
    assert any("device-secret.key is open to other users" in a for a in status(config_file)[1])


def test_write_private_file_cannot_be_led_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "device-secret.key"
    for guess in (target.with_name(target.name + ".tmp"), target.with_name("." + target.name + ".tmp")):
        guess.symlink_to(victim)  # where an attacker expects the temporary file
    old = os.umask(0)
    try:
        write_private_file(target, b"k" * 32)
    finally:
        os.umask(old)
    assert victim.read_text() == "precious"
    assert target.read_bytes() == b"k" * 32 and not target.is_symlink() and mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()) == []


@pytest.mark.system
@pytest.mark.parametrize("where", ["config", "settings", "directory"])
def test_a_file_other_users_can_write_is_not_obeyed(config_file, state_dir, tmp_path, where):
    if where == "config":
        config_file.chmod(0o666)
        culprit = config_file
    elif where == "settings":
        culprit = state_dir / "settings.toml"
        culprit.write_text('[device]\nvenue_id = "ATTACKER-VENUE"\n')
        culprit.chmod(0o646)
    else:
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)  # anyone may swap files in it (no sticky bit)
        culprit = shared / "kiosk.toml"
        culprit.write_text(config_file.read_text())
        config_file = culprit
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD)
    assert "Traceback" not in result.stderr
    if where == "settings":
        # Device-made settings that cannot be trusted are set aside like damaged ones: the last good
        # settings (here: the config file's) stay in force, nothing is recorded at the planted venue,
        # and `kiosk status` names the file.
        with sqlite3.connect(state_dir / "kiosk.db") as conn:
            venues = {v for (v,) in conn.execute("SELECT venue_id FROM checkins")}
        assert "ATTACKER-VENUE" not in venues
        code, attention = status(config_file)
        assert code == 1 and any("other users can" in a and str(culprit) in a for a in attention), attention
        return
    assert result.returncode == 2 and "other users can" in result.stderr and str(culprit) in result.stderr
    assert checkins(state_dir) == 0


@pytest.mark.system
@pytest.mark.parametrize("setting, value, words", [
    ("device.id", "../../etc/passwd", "'device.id'"),
    ("device.venue_id", "V1/../../x", "'device.venue_id'"),
    ("privacy.authority_public_key", "/dev/zero", "32-byte key"),
    ("privacy.authority_public_key", "/etc", "cannot read"),
    ("formats.hc1_trust", "/dev/null", "hc1_trust"),
    ("sync.upstream_url", "file:///etc/passwd", "'sync.upstream_url'"),
])
def test_path_tricks_in_config_values_get_a_clear_error(config_file, state_dir, setting, value, words):
    section, key = setting.split(".")
    text = config_file.read_text()
    config_file.write_text(f'[{section}]\n{key} = "{value}"\n\n' + "\n".join(
        line for line in text.splitlines() if not line.startswith(f"{key} =")).replace(f"[{section}]\n", "", 1)
        if f"[{section}]" in text else text + f'\n[{section}]\n{key} = "{value}"\n')
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD, timeout=60)
    assert result.returncode in (2, 3) and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and checkins(state_dir) == 0


@pytest.mark.system
def test_a_shared_directory_is_never_taken_as_the_state_directory(config_file, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    config_file.write_text(config_file.read_text().replace(str(tmp_path / "state"), str(shared)))
    result = run_kiosk("--config", str(config_file), "checkin", "--payload", CCCD)
    assert result.returncode == 3 and "writable by every user" in result.stderr, result.stderr
    assert mode(shared) == 0o1777 and not (shared / "device-secret.key").exists()
