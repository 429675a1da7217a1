"""Each command imports only what it uses: `kiosk --help` none of the command stacks, `kiosk status`
and `kiosk checkin` neither numpy, OpenCV nor the uploader's, and a kiosk scanning with the synthetic
camera no OpenCV (on a Pi every import is time at each start and memory all day)."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from kiosk.cli import COMMANDS, COMMAND_MODULES, chosen_command
from conftest import ROOT, kiosk_env

HEAVY = ("numpy", "cv2", "sqlite_utils", "requests", "fastapi", "pygame", "asyncio", "cryptography.x509",
         "kiosk.credentials.hc1")  # the vaccine certificate reader: only for a payload that could be one


def loaded_after(*args: str) -> set[str]:
    """The heavy modules a `kiosk ARGS` process has imported when it ends (it exits normally)."""
    probe = ("import atexit, json, sys\n"
             f"atexit.register(lambda: print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr))\n"
             "from kiosk.cli import main\nsys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120,
                            env=kiosk_env(), cwd=ROOT)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_the_table_says_what_each_module_registers():
    for module in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        registered = {action.dest: action.help for action in sub._choices_actions}
        listed = {name: help_text for name, (owner, help_text) in COMMANDS.items() if owner == module}
        assert registered == listed, f"kiosk/cli.py's COMMANDS is out of date for {module}"


@pytest.mark.system
def test_help_lists_every_command_and_imports_no_command_stack():
    result = subprocess.run([sys.executable, "-m", "kiosk", "--help"], capture_output=True, text=True, timeout=60,
                            env=kiosk_env(), cwd=ROOT)
    assert result.returncode == 0
    assert all(name in result.stdout for name in COMMANDS)
    assert loaded_after("--help") == set()


@pytest.mark.parametrize("argv, command", [
    (["status"], "status"), (["--config", "status", "checkin"], "checkin"), (["--log-level=DEBUG", "sync"], "sync"),
    (["--state-dir", "/tmp/x", "run", "--headless"], "run"), (["--version"], None), ([], None)])
def test_the_command_is_found_past_the_global_options(argv, command):
    assert chosen_command(argv) == command


@pytest.mark.system
def test_status_and_checkin_load_no_frame_upload_or_certificate_stack(config_file):
    assert loaded_after("--config", str(config_file), "status") == set()
    assert loaded_after("--config", str(config_file), "checkin", "--payload", "not a code") == set()
    # a code that could be a certificate is still read as one: its reader is loaded for it
    assert {"kiosk.credentials.hc1"} <= loaded_after("--config", str(config_file), "checkin", "--payload", "HC1:6BFOXN")


@pytest.mark.system
def test_a_kiosk_on_the_synthetic_camera_never_loads_opencv(config_file):
    loaded = loaded_after("--config", str(config_file), "--log-level", "WARNING", "run", "--headless", "--seconds", "3")
    assert "numpy" in loaded  # it did decode frames
    assert "cv2" not in loaded and "requests" not in loaded


@pytest.mark.system
def test_an_unknown_command_is_a_usage_error_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "kiosk", "no-such-command"], capture_output=True, text=True,
                            timeout=60, env=kiosk_env(), cwd=ROOT)
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_the_uploader_draining_its_queue_loads_no_frame_or_migration_stack(tmp_path):
    """sqlite-utils (and its numpy) once came in through the uploader's first status read: 20 MB of its 50."""
    from nacl.public import PrivateKey

    from kiosk.core.store import Store
    from sync.backlog import seed_backlog
    from kiosk.sync_bench import VENUE, _stop, enrolled_device, start_upstream

    upstream, url = start_upstream(str(tmp_path / "upstream.db"))
    try:
        config = enrolled_device(tmp_path, str(tmp_path / "upstream.db"), url, "startup-device")
        store = Store.open(tmp_path / "state")
        seed_backlog(store, 50, VENUE, "startup-device", bytes(PrivateKey.generate().public_key))
        store.close()
        loaded = loaded_after("--config", str(config), "--log-level", "WARNING", "sync", "--once")
    finally:
        _stop(upstream)
    assert "requests" in loaded  # it did upload
    assert not {"numpy", "sqlite_utils", "cv2", "fastapi", "pygame"} & loaded
