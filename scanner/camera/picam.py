"""The Raspberry Pi camera through picamera2: a lores YUV420 stream, of which the decoder takes the Y plane.

What this adapter relies on, from picamera2's source and manual:
- ``Picamera2(n)`` with no camera attached raises ``IndexError`` (Bookworm's picamera2 indexes
  ``global_camera_info()[n]``) or ``RuntimeError`` ("Camera __init__ sequence did not complete").
- ``capture_array("lores", wait=seconds)`` raises ``TimeoutError`` when no frame comes in time, and
  leaves the job queued; ``cancel_all_and_flush()`` is documented as "really only intended for
  tidying up after an operation has unexpectedly timed out (for example, the camera cable has
  become dislodged)". So a timeout here is: cancel, stop, start, and report no frame.
- A YUV420 array is ``(height * 3 // 2, stride)``: ``height`` rows of Y, then the U and V planes,
  with any row padding left in; the Y plane is ``array[:height, :width]``.
- ``create_video_configuration`` checks that lores is no larger than main, both even-sized, and
  (Pi 4 and older) that lores is YUV; lores at the main size is allowed.
- ``"AfMode" in camera_controls`` only on cameras with autofocus (Camera Module 3);
  ``AfModeEnum.Continuous`` is 2. Controls not in ``camera_controls`` raise RuntimeError.
- Opening and closing the camera repeatedly leaks memory: it is opened once, and restarted in place.

picamera2 comes from Raspberry Pi OS's apt (python3-picamera2), not PyPI: the kiosk's virtual
environment is created with --system-site-packages so it can be imported.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from scanner.camera.base import Camera, CameraError, CameraMissing

log = logging.getLogger("scanner.camera.picamera2")

AF_MODE_CONTINUOUS = 2  # libcamera.controls.AfModeEnum.Continuous


class PiCamera(Camera):
    name = "picamera2"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, camera_number: int = 0,
                 autofocus: bool = True):
        self.width, self.height, self.fps = width, height, fps
        self.camera_number, self.autofocus = camera_number, autofocus
        self._camera: Any = None
        self.restarts = 0

    @classmethod
    def from_config(cls, config: Any) -> "PiCamera":
        return cls(config.width, config.height, config.fps, config.picamera2_camera, config.autofocus)

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraMissing("picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2, "
                                "and a virtual environment made with --system-site-packages)") from None
        try:
            camera = Picamera2(self.camera_number)
        except (IndexError, RuntimeError) as exc:
            raise CameraMissing(f"no Raspberry Pi camera number {self.camera_number} detected: check the ribbon "
                                f"cable and that nothing else holds the camera (picamera2: {exc})") from None
        try:
            size = (self.width, self.height)
            controls = {}
            if "FrameDurationLimits" in camera.camera_controls:  # microseconds per frame, min and max
                controls["FrameDurationLimits"] = (int(1e6 / self.fps),) * 2
            config = camera.create_video_configuration(main={"size": size}, lores={"size": size, "format": "YUV420"},
                                                       controls=controls)
            camera.configure(config)
            if self.autofocus and "AfMode" in camera.camera_controls:
                camera.set_controls({"AfMode": AF_MODE_CONTINUOUS})
            camera.start()
        except Exception as exc:  # noqa: BLE001 - libcamera raises plain RuntimeError/OSError variants
            _close_quietly(camera)
            raise CameraError(f"Raspberry Pi camera would not start: {exc}") from None
        self._camera = camera
        log.info("picamera2 camera %d streaming %dx%d YUV420 lores at %g fps", self.camera_number, *size, self.fps)

    def read(self, timeout: float) -> np.ndarray | None:
        if self._camera is None:
            raise CameraError("camera not open")
        try:
            yuv = self._camera.capture_array("lores", wait=timeout)
        except (TimeoutError, FutureTimeout):
            log.warning("no frame from the camera within %.1f s: restarting it", timeout)
            self._restart()
            return None
        except Exception as exc:  # noqa: BLE001 - anything else means the camera is gone
            raise CameraError(f"camera failed: {exc}") from None
        if yuv.ndim != 2 or yuv.shape[0] < self.height * 3 // 2 or yuv.shape[1] < self.width:
            raise CameraError(f"camera gave a {yuv.shape} array, not {self.width}x{self.height} YUV420")
        return yuv[:self.height, :self.width]

    def _restart(self) -> None:
        """Cancel the stuck capture and restart the stream in place (no close/reopen: that leaks)."""
        self.restarts += 1
        try:
            self._camera.cancel_all_and_flush()
            self._camera.stop()
            self._camera.start()
        except Exception as exc:  # noqa: BLE001
            raise CameraError(f"camera stalled and would not restart: {exc}") from None

    def close(self) -> None:
        if self._camera is not None:
            _close_quietly(self._camera)
            self._camera = None


def _close_quietly(camera: Any) -> None:
    for step in ("stop", "close"):
        try:
            getattr(camera, step)()
        except Exception as exc:  # noqa: BLE001 - closing a camera that is gone may fail; nothing to do
            log.debug("picamera2 %s failed: %s", step, exc)
