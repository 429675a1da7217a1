"""The scanner loop's view of its own health: watchdog pings, systemd STATUS=, camera frame rate, clock.

The loop calls :meth:`ScannerHealth.tick` once per turn and :meth:`frame` per frame. The watchdog is
pinged only while frames keep coming (or while the loop deliberately waits for a missing camera): a
camera that stops delivering stops the pings, and systemd restarts the service, which reopens it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable

from kiosk.clockfix import ClockWatch
from kiosk.pipeline import Pipeline
from kiosk.store import StorageError
from kiosk.watchdog import LoopWatch, StopEvent

log = logging.getLogger("kiosk.service")

REPORT_EVERY_S = 10.0  # camera status (frame rate) and clock check; `kiosk status` calls older reports stale


class ScannerHealth:
    def __init__(self, pipeline: Pipeline, watch: LoopWatch | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.pipeline = pipeline
        self.watch = watch or LoopWatch(monotonic=monotonic)
        self.monotonic = monotonic
        # No frame for this long means the camera stalled: stop vouching for the loop.
        camera = pipeline.config.camera
        self.stall_s = max(3 * camera.read_timeout_s, 3 / camera.fps)
        self.clock = ClockWatch()
        self.camera_name = ""
        self._last_frame = float("-inf")  # READY waits for the first frame (or a deliberate wait)
        self._opened_at = monotonic()
        self._window_start = monotonic()
        self._window_frames = 0
        self._next_report = monotonic()
        self.fps = 0.0
        self.checkins = 0
        self._loops: dict[str, tuple[Callable[[], float], float]] = {}

    def watch_loop(self, name: str, last_progress: Callable[[], float], stall_s: float) -> None:
        """Vouch for another loop of this process too (the screen): no pings once it stalls."""
        self._loops[name] = (last_progress, stall_s)

    # ---- events from the loop ------------------------------------------------------------------
    def camera_open(self, name: str) -> None:
        self.camera_name = name
        self._opened_at = self._window_start = self.monotonic()
        self._window_frames = 0

    def camera_lost(self) -> None:
        self.camera_name = ""

    def frame(self) -> None:
        self._last_frame = self.monotonic()
        self._window_frames += 1

    def accepted(self) -> None:
        self.checkins += 1

    def tick(self) -> None:
        """One turn of the loop: ping systemd if frames are flowing; report now and then."""
        now = self.monotonic()
        if now >= self._next_report:
            self._next_report = now + REPORT_EVERY_S
            self._report(now)
        stalled = self._stalled_loops(now)
        if stalled:
            if self.watch.ready:
                self.watch.notifier.status(f"{' and '.join(stalled)} stalled")
        elif now - self._last_frame <= self.stall_s:
            self.watch.beat(self._status_text())
        elif self.watch.ready and now - self._opened_at > self.stall_s:
            self.watch.notifier.status(f"camera stalled: no frame for {now - max(self._last_frame, self._opened_at):.0f} s")

    def wait_for_camera(self, stop: StopEvent, seconds: float, problem: str) -> None:
        """Back off before reopening the camera; the loop is healthy while it waits on purpose."""
        end = self.monotonic() + seconds
        while not stop.is_set():
            if not self._stalled_loops(self.monotonic()):
                self.watch.beat(f"camera unavailable ({problem}); retrying")
            left = end - self.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, 1.0, self.watch.interval or 1.0))

    def _stalled_loops(self, now: float) -> list[str]:
        return [name for name, (progress, limit) in self._loops.items() if now - progress() > limit]

    # ---- helpers -------------------------------------------------------------------------------
    def _status_text(self) -> str:
        config = self.pipeline.config.device
        if not config.venue_id:
            return "not provisioned: showing the provisioning screen"
        return f"in service at {config.venue_id} ({config.direction}); camera {self.fps:.1f} fps; {self.checkins} check-ins"

    def _report(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed > 0 and self.camera_name:
            self.fps = self._window_frames / elapsed
            self._window_start, self._window_frames = now, 0
            state = "stalled" if now - max(self._last_frame, self._opened_at) > self.stall_s else "ok"
            self._status("camera", state, {"backend": self.camera_name, "fps": round(self.fps, 2)})
        try:
            self.clock.observe(self.pipeline.store, self.pipeline.clock.now())
        except (StorageError, sqlite3.Error) as exc:
            log.warning("could not correct check-in times: %s", exc)

    def _status(self, component: str, state: str, detail: dict) -> None:
        try:
            self.pipeline.store.set_status(component, state, detail)
        except (StorageError, sqlite3.Error) as exc:  # status is best effort; check-ins are not
            log.warning("could not record %s status: %s", component, exc)
