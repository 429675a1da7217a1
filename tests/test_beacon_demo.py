import re
from pathlib import Path

from conftest import run_kiosk


def processes_mentioning(text):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def test_demo_runs_the_beacon_on_an_emulated_controller(tmp_path):
    result = run_kiosk("--state-dir", str(tmp_path), "demo", "--headless", "--seconds", "4")
    assert result.returncode == 0, result.stderr
    m = re.search(r"demo: beacon advertising Bluezone ID ([0-9A-F]{24}) \(slot (\d+)\) on an emulated controller",
                  result.stderr)
    assert m, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("demo summary:")
    assert (tmp_path / "beacon-base-key.json").exists()
    assert not processes_mentioning(str(tmp_path / "bt-emulator"))  # btvirt stopped with the demo


def test_demo_says_so_when_no_emulator_can_run(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = run_kiosk("--state-dir", str(tmp_path / "state"), "demo", "--headless", "--seconds", "2",
                       PATH=str(empty_path))
    assert result.returncode == 0, result.stderr
    assert "demo: beacon not started: no emulated Bluetooth controller (btvirt is not installed" in result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("demo summary:")
