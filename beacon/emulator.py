"""BlueZ's emulated controllers (``btvirt -s``) for tests and the demo: a real peer without a radio.

btvirt serves H4 at fixed paths (/tmp/bt-server-le and siblings); every client that connects gets its
own emulated controller, and controllers that scan hear those that advertise. Two wrinkles handled here:

- Its LE controllers open the kernel's AF_ALG crypto sockets at start-up, which some kernels lack. A
  tiny LD_PRELOAD library answers ``socket(AF_ALG, ...)`` with a unix seqpacket socket and lets
  ``bind()`` on family 38 succeed; advertising and scanning never use the crypto. Built with gcc.
- One emulator per /tmp: each instance gets a private mount namespace (``unshare -m``) whose /tmp is
  a directory of our own, so several can run at once and the sockets appear in that directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

AF_ALG_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
/* AF_ALG (38) stand-in for btvirt: an unused unix socket, and a bind that succeeds. */
int socket(int domain, int type, int protocol) {
    static int (*real)(int, int, int);
    if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (domain == 38) return real(AF_UNIX, SOCK_SEQPACKET | (type & (SOCK_CLOEXEC | SOCK_NONBLOCK)), 0);
    return real(domain, type, protocol);
}
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (addr && len >= sizeof(sa_family_t) && addr->sa_family == 38) return 0;
    return real(fd, addr, len);
}
"""
SHIM_NAME = "af_alg_shim.so"
LE_SOCKET = "bt-server-le"


class EmulatorUnavailable(RuntimeError):
    """btvirt cannot run here; the message says what is missing."""


def unavailable_reason() -> str | None:
    for tool, package in (("btvirt", "bluez-test-tools"), ("gcc", "gcc"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    return None


def build_shim(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    source, library = directory / "af_alg_shim.c", directory / SHIM_NAME
    source.write_text(AF_ALG_SHIM_C)
    result = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulatorUnavailable(f"cannot build the AF_ALG shim: {result.stderr.strip()}")
    return library


class Emulator:
    """One ``btvirt -s`` in its own mount namespace, serving sockets in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.log_path = directory / "btvirt.log"

    @property
    def le_socket(self) -> Path:
        return self.directory / LE_SOCKET

    @property
    def transport(self) -> str:
        return f"unix:{self.le_socket}"

    def start(self, timeout: float = 10.0) -> "Emulator":
        reason = unavailable_reason()
        if reason:
            raise EmulatorUnavailable(reason)
        if not (self.directory / SHIM_NAME).exists():
            build_shim(self.directory)
        for stale in self.directory.glob("bt-server-*"):
            stale.unlink()
        # Inside the namespace the directory IS /tmp, so the shim is found at /tmp/<name>.
        script = f'mount --bind "$1" /tmp && LD_PRELOAD=/tmp/{SHIM_NAME} exec btvirt -s'
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(self.directory)]
        if os.geteuid() != 0:
            command.insert(1, "-r")  # an unprivileged user namespace grants the mount
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorUnavailable(f"btvirt exited ({self.process.returncode}): {self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise EmulatorUnavailable(f"btvirt did not start within {timeout:g} s: {self._log_tail()}")

    def _answers(self) -> bool:
        """A controller answers HCI Reset (so the AF_ALG shim worked)."""
        if not self.le_socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.le_socket))
                sock.sendall(bytes([0x01, 0x03, 0x0C, 0x00]))
                return sock.recv(16).startswith(bytes([0x04, 0x0E]))
            except OSError:
                return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace").strip()[-500:] or "no output"
        except OSError:
            return "no output"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
