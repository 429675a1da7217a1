"""The scanner loop's view of its own health: watchdog pings, systemd STATUS=, clock correction.

The loop calls :meth:`ScannerHealth.tick` on every turn (the camera feed's ``tick``: at least once a
second, frames or not), :meth:`frame` per frame and :meth:`camera` with each camera status the feed
reports. systemd's watchdog is pinged from ``tick`` only while the kiosk is really working:

* frames are coming, or the camera is ``lost`` and the feed is deliberately waiting to reopen it
  (restarting the process would not plug a camera back in; the screen says "camera problem");
* no other loop this process vouches for (the screen) has stopped turning;
* no camera read is stuck in the driver: the feed abandons such a read and opens the camera again,
  but the stuck thread keeps the device until the process ends, so systemd must restart it.

A loop that stops turning (a hung decoder, database or display call) stops calling ``tick``, so
the pings stop with it: nothing here runs on a timer of its own.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any, Callable

from kiosk.core.clockfix import ClockWatch
from kiosk.pipeline import Pipeline
from kiosk.core.records import CameraState, ClockState, Component
from kiosk.core.store import StorageError
from kiosk.core.watchdog import LoopWatch

log = logging.getLogger("kiosk.service")

CLOCK_CHECK_EVERY_S = 10.0  # how often the loop asks the kernel whether NTP has synchronised the clock


class ScannerHealth:
    def __init__(self, pipeline: Pipeline, watch: LoopWatch | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.pipeline = pipeline
        self.watch = watch or LoopWatch(monotonic=monotonic)
        self.monotonic = monotonic
        camera = pipeline.config.camera
        # No frame for this long while the camera is supposedly open: stop vouching for the loop.
        self.stall_s = max(3 * camera.read_timeout_s, 3 / camera.fps) + 1.0
        self.clock = ClockWatch()
        self.camera_state = ""
        self.camera_detail: dict[str, Any] = {}
        self.stuck_reads: Callable[[], int] = lambda: 0
        self.checkins = 0
        self._last_frame = float("-inf")  # READY waits for the first frame (or a deliberate wait)
        self._next_clock_check = monotonic()
        self._clock_state: ClockState | None = None
        self._loops: dict[str, tuple[Callable[[], float], float]] = {}

    def watch_loop(self, name: str, last_progress: Callable[[], float], stall_s: float) -> None:
        """Vouch for another loop of this process too (the screen): no pings once it stalls."""
        self._loops[name] = (last_progress, stall_s)

    # ---- events from the loop ------------------------------------------------------------------
    def camera(self, state: str, detail: dict[str, Any]) -> None:
        self.camera_state, self.camera_detail = state, detail

    def frame(self) -> None:
        self._last_frame = self.monotonic()

    def accepted(self) -> None:
        self.checkins += 1

    def tick(self) -> None:
        """One turn of the loop: ping systemd if all is well; correct check-in times once NTP syncs."""
        now = self.monotonic()
        if now >= self._next_clock_check:
            self._next_clock_check = now + CLOCK_CHECK_EVERY_S
            self._check_clock()
        problem = self.problem(now)
        if problem is None:
            self.watch.beat(self._status_text())
        elif self.watch.ready:
            self.watch.notifier.status(problem)

    def problem(self, now: float) -> str | None:
        """Why the loop should not be vouched for now, or None."""
        if self.stuck_reads():
            return "camera read stuck in the driver: a restart frees it"
        stalled = [name for name, (progress, limit) in self._loops.items() if now - progress() > limit]
        if stalled:
            return f"{' and '.join(stalled)} stalled"
        if now - self._last_frame <= self.stall_s or self.camera_state == CameraState.LOST:
            return None
        if self._last_frame == float("-inf"):
            return "starting: waiting for the first camera frame"
        return f"camera stalled: no frame for {now - self._last_frame:.0f} s"

    # ---- helpers -------------------------------------------------------------------------------
    def _status_text(self) -> str:
        device = self.pipeline.config.device
        if self.camera_state == CameraState.LOST:
            camera = f"camera unavailable ({self.camera_detail.get('error', 'no camera')}); retrying"
        else:
            camera = f"camera {self.camera_detail.get('fps', 0.0)} fps"
        if not device.venue_id:
            return f"not provisioned: showing the provisioning screen; {camera}"
        return f"in service at {device.venue_id} ({device.direction}); {camera}; {self.checkins} check-ins"

    def _check_clock(self) -> None:
        try:
            instant = self.pipeline.clock.now()
            self.clock.observe(self.pipeline.store, instant)
            state = ClockState.SYNCED if instant.clock_synced else ClockState.UNSYNCED
            if state != self._clock_state:  # the clock record changes rarely: written only then
                self.pipeline.store.set_status(Component.CLOCK, state, {})
                self._clock_state = state
        except (StorageError, sqlite3.Error) as exc:
            log.warning("could not correct check-in times: %s", exc)
