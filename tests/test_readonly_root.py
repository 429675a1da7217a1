"""A read-only root: the kiosk writes only in its state directory (the persistent data partition).

The test gives a real `kiosk run`, `kiosk checkin` and `kiosk status` a private mount namespace in
which / (so HOME, the working directory, /tmp and the program itself) and /dev/shm are read-only
and only the state directory is writable, as on an appliance with an overlay or read-only root.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, kiosk_env

READ_ONLY = """
mount --bind "$STATE" "$STATE"
mount -o remount,bind,ro /
mount -o remount,bind,ro /dev/shm
touch /tmp/probe 2>/dev/null && { echo "root is still writable" >&2; exit 99; }
cd "$HOME"
exec "$@"
"""


def run_read_only(state_dir, home, *args: str) -> subprocess.CompletedProcess:
    env = kiosk_env(STATE=str(state_dir), HOME=str(home), PYTHONDONTWRITEBYTECODE="")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", READ_ONLY, "sh",
                           sys.executable, "-m", "kiosk", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_kiosk_runs_with_only_the_state_directory_writable(config_file, state_dir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run = run_read_only(state_dir, home, "--config", str(config_file), "run", "--seconds", "8")
    assert run.returncode == 0, run.stderr
    assert "Read-only file system" not in run.stderr
    typed = run_read_only(state_dir, home, "--config", str(config_file), "checkin", "--payload", "DEMO-HQR-0000000000FF")
    assert typed.returncode == 0, typed.stderr
    status = run_read_only(state_dir, home, "--config", str(config_file), "status", "--json")
    report = json.loads(status.stdout)
    assert report["checkins"]["total"] >= 3  # the scripted visitors and the typed one, all committed
    assert report["camera"]["state"] == "ok"
    assert list(home.iterdir()) == []
