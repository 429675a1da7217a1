"""Frames from the configured camera, through every camera fault, with its state for the screen.

``CameraFeed.frames()`` opens the camera (backing off while it is missing), reads it through a
newest-frame grabber, notices when frames stop coming, closes and reopens it, and reports each change
through ``report(state, detail)`` (the scanner loop writes it as the store's "camera" status):

- ``ok``: frames are coming; detail: backend, fps, dropped_fps, decode_ms_p50, frames.
- ``stalled``: the camera is open but no frame came for longer than ``read_timeout_s``.
- ``lost``: the camera is missing or failed; detail: error, retry_in_s, failures.

Backoff is full-jitter exponential and starts over only after the camera has streamed for
HEALTHY_AFTER_S, so a camera that opens and dies at once cannot make a tight reopen loop.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from typing import Callable, Iterator

import numpy as np

from kiosk.core.records import CameraState
from scanner.camera.base import Camera, CameraError
from scanner.grabber import DirectReader, FrameGrabber

log = logging.getLogger("scanner.feed")

HEALTHY_AFTER_S = 10.0   # streaming this long resets the backoff
REPORT_EVERY_S = 5.0     # "ok" status refresh (frame rate) while streaming
STALLS_BEFORE_REOPEN = 3  # read timeouts without a frame before the camera is closed and reopened

Report = Callable[[str, dict], None]


class CameraFeed:
    def __init__(self, open_camera: Callable[[], Camera], read_timeout_s: float, stop: threading.Event,
                 backoff: Callable[[int], float], report: Report | None = None,
                 tick: Callable[[], None] | None = None):
        """``tick`` is called at least every second, frames or not (the loop's housekeeping)."""
        self.open_camera, self.read_timeout_s, self.stop = open_camera, read_timeout_s, stop
        self.backoff, self.report = backoff, report or (lambda state, detail: None)
        self.tick = tick or (lambda: None)
        self.failures = 0       # consecutive failures (drives the backoff)
        self.camera_failures = 0  # all failures, for the loop's stats
        self.frames_taken = 0
        self.dropped = 0
        self.abandoned = 0  # camera reads stuck in the driver and left behind: only a new process frees them
        self.state = ""
        self._decode_ms: list[float] = []

    # ---- called by the scanner loop --------------------------------------------------------------
    def frames(self, deadline: float | None = None) -> Iterator[np.ndarray]:
        """Newest frames until ``stop`` is set, ``deadline`` (monotonic) passes or a recording ends."""
        while self._running(deadline):
            self.tick()
            try:
                camera = self.open_camera()
            except CameraError as exc:
                self._lost(str(exc), deadline)
                continue
            except Exception as exc:  # a driver's surprise must not crash-loop the kiosk
                log.exception("opening the camera failed unexpectedly")
                self._lost(f"camera failed to open: {exc!r}", deadline)
                continue
            ended = yield from self._stream(camera, deadline)
            if ended:
                return

    def decoded(self, seconds: float) -> None:
        """How long the last frame took to decode (shown in the status)."""
        self._decode_ms.append(seconds * 1000)

    # ---- internals -----------------------------------------------------------------------------
    def _running(self, deadline: float | None) -> bool:
        return not self.stop.is_set() and (deadline is None or time.monotonic() < deadline)

    def _stream(self, camera: Camera, deadline: float | None) -> Iterator[np.ndarray]:
        """Frames from one opened camera; returns True when a recording ended or the loop must stop."""
        log.info("camera %s open", camera.name)
        source = FrameGrabber(camera, self.read_timeout_s) if camera.live else DirectReader(camera, self.read_timeout_s)
        source.start()
        opened_at = last_frame_at = window_start = time.monotonic()
        window_frames = window_dropped = 0
        problem: str | None = None
        finished = False
        try:
            while self._running(deadline):
                self.tick()
                try:
                    frame = source.next_frame(timeout=min(self.read_timeout_s, 0.5))
                except StopIteration:
                    finished = True
                    break
                except CameraError as exc:
                    problem = f"camera failed: {exc}"
                    break
                now = time.monotonic()
                if frame is None:
                    silent = now - last_frame_at
                    if silent > self.read_timeout_s * STALLS_BEFORE_REOPEN:
                        problem = f"no frame for {silent:.0f} s"
                        break
                    if silent > self.read_timeout_s and self.state != CameraState.STALLED:
                        self._set(CameraState.STALLED, {"backend": camera.name, "error": f"no frame for {silent:.1f} s"})
                    continue
                last_frame_at = now
                window_frames += 1
                if now - opened_at >= HEALTHY_AFTER_S:
                    self.failures = 0
                if self.state != CameraState.OK or now - window_start >= REPORT_EVERY_S:
                    elapsed = max(now - window_start, 1e-3)
                    dropped = source.dropped - window_dropped
                    self._set(CameraState.OK, {"backend": camera.name, "fps": round((window_frames + dropped) / elapsed, 1),
                                     "dropped_fps": round(dropped / elapsed, 1), "frames": self.frames_taken + 1,
                                     "decode_ms_p50": round(statistics.median(self._decode_ms), 1) if self._decode_ms else None})
                    window_start, window_frames, window_dropped = now, 0, source.dropped
                    self._decode_ms.clear()
                self.frames_taken += 1
                yield frame
        finally:
            self.dropped += source.dropped
            if source.stop():
                camera.close()
            else:
                self.abandoned += 1
                log.error("camera %s is stuck in a read; abandoning it without closing", camera.name)
        if problem is not None:
            log.error("camera %s: %s; reopening", camera.name, problem)
            self._lost(problem, deadline, backend=camera.name)
        return finished or not self._running(deadline)

    def _lost(self, problem: str, deadline: float | None, backend: str | None = None) -> None:
        """Report the camera lost and wait out the backoff (interrupted by stop or the deadline)."""
        wait = self.backoff(self.failures)
        self.failures += 1
        self.camera_failures += 1
        detail = {"error": problem, "retry_in_s": round(wait, 1), "failures": self.failures}
        if backend:
            detail["backend"] = backend
        (log.error if self.failures == 1 else log.info)("camera unavailable: %s; retrying in %.1f s", problem, wait)
        self._set(CameraState.LOST, detail)
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        until = time.monotonic() + wait
        while not self.stop.wait(min(1.0, max(0.0, until - time.monotonic()))) and time.monotonic() < until:
            self.tick()

    def _set(self, state: str, detail: dict) -> None:
        self.state = state
        try:
            self.report(state, detail)
        except Exception:  # status is best effort; frames are not
            log.exception("camera status report failed")
