"""The units in systemd/: `systemd-analyze verify` has nothing to say, and each unit asks only for what it needs.

`systemd-analyze verify` exits 0 on warnings, so the check is that it prints nothing at all. It also
insists that ExecStart='s program exists and is executable; on this machine /opt/kiosk does not
exist, so the units are verified from a copy whose /opt/kiosk/venv/bin/kiosk points at an
executable in a temporary directory (everything else in the unit is verified as written). It runs
offline: no systemd needs to be running, only the systemd package's unit files (sysinit.target ...).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

UNIT_DIR = ROOT / "systemd"
UNITS = sorted(p.name for p in UNIT_DIR.iterdir() if p.suffix in (".service", ".target", ".timer"))
ONESHOTS = ["kiosk-upstream-retention.service"]  # started by its timer, runs to the end: no watchdog, no restart
SERVICES = [u for u in UNITS if u.endswith(".service") and u not in ONESHOTS]
KIOSK_BINARY = "/opt/kiosk/venv/bin/kiosk"


def verify(unit_dir: Path, tmp_path: Path) -> str:
    """systemd-analyze verify over every unit in unit_dir; returns everything it printed."""
    fake = tmp_path / "bin" / "kiosk"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copy = tmp_path / "units"
    copy.mkdir(exist_ok=True)
    for unit in unit_dir.iterdir():
        if unit.suffix in (".service", ".target", ".timer"):
            (copy / unit.name).write_text(unit.read_text().replace(KIOSK_BINARY, str(fake)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in copy.iterdir())],
                            capture_output=True, text=True, timeout=120)
    return (result.stdout + result.stderr).strip()


@pytest.mark.system
def test_systemd_analyze_verify_prints_nothing(tmp_path):
    assert set(UNITS) == {"kiosk.target", "kiosk-scanner.service", "kiosk-sync.service", "kiosk-beacon.service",
                          "kiosk-upstream.service", "kiosk-upstream-retention.service", "kiosk-upstream-retention.timer"}
    assert verify(UNIT_DIR, tmp_path) == ""


@pytest.mark.system
def test_the_check_catches_a_broken_unit(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for unit in UNITS:
        (broken / unit).write_text((UNIT_DIR / unit).read_text())
    scanner = broken / "kiosk-scanner.service"
    scanner.write_text(scanner.read_text().replace("StartLimitIntervalSec=10min\n", "").replace(
        "[Service]\n", "[Service]\nStartLimitIntervalSec=10min\nRestart=sometimes\n"))
    output = verify(broken, tmp_path / "check")
    assert "Unknown key 'StartLimitIntervalSec' in section [Service]" in output  # belongs in [Unit]
    assert "Failed to parse service restart specifier" in output


def settings(unit: str) -> dict[str, str]:
    """key -> value (last assignment wins, as in systemd), over all sections."""
    out: dict[str, str] = {}
    for line in (UNIT_DIR / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


@pytest.mark.parametrize("unit", SERVICES)
def test_every_service_watches_itself_and_is_confined(unit):
    s = settings(unit)
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert int(s["WatchdogSec"].rstrip("s")) >= 30
    assert s["Restart"] == "always" and "StartLimitIntervalSec" in s and "StartLimitBurst" in s
    assert s["ProtectSystem"] == "strict" and s["NoNewPrivileges"] == "yes" and s["ProtectHome"] == "yes"
    assert s["StateDirectory"] in ("kiosk", "kiosk-upstream") and s["StateDirectoryMode"] == "0700"
    assert "ReadWritePaths" not in s  # nothing writable but the state directory
    if unit != "kiosk-upstream.service":
        assert s["User"] == "kiosk" and s["ExecStart"].startswith(KIOSK_BINARY + " ")
        assert s["WantedBy"] == "kiosk.target" and s["PartOf"] == "kiosk.target"


def test_only_the_scanner_sees_devices_and_only_the_beacon_has_capabilities():
    scanner, sync, beacon = (settings(f"kiosk-{n}.service") for n in ("scanner", "sync", "beacon"))
    assert scanner["ExecStart"].endswith(" run") and sync["ExecStart"].endswith(" sync")
    assert beacon["ExecStart"].endswith(" beacon")
    assert "PrivateDevices" not in scanner and "ProtectClock" not in scanner and "DeviceAllow" not in scanner
    assert set(scanner["SupplementaryGroups"].split()) == {"video", "render", "input", "audio"}
    assert sync["PrivateDevices"] == "yes" and beacon["PrivateDevices"] == "yes"
    assert "SupplementaryGroups" not in sync and "SupplementaryGroups" not in beacon
    for s in (scanner, sync):
        assert s["CapabilityBoundingSet"] == "" and "AmbientCapabilities" not in s
    assert set(beacon["AmbientCapabilities"].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(beacon["CapabilityBoundingSet"].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert "AF_BLUETOOTH" in beacon["RestrictAddressFamilies"]


def test_upstream_retention_runs_daily_as_the_server_confined_as_it():
    """The timer starts the retention once a day (and after a boot that missed it); the service runs as
    the server's account on its state directory (SQLite's file), with the same confinement."""
    timer, retention, server = (settings(u) for u in ("kiosk-upstream-retention.timer", *ONESHOTS,
                                                      "kiosk-upstream.service"))
    assert timer["OnCalendar"].startswith("*-*-* ") and timer["Persistent"] == "true"
    assert timer["WantedBy"] == "timers.target"
    assert retention["Type"] == "oneshot" and "Restart" not in retention and "WantedBy" not in retention
    assert " upstream retention " in retention["ExecStart"] and "${KIOSK_UPSTREAM_KEEP_DAYS}" in retention["ExecStart"]
    shared = ("DynamicUser", "User", "StateDirectory", "StateDirectoryMode", "UMask", "EnvironmentFile",
              "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges",
              "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallArchitectures")
    assert {k: retention.get(k) for k in shared} == {k: server.get(k) for k in shared}


@pytest.mark.parametrize("unit", SERVICES + ONESHOTS)
def test_each_unit_runs_a_real_kiosk_command(unit):
    """ExecStart= names a subcommand the installed `kiosk` really has (with the unit's defaults)."""
    from kiosk.cli import build_parser

    s = settings(unit)
    environment = [line.split("=", 1)[1] for line in (UNIT_DIR / unit).read_text().splitlines()
                   if line.startswith("Environment=")]
    defaults = dict(item.split("=", 1) for line in environment for item in line.split())
    command = s["ExecStart"].replace("$KIOSK_UPSTREAM_ARGS", "")
    for name, value in defaults.items():
        command = command.replace("${%s}" % name, value)
    args = command.split()[1:]
    assert not [a for a in args if "$" in a], args
    parsed = build_parser().parse_args(args)
    assert callable(parsed.func)
