"""systemd's notify protocol as systemd would see it: datagrams on a socket we bind ourselves."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, kiosk_env
from kiosk.core.config import load_config
from kiosk.health import ScannerHealth
from kiosk.pipeline import Pipeline
from kiosk.service import run_scanner
from kiosk.core.watchdog import LoopWatch, Notifier
from scanner.camera import Camera, CameraMissing
from scanner.camera.synthetic import SyntheticCamera


class NotifySocket:
    """What systemd listens on: a unix datagram socket; records (monotonic time, message) pairs."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def times_of(self, line: str) -> list[float]:
        return [t for t, m in self.messages if line in m.split("\n")]

    def statuses(self) -> list[str]:
        return [part[7:] for _, m in self.messages for part in m.split("\n") if part.startswith("STATUS=")]


def run_kiosk_under_notify(config_file: Path, address: str, seconds: float, watchdog_usec: int = 1_000_000):
    env = kiosk_env(NOTIFY_SOCKET=address, WATCHDOG_USEC=str(watchdog_usec))
    return subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config_file), "run", "--headless",
                           "--seconds", str(seconds)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.system
def test_kiosk_run_sends_ready_then_regular_watchdog_pings(config_file, tmp_path):
    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        result = run_kiosk_under_notify(config_file, listener.address, seconds=6)
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert listener.messages, "no datagram reached the notify socket"
    first = listener.messages[0][1].split("\n")
    assert "READY=1" in first
    assert len(listener.times_of("READY=1")) == 1
    pings = listener.times_of("WATCHDOG=1")
    # WATCHDOG_USEC = 1 s: a ping every half second for ~6 s of scanning (start-up is not counted).
    assert len(pings) >= 5, listener.messages
    gaps = np.diff(pings)
    assert gaps.min() >= 0.45, "pinged more often than half the watchdog period"
    assert gaps.max() < 1.0, "a gap as long as the watchdog period would have got the service killed"
    assert any("in service at VENUE-1 (entry)" in s for s in listener.statuses())


@pytest.mark.system
def test_abstract_notify_socket_works(config_file):
    listener = NotifySocket(f"@kiosk-test-{secrets.token_hex(6)}")
    try:
        result = run_kiosk_under_notify(config_file, listener.address, seconds=3)
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert listener.times_of("READY=1") and listener.times_of("WATCHDOG=1")


class HangingCamera(SyntheticCamera):
    """Delivers frames, then blocks inside read() forever, as a wedged camera driver does."""

    name = "hanging"

    def __init__(self, frames_before_hang: int, release: threading.Event, **kw):
        super().__init__(**kw)
        self.left = frames_before_hang
        self.release = release

    def read(self, timeout):
        if self.left <= 0:
            self.release.wait()  # ignores its timeout, like a driver stuck in an ioctl
            raise StopIteration
        self.left -= 1
        return super().read(timeout)


def opened(camera: Camera) -> Camera:
    camera.open()
    return camera


def _scanner_thread(config, camera_factory, notify_address: str, watchdog_usec: int, stop: threading.Event):
    pipeline = Pipeline(config)
    health = ScannerHealth(pipeline, LoopWatch(Notifier(notify_address, watchdog_usec)))
    thread = threading.Thread(target=run_scanner, kwargs=dict(
        pipeline=pipeline, stop=stop, camera_factory=camera_factory, health=health), daemon=True)
    thread.start()
    return thread, pipeline


@pytest.fixture
def fast_config(config_file):
    return load_config(config_file).replace(camera={"read_timeout_s": 0.1, "fps": 30})


@pytest.mark.system
def test_pings_stop_when_a_camera_read_hangs_in_the_driver(fast_config, tmp_path):
    """The feed abandons a read stuck in the driver and reopens the camera, but the stuck thread holds
    the device until the process ends: the pings stop so that systemd restarts the service."""
    listener = NotifySocket(str(tmp_path / "notify"))
    release, stop = threading.Event(), threading.Event()
    camera = HangingCamera(frames_before_hang=60, release=release, fps=30)  # ~2 s of frames
    thread, pipeline = _scanner_thread(fast_config, lambda: opened(camera), listener.address, 200_000, stop)
    try:
        deadline = time.monotonic() + 30
        while camera.left > 0 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert camera.left == 0 and thread.is_alive(), "the scanner never reached the hang"
        hung_at = time.monotonic()
        time.sleep(4.0)  # systemd (WatchdogSec=0.2 s here) would have killed it many times over
    finally:
        stop.set()
        release.set()
        thread.join(10)
        listener.close()
        pipeline.close()
    pings = listener.times_of("WATCHDOG=1")
    assert len([t for t in pings if t < hung_at]) >= 5, "no pings while frames were flowing"
    # The last frames vouch for a moment (stall_s); after that, nothing.
    assert not [t for t in pings if t > hung_at + 2.0], "pings went on while the camera was hung"
    assert any(s.startswith(("camera stalled", "camera read stuck")) for s in listener.statuses())


