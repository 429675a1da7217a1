"""A kiosk installs on a Raspberry Pi without a compiler: every device dependency has a wheel for
Raspberry Pi OS 64-bit (aarch64, CPython 3.11, glibc 2.36).

pip resolves pyproject.toml's core and device requirements (and theirs) for that platform, binary wheels only, as
the Pi's pip would; a package with no such wheel makes the resolution fail and names itself. It needs
PyPI (CI has it). What is not on PyPI comes from Raspberry Pi OS's apt, as systemd/install.sh does:
picamera2 (python3-picamera2) and libzbar0 for pyzbar. bluepy, in the `pi` extra only (nearby-phone
counts), is a source distribution on PyPI with no Debian package: it builds a C helper, so that extra
needs gcc and libglib2.0-dev (docs/efficiency.md).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bookworm's glibc is 2.36: wheels built for any older manylinux baseline run on it.
PI_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_31_aarch64",
                "manylinux_2_34_aarch64", "manylinux_2_35_aarch64", "manylinux_2_36_aarch64", "linux_aarch64")


def device_requirements() -> list[str]:
    """The core and ``device`` requirements as pyproject.toml spells them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["dependencies"] + project["optional-dependencies"]["device"]


def test_every_device_dependency_has_an_aarch64_cpython311_wheel(tmp_path):
    requirements = device_requirements()
    assert any(r.startswith("zxing-cpp") for r in requirements)  # the list really is the device's
    platforms = [arg for platform in PI_PLATFORMS for arg in ("--platform", platform)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
         *platforms, "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
         "--abi", "none", "--dest", str(tmp_path), *requirements],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"no aarch64 wheel for a device dependency:\n{result.stderr[-3000:]}"
    wheels = {p.name.split("-")[0].lower().replace("_", "-") for p in tmp_path.glob("*.whl")}
    assert {"numpy", "zxing-cpp", "pygame", "cryptography", "pynacl"} <= wheels
    assert not list(tmp_path.glob("*.tar.gz")), "a source distribution would need a compiler on the Pi"
