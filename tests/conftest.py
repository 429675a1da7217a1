"""Shared fixtures: a fresh state directory and config per test, the kiosk command as a subprocess, the
one polling helper, tools required (never skipped), and the two lanes.

The lanes: ``./dev test`` runs the fast lane (in-process, fake clocks); ``./dev test --system`` the
system lane (real servers, emulators, subprocesses, faults, browser); ``./dev test --all`` both, as
CI does. A test is in the system lane when it is marked ``system``, its module is in SYSTEM_MODULES,
or it uses a fixture in SYSTEM_FIXTURES. Naming files or tests on the command line runs them whatever
their lane.
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

TEST_PATTERN = r"DEMO-HQR-[0-9A-F]{12}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def authority_keys() -> tuple[bytes, bytes]:
    """The health authority's sealing key pair (private, public); devices get only the public one."""
    from kiosk.core.privacy import new_sealing_keypair

    return new_sealing_keypair()


@pytest.fixture
def config_file(tmp_path: Path, state_dir: Path, authority_keys: tuple[bytes, bytes]) -> Path:
    """A provisioned device's config: demo venue, synthetic camera, demo token pattern, authority key."""
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f"""
[device]
id = "test-device"
venue_id = "VENUE-1"
venue_name = "Chợ Bến Thành"
state_dir = "{state_dir}"

[camera]
backend = "synthetic"
fps = 30

[clock]
assume_synced = true

[privacy]
authority_public_key = "{base64.b64encode(authority_keys[1]).decode()}"

[[formats.personal]]
name = "demo-health-qr"
pattern = '{TEST_PATTERN}'
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(config_file: Path):
    from kiosk.core.config import load_config

    return load_config(config_file)


def kiosk_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_kiosk(*args: str, timeout: float = 120, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m kiosk ARGS`` from this checkout and capture its output."""
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True, text=True,
                          timeout=timeout, input=input, env=kiosk_env(**env), cwd=ROOT)


def start_kiosk(*args: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kiosk", *args], env=kiosk_env(), cwd=ROOT, **popen)


@pytest.fixture(scope="session")
def bt_emulator(tmp_path_factory):
    """BlueZ's btvirt, in its own mount namespace (beacon/emulator.py); one for the whole session."""
    from beacon.emulator import Emulator, unavailable_reason

    missing = unavailable_reason()  # btvirt, gcc (its AF_ALG shim), unshare: each with its package
    if missing:
        pytest.fail(f"{missing}: apt-get install it  (./dev test installs it)")
    with Emulator(tmp_path_factory.mktemp("btvirt")) as emulator:
        yield emulator


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str] = "the condition",
               every: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy and return it; past ``timeout`` seconds fail the test saying
    what was awaited (a callable ``what`` is asked then, so it can describe the state). The one polling
    helper of the suite: none gives up silently."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def require_file(pattern: str, what: str, package: str) -> Path:
    """The newest file matching the glob ``pattern``; when there is none, the test fails with the command
    that installs it (./dev test installs every package the suite needs): a missing tool is never a skip."""
    found = sorted(glob.glob(pattern), key=lambda p: (len(p), p))  # postgresql/9 before postgresql/15
    if not found:
        pytest.fail(f"{what} is missing ({pattern}): apt-get install {package}  (./dev test installs it)")
    return Path(found[-1])


def require_tool(name: str, package: str) -> str:
    """The path of command ``name``, or the test fails with the command that installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package}  (./dev test installs it)")
    return path


# ---- the two lanes ---------------------------------------------------------------------------------
# Modules whose every test starts real processes: servers, emulators, the kiosk command, the browser.
SYSTEM_MODULES = frozenset({
    "test_attacks_cli.py",
    "test_beacon_demo.py",
    "test_beacon_emulator.py",
    "test_checkin.py",
    "test_console_alerts.py",
    "test_console_browser.py",
    "test_console_cli.py",
    "test_console_http.py",
    "test_crash_safety.py",
    "test_credentials_paths.py",
    "test_demo.py",
    "test_install.py",
    "test_logs.py",
    "test_pi_wheels.py",
    "test_provisioning_sheet.py",
    "test_readonly_root.py",
    "test_run_events.py",
    "test_scan_image.py",
    "test_sync_client.py",
    "test_sync_faults.py",
    "test_upstream_fleet.py",
    "test_upstream_fuzz.py",
    "test_upstream_postgres.py",
})
# Fixtures that start a real server or emulator.
SYSTEM_FIXTURES = frozenset({"bt_emulator", "upstream", "postgres", "pg_url", "rig", "browser", "receiver"})


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server (sync/upstream/pgtemp.py) shared by one test module."""
    from sync.upstream.pgtemp import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres):
    """A fresh database per test on the module's server."""
    import uuid

    return postgres.create_database("kiosk_" + uuid.uuid4().hex[:12])


def pytest_addoption(parser: pytest.Parser) -> None:
    lanes = parser.getgroup("lanes", "the two test lanes (tests/conftest.py)")
    lanes.addoption("--system", action="store_true",
                    help="the system lane only: real servers, emulators, subprocesses, faults, browser")
    lanes.addoption("--all", action="store_true", dest="all_lanes", help="both lanes")


def in_system_lane(item: pytest.Item) -> bool:
    return (item.get_closest_marker("system") is not None or item.path.name in SYSTEM_MODULES
            or not SYSTEM_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if in_system_lane(item) and item.get_closest_marker("system") is None:
            item.add_marker(pytest.mark.system)
    named = config.args_source != pytest.Config.ArgsSource.TESTPATHS  # files or tests named: run them
    if config.getoption("all_lanes") or config.getoption("markexpr") or named:
        return
    system = config.getoption("system")
    keep, other = [], []
    for item in items:
        (keep if (item.get_closest_marker("system") is not None) == system else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = keep
