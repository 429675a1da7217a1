"""Newest-frame reading: a slow decoder makes the kiosk skip frames, never fall behind the camera.

A live camera delivers frames on its own clock. ``FrameGrabber`` reads it on a thread and keeps one
slot: a frame not taken before the next one arrives is dropped (and counted), so whatever the
decoder does, the frame it gets next is at most one frame period old and nothing queues up.
A recording (``camera.live`` False) is read directly, every frame, by ``DirectReader``.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from scanner.camera.base import Camera, CameraError

log = logging.getLogger("scanner.grabber")


class DirectReader:
    """A recording: the reader sets the pace, nothing is dropped."""

    def __init__(self, camera: Camera, read_timeout_s: float):
        self.camera, self.read_timeout_s = camera, read_timeout_s
        self.captured = 0
        self.dropped = 0

    def start(self) -> None:
        pass

    def next_frame(self, timeout: float) -> np.ndarray | None:
        try:
            frame = self.camera.read(timeout=min(timeout, self.read_timeout_s))
        except (CameraError, StopIteration):
            raise
        except Exception as exc:  # as FrameGrabber: a backend bug is a camera failure
            log.exception("camera backend %s failed", self.camera.name)
            raise CameraError(f"camera backend {self.camera.name} failed: {exc!r}") from None
        self.captured += frame is not None
        return frame

    def stop(self) -> bool:
        return True


class FrameGrabber:
    """Reads ``camera`` on its own thread, keeping only the newest frame."""

    def __init__(self, camera: Camera, read_timeout_s: float):
        self.camera, self.read_timeout_s = camera, read_timeout_s
        self.captured = 0   # frames the camera delivered
        self.dropped = 0    # frames replaced by a newer one before anyone took them
        self.frame_age_s = 0.0  # how old the last frame handed out was
        self._slot: tuple[np.ndarray, float] | None = None
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                frame = self.camera.read(timeout=self.read_timeout_s)
            except (CameraError, StopIteration) as exc:
                self._fail(exc)
                return
            except Exception as exc:  # a backend bug must not kill the kiosk silently
                log.exception("camera backend %s failed", self.camera.name)
                self._fail(CameraError(f"camera backend {self.camera.name} failed: {exc!r}"))
                return
            if frame is None:
                continue
            with self._ready:
                if self._slot is not None:
                    self.dropped += 1
                self._slot = (frame, time.monotonic())
                self.captured += 1
                self._ready.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._ready:
            self._error = exc
            self._ready.notify_all()

    def next_frame(self, timeout: float) -> np.ndarray | None:
        """The newest frame not yet taken, waiting up to ``timeout``; None if none came.

        Raises what the camera raised (CameraError, StopIteration) once no frame is left.
        """
        with self._ready:
            self._ready.wait_for(lambda: self._slot is not None or self._error is not None, timeout)
            if self._slot is not None:
                frame, captured_at = self._slot
                self._slot = None
                self.frame_age_s = time.monotonic() - captured_at
                return frame
            if self._error is not None:
                raise self._error
            return None

    def stop(self) -> bool:
        """Stop reading; True if the thread ended (False: the driver is stuck in a read)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self.read_timeout_s + 1.0)
        return not self._thread.is_alive()
