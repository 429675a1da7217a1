"""Shared fixtures: a fresh state directory and config per test, and the kiosk command as a subprocess."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

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
    from beacon.emulator import Emulator

    with Emulator(tmp_path_factory.mktemp("btvirt")) as emulator:
        yield emulator