@pytest.mark.system
def test_pings_stop_when_the_scanner_loop_itself_hangs(fast_config, tmp_path):
    """Frames keep coming but the loop is stuck in a call (here: a frame consumer that never returns)."""
    listener = NotifySocket(str(tmp_path / "notify"))
    stop, release = threading.Event(), threading.Event()
    pipeline = Pipeline(fast_config)
    health = ScannerHealth(pipeline, LoopWatch(Notifier(listener.address, 200_000)))
    seen = [0]

    def consumer(frame) -> None:
        seen[0] += 1
        if seen[0] == 45:  # ~1.5 s in, the consumer hangs
            hung_at.append(time.monotonic())
            release.wait()

    hung_at: list[float] = []
    thread = threading.Thread(target=run_scanner, kwargs=dict(
        pipeline=pipeline, stop=stop, camera_factory=lambda: opened(SyntheticCamera(fps=30)), health=health,
        on_frame=consumer), daemon=True)
    thread.start()
    try:
        time.sleep(5.0)
    finally:
        stop.set()
        release.set()
        thread.join(10)
        listener.close()
        pipeline.close()
    assert hung_at, "the consumer never hung"
    pings = listener.times_of("WATCHDOG=1")
    assert len([t for t in pings if t < hung_at[0]]) >= 4
    assert not [t for t in pings if t > hung_at[0] + 0.5]


@pytest.mark.system
def test_waiting_for_a_missing_camera_is_healthy(fast_config, tmp_path):
    listener = NotifySocket(str(tmp_path / "notify"))
    stop = threading.Event()

    def no_camera() -> Camera:
        raise CameraMissing("no camera found (test)")

    # WatchdogSec=3 s: pings are due every 1.5 s, and the loop turns at least once a second while it
    # waits, so no gap reaches the 3 s after which systemd would kill the service.
    thread, pipeline = _scanner_thread(fast_config, no_camera, listener.address, 3_000_000, stop)
    try:
        time.sleep(6.0)
    finally:
        stop.set()
        thread.join(10)
        listener.close()
        pipeline.close()
    # A kiosk without a camera shows "camera problem" and retries: restarting it would not help.
    assert listener.times_of("READY=1")
    pings = listener.times_of("WATCHDOG=1")
    assert len(pings) >= 3 and np.diff(pings).max() < 3.0, pings
    assert any(s.startswith("in service at VENUE-1 (entry); camera unavailable (no camera found (test))")
               for s in listener.statuses())
    assert pipeline.store.statuses()["camera"]["state"] == "lost"
    pipeline.close()


def test_notifier_outside_systemd_is_silent_and_harmless(tmp_path):
    assert not Notifier.from_env({}).enabled
    assert Notifier.from_env({}).ready() is False
    # The watchdog belongs to another process of the unit: do not claim it.
    other = Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval is None
    mine = Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval == 2.5
    assert Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "garbage"}).watchdog_interval is None
    # systemd gone (socket path vanished): the kiosk carries on.
    assert Notifier(str(tmp_path / "gone")).ping() is False


@pytest.mark.system
def test_kiosk_beacon_sends_ready_and_pings(tmp_path, state_dir):
    """The beacon service (here on the pcap transport, which records what a controller would get)."""
    listener = NotifySocket(str(tmp_path / "notify"))
    env = kiosk_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="1000000")
    try:
        result = subprocess.run([sys.executable, "-m", "kiosk", "--state-dir", str(state_dir), "beacon", "--transport",
                                 f"pcap:{tmp_path / 'beacon.pcap'}", "--assume-clock-synced", "--seconds", "4"],
                                env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert "READY=1" in listener.messages[0][1].split("\n")
    assert len(listener.times_of("WATCHDOG=1")) >= 3
    assert any(s.startswith("advertising slot ") for s in listener.statuses())
    assert listener.times_of("STOPPING=1")


@pytest.mark.system
def test_a_status_text_cannot_inject_other_assignments(tmp_path):
    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        Notifier(listener.address).status("venue X\nREADY=1\nWATCHDOG=1")
        time.sleep(0.3)
    finally:
        listener.close()
    assert [m for _, m in listener.messages] == ["STATUS=venue X READY=1 WATCHDOG=1"]


@pytest.mark.system
def test_kiosk_run_with_the_screen_sends_ready_and_pings(config_file, tmp_path):
    listener = NotifySocket(str(tmp_path / "notify"))
    env = kiosk_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="1000000", SDL_VIDEODRIVER="dummy")
    try:
        result = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config_file), "run", "--seconds", "5"],
                                env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert "screen: " in result.stderr  # the screen really ran (dummy SDL driver)
    assert len(listener.times_of("READY=1")) == 1 and len(listener.times_of("WATCHDOG=1")) >= 3


