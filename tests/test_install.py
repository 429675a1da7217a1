"""systemd/install.sh in a throwaway root: the files a Pi would get, twice the same, and a clean uninstall.

What runs for real here: the file layout, the virtual environment (this machine's /usr/bin/python3,
like Bookworm's 3.11, with --system-site-packages), pip installing the project into it offline,
the config from the example, and `systemctl --root` enabling the units (offline symlinks). What is
only recorded ("skip: ..." lines, checked below): apt-get, useradd/usermod, chown, pip downloading
dependencies, systemctl daemon-reload/restart, because this machine is not a Pi booted by systemd.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

INSTALL = ROOT / "systemd" / "install.sh"
UNITS = ["kiosk.target", "kiosk-scanner.service", "kiosk-sync.service", "kiosk-beacon.service"]


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "PIP_", "VIRTUAL_ENV", "PYTHON"))}
    result = subprocess.run(["bash", str(INSTALL), "--root", str(root), "--skip-system", *args],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under root with its type, mode and content (or link target): what "same tree" means."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {oct(st.st_mode & 0o7777)}"
            else:
                out[rel] = f"file {oct(st.st_mode & 0o7777)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pi-root")
    first = install(root)
    after_first = tree_digest(root)
    second = install(root)
    return root, first, second, after_first


def test_running_the_installer_twice_gives_the_same_tree(installed):
    root, _, _, after_first = installed
    after_second = tree_digest(root)
    changed = {k for k in after_first.keys() | after_second.keys() if after_first.get(k) != after_second.get(k)}
    assert not changed, sorted(changed)[:20]
    assert len(after_first) > 200  # the venv and the installed package really are there


def test_the_installed_tree_is_what_a_pi_needs(installed):
    root, _, _, _ = installed
    for unit in UNITS:
        assert (root / "etc/systemd/system" / unit).read_bytes() == (ROOT / "systemd" / unit).read_bytes()
    assert not (root / "etc/systemd/system/kiosk-upstream.service").exists()  # server unit only with --server
    wants = root / "etc/systemd/system/kiosk.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == sorted(UNITS[1:])
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/kiosk.target") == "/etc/systemd/system/kiosk.target"
    assert (root / "etc/kiosk/kiosk.toml").read_bytes() == (ROOT / "kiosk/kiosk.example.toml").read_bytes()
    assert stat.S_IMODE((root / "var/lib/kiosk").stat().st_mode) == 0o700
    assert (root / "opt/kiosk/src/docs/appliance.md").is_file()  # where the units' Documentation= points
    cfg = (root / "opt/kiosk/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg  # so apt's python3-picamera2 imports
    wrapper = (root / "usr/local/bin/kiosk").read_text()
    assert "runuser -u kiosk -- /opt/kiosk/venv/bin/kiosk" in wrapper and "STATE_DIRECTORY" in wrapper
    # The kiosk command is the project's entry point, installed in the venv; its third-party
    # dependencies come from the package index on a real install (skipped here).
    assert "from kiosk.cli import main" in (root / "opt/kiosk/venv/bin/kiosk").read_text()
    version = subprocess.run([str(root / "opt/kiosk/venv/bin/python"), "-c",
                              "import kiosk.cli, kiosk.status, kiosk.core.watchdog; print(kiosk.__version__)"],
                             capture_output=True, text=True, cwd=root,
                             env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert version.stdout.strip() == "0.1.0", version.stderr


def test_system_changes_are_the_documented_ones(installed):
    _, first, second, _ = installed
    skipped = [line[6:] for line in first.stdout.splitlines() if line.startswith("skip: ")]
    assert "apt-get update -q" in skipped
    apt = next(s for s in skipped if "apt-get install" in s).split()
    assert {"python3-picamera2", "libzbar0", "bluez", "fonts-dejavu-core", "python3-venv"} <= set(apt)
    assert any(s.startswith("useradd --system --user-group --home-dir /var/lib/kiosk") and s.endswith(" kiosk")
               for s in skipped)
    assert {f"usermod -a -G {g} kiosk" for g in ("video", "render", "input", "audio")} <= set(skipped)
    assert "chown kiosk:kiosk /var/lib/kiosk" in skipped
    assert "keeping the existing /etc/kiosk/kiosk.toml" in second.stdout


def test_an_existing_config_is_never_overwritten(tmp_path):
    root = tmp_path / "root"
    (root / "etc/kiosk").mkdir(parents=True)
    mine = '[device]\nvenue_id = "CHO-LON-7"\n'
    (root / "etc/kiosk/kiosk.toml").write_text(mine)
    install(root, "--no-start")
    assert (root / "etc/kiosk/kiosk.toml").read_text() == mine


def test_uninstall_keeps_checkins_unless_purged(installed, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(installed[0], root, symlinks=True)
    (root / "var/lib/kiosk/kiosk.db").write_bytes(b"check-ins")
    result = install(root, "--uninstall")
    assert "kept /var/lib/kiosk" in result.stdout
    left = {k for k, v in tree_digest(root).items() if not v.startswith("dir")}
    assert left == {"var/lib/kiosk/kiosk.db", "etc/kiosk/kiosk.toml"}
    assert (root / "var/lib/kiosk/kiosk.db").read_bytes() == b"check-ins"
    assert not (root / "opt/kiosk").exists() and not (root / "usr/local/bin/kiosk").exists()

    result = install(root, "--uninstall", "--purge")
    assert "skip: userdel kiosk" in result.stdout
    assert not {k for k, v in tree_digest(root).items() if not v.startswith("dir")}


def test_server_install_has_only_the_upstream_units(tmp_path):
    root = tmp_path / "server"
    result = install(root, "--server")
    units = sorted(p.name for p in (root / "etc/systemd/system").iterdir() if p.is_file())
    assert units == ["kiosk-upstream-retention.service", "kiosk-upstream-retention.timer", "kiosk-upstream.service"]
    assert (root / "etc/systemd/system/multi-user.target.wants/kiosk-upstream.service").is_symlink()
    assert (root / "etc/systemd/system/timers.target.wants/kiosk-upstream-retention.timer").is_symlink()
    assert "useradd" not in result.stdout  # DynamicUser=: no account to create
    assert "pip install /opt/kiosk/src[server]" in result.stdout


def test_bad_options_are_refused(tmp_path):
    for args in (["--purge"], ["--frobnicate"]):
        result = subprocess.run(["bash", str(INSTALL), "--root", str(tmp_path), "--skip-system", *args],
                                capture_output=True, text=True)
        assert result.returncode == 2 and "install.sh:" in result.stderr


def test_installed_units_verify_against_the_installed_program(installed, tmp_path):
    """systemd-analyze verify on the units as installed, with ExecStart= at the venv's real `kiosk`."""
    root = installed[0]
    program = root / "opt/kiosk/venv/bin/kiosk"
    copy = tmp_path / "units"
    copy.mkdir()
    for unit in UNITS:
        text = (root / "etc/systemd/system" / unit).read_text()
        (copy / unit).write_text(text.replace("/opt/kiosk/venv/bin/kiosk", str(program)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in copy.iterdir())],
                            capture_output=True, text=True, timeout=120)
    assert (result.stdout + result.stderr).strip() == ""
