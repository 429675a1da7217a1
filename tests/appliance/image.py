"""The appliance VM's disks: a Debian 12 image and a Python wheelhouse, built once and cached.

Each is kept under the cache directory in a folder named after a hash of its recipe, so a second run
(or CI on the same machine) reuses it and a changed recipe builds a new one. Everything is built in a
``*.tmp-<pid>`` folder and renamed when complete: a half-built image is never reused.

No package mirror or index is named here: debootstrap gets the Debian mirror this machine's apt
uses, and the wheelhouse comes from this machine's pip as configured.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
# What a Raspberry Pi OS Lite system has that the appliance needs, on plain Debian 12 (DESIGN.md 6b):
# systemd and udev; the kernel (hci_vhci, vivid, virtio-gpu); BlueZ and its emulator tools;
# Python with venv/pip; zbar and a font; glib for bluepy's helper; Mesa's GBM/EGL for SDL's kmsdrm;
# Debian's pygame (its SDL has kmsdrm). The guest has no network: install.sh's apt packages are here.
PACKAGES = [
    "systemd-sysv", "linux-image-amd64", "udev", "kmod", "dbus", "bluez", "bluez-test-tools", "v4l-utils",
    "python3", "python3-venv", "python3-pip", "libzbar0", "fonts-dejavu-core", "libglib2.0-0", "sqlite3",
    "libgbm1", "libegl1", "libgles2", "libgl1-mesa-dri", "libegl-mesa0", "procps", "python3-pygame",
]
HERE = Path(__file__).resolve().parent
OVERLAY = HERE / "overlay"  # files added to the image: the VM's "hardware" units and the check agent
IMAGE_SIZE = "4G"


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the log to read."""


def cache_root() -> Path:
    return Path(os.environ.get("KIOSK_APPLIANCE_CACHE", "/var/cache/kiosk-appliance"))


def host_debian_mirror() -> str:
    """The Debian archive URL this machine's apt is configured with (deb822 or one-line format)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line + " ")
                if m:
                    return m.group(1)
    raise BuildError(f"image: no Debian {SUITE} archive in this machine's apt configuration (/etc/apt/sources.list*)")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()[:16]


def _tree_digest(root: Path) -> bytes:
    items = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            items.append(f"L {rel} {os.readlink(path)}")
        elif path.is_file():
            items.append(f"F {rel} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return "\n".join(items).encode()


def _run(step: str, cmd: list[str], log: Path, timeout: float, **kw) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, **kw)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{step}: no result after {timeout:.0f} s; read {log}") from None
    if proc.returncode != 0:
        raise BuildError(f"{step}: exit code {proc.returncode}; read {log}")


def _complete(final: Path, build) -> Path:
    """``final`` if it exists, else ``build(tmp)`` into a temporary folder renamed to ``final``."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(final.name + ".tmp-*"):  # an earlier build that died half way
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    build(tmp)
    tmp.rename(final)
    return final


def ensure_rootfs(logs: Path) -> Path:
    """debootstrap's Debian tree, as it left it (the slow part: minutes)."""
    key = _digest(SUITE.encode(), ",".join(PACKAGES).encode())

    def build(tmp: Path) -> None:
        mirror = host_debian_mirror()
        _run("image: debootstrap", ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                                    SUITE, str(tmp / "root"), mirror], logs / "debootstrap.log", 3600)

    return _complete(cache_root() / f"rootfs-{key}", build) / "root"


def ensure_image(logs: Path) -> Path:
    """A folder with ``base.img`` (ext4, raw), ``vmlinuz`` and ``initrd.img``; never modified once made."""
    root = ensure_rootfs(logs)
    key = _digest(str(root).encode(), _tree_digest(OVERLAY), IMAGE_SIZE.encode())

    def build(tmp: Path) -> None:
        log = logs / "image.log"
        tree = tmp / "root"
        _run("image: copy the Debian tree", ["cp", "-a", str(root), str(tree)], log, 600)
        _run("image: add the VM's units", ["cp", "-a", f"{OVERLAY}/.", str(tree)], log, 60)
        (tree / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
        (tree / "etc/hostname").write_text("kiosk-vm\n")
        for timer in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
            (tree / "etc/systemd/system" / timer).unlink(missing_ok=True)
            (tree / "etc/systemd/system" / timer).symlink_to("/dev/null")  # masked: no work the checks did not ask for
        boot = tree / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise BuildError(f"image: no kernel or initrd in {boot}; read {logs / 'debootstrap.log'}")
        shutil.copy(kernels[-1], tmp / "vmlinuz")
        shutil.copy(initrds[-1], tmp / "initrd.img")
        _run("image: mkfs.ext4", ["mkfs.ext4", "-q", "-L", "kiosk-root", "-d", str(tree), str(tmp / "base.img"),
                                  IMAGE_SIZE], log, 900)
        shutil.rmtree(tree)

    return _complete(cache_root() / f"image-{key}", build)


def ensure_wheelhouse(src: Path, python: Path, logs: Path) -> Path:
    """Wheels for the project's ``pi`` extra (bluepy built here: it has no wheel) and the build tools.

    Made with this machine's pip as configured, for this machine's CPython, which is the guest's
    (Debian 12, CPython 3.11, x86_64).
    """
    setup = (src / "pyproject.toml").read_bytes()
    key = _digest(setup, subprocess.run([str(python), "-c", "import sys; print(sys.version)"],
                                        capture_output=True, check=True).stdout)

    def build(tmp: Path) -> None:
        log = logs / "wheelhouse.log"
        _run("wheelhouse: pip wheel", [str(python), "-m", "pip", "wheel", "-q", "--wheel-dir", str(tmp),
                                       f"{src}[pi]", "setuptools", "wheel"], log, 1800)
        for own in tmp.glob("venue_kiosk-*.whl"):  # the project itself is installed from its source
            own.unlink()

    return _complete(cache_root() / f"wheelhouse-{key}", build)