@pytest.mark.system
def test_pings_stop_when_another_loop_of_the_process_freezes(fast_config, tmp_path):
    """The screen's loop (main thread) freezes while frames still flow: systemd must still restart us."""
    listener = NotifySocket(str(tmp_path / "notify"))
    stop = threading.Event()
    pipeline = Pipeline(fast_config)
    health = ScannerHealth(pipeline, LoopWatch(Notifier(listener.address, 200_000)))
    screen_turned = [time.monotonic()]
    health.watch_loop("screen", lambda: screen_turned[0], stall_s=1.0)
    thread = threading.Thread(target=run_scanner, kwargs=dict(
        pipeline=pipeline, stop=stop, camera_factory=lambda: opened(SyntheticCamera(fps=30)), health=health), daemon=True)
    thread.start()
    try:
        for _ in range(20):  # the screen turns for 2 s ...
            screen_turned[0] = time.monotonic()
            time.sleep(0.1)
        frozen_at = time.monotonic()  # ... then freezes
        time.sleep(3.0)
    finally:
        stop.set()
        thread.join(10)
        listener.close()
        pipeline.close()
    pings = listener.times_of("WATCHDOG=1")
    assert len([t for t in pings if t < frozen_at]) >= 5
    assert not [t for t in pings if t > frozen_at + 1.5], "pings went on with the screen frozen"
    assert any(s == "screen stalled" for s in listener.statuses())


def _under_notify(args: list[str], listener: NotifySocket, pings: int, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `kiosk ARGS` with a notify socket until it has said READY and pinged ``pings`` times (or
    ``timeout`` passed: the assertions then say what was missing), then stop it as systemd does (SIGTERM).
    Waiting for the messages, not for a fixed time, keeps the test honest on a loaded machine."""
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=kiosk_env(NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="1000000"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if listener.times_of("READY=1") and len(listener.times_of("WATCHDOG=1")) >= pings:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.system
def test_kiosk_sync_sends_ready_and_pings_while_uploading(tmp_path):
    from upstream_helpers import provision, start_upstream, write_device_config

    upstream = start_upstream(str(tmp_path / "upstream.db"))
    try:
        config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", wake_check_s=0.05)
        provision(config, upstream)
        listener = NotifySocket(str(tmp_path / "notify"))
        try:
            result = _under_notify(["--config", str(config), "sync"], listener, pings=3)
        finally:
            listener.close()
    finally:
        upstream.stop()
    assert result.returncode == 0, result.stderr
    assert len(listener.times_of("READY=1")) == 1 and len(listener.times_of("WATCHDOG=1")) >= 3
    assert any(s.startswith("online; ") for s in listener.statuses()), listener.statuses()
    assert listener.times_of("STOPPING=1")


@pytest.mark.system
def test_kiosk_sync_waiting_for_provisioning_is_healthy(tmp_path, config_file):
    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        result = _under_notify(["--config", str(config_file), "sync"], listener, pings=2)
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert listener.times_of("READY=1") and len(listener.times_of("WATCHDOG=1")) >= 2
    assert "not enrolled: waiting for provisioning" in listener.statuses()


@pytest.mark.system
def test_kiosk_upstream_serve_is_ready_once_listening_and_pings(tmp_path):
    listener = NotifySocket(str(tmp_path / "notify"))
    try:
        result = _under_notify(["upstream", "serve", "--db", str(tmp_path / "up.db"), "--listen", "127.0.0.1:0"],
                               listener, pings=3)
    finally:
        listener.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM: systemd counts that as a clean stop.
    assert result.returncode in (0, -signal.SIGTERM), result.stderr
    assert "listening on http://127.0.0.1:" in result.stdout
    assert len(listener.times_of("READY=1")) == 1 and len(listener.times_of("WATCHDOG=1")) >= 3
    assert any(s.startswith("serving http://127.0.0.1:") for s in listener.statuses())
    assert listener.times_of("STOPPING=1")
