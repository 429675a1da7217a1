"""A USB (UVC) webcam through OpenCV's VideoCapture (V4L2 on Linux).

``camera.uvc_device`` names it: a device node (``/dev/video0``), a V4L2 index (``0``), or empty for
the first USB camera under ``/dev/v4l/by-id`` (only USB devices are listed there, so the Pi's own
camera nodes are never picked by mistake). Anything else VideoCapture opens (a video file, a
stream URL) also works, which is how the tests drive the real OpenCV code path.

A webcam that is unplugged makes ``read()`` return no frame: that is reported as CameraError and
the scanner loop reopens it with backoff.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any

import numpy as np

from scanner.camera.base import Camera, CameraError, CameraMissing

log = logging.getLogger("scanner.camera.uvc")

USB_CAMERAS = "/dev/v4l/by-id/usb-*-video-index0"


def find_usb_camera() -> str:
    """The first USB camera's stable device path; raises CameraMissing if none is plugged in."""
    found = sorted(glob.glob(USB_CAMERAS))
    if not found:
        raise CameraMissing(f"no USB camera plugged in (nothing matches {USB_CAMERAS})")
    return found[0]


def to_luma(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or already grey) frame as a 2-D uint8 luminance array."""
    import cv2

    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[..., 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


class UvcCamera(Camera):
    name = "uvc"

    def __init__(self, device: str = "", width: int = 640, height: int = 480, fps: float = 15.0,
                 read_timeout_s: float = 2.0):
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.read_timeout_s = read_timeout_s
        self._capture: Any = None

    @classmethod
    def from_config(cls, config: Any) -> "UvcCamera":
        return cls(config.uvc_device, config.width, config.height, config.fps, config.read_timeout_s)

    def open(self) -> None:
        import cv2

        device = self.device or find_usb_camera()
        if device.startswith("/dev/") and not Path(device).exists():
            raise CameraMissing(f"no USB camera at {device}")
        source: int | str = int(device) if device.isdigit() else device
        backend = cv2.CAP_V4L2 if isinstance(source, int) or device.startswith("/dev/") else cv2.CAP_ANY
        capture = cv2.VideoCapture(source, backend)
        if not capture.isOpened():
            capture.release()
            raise CameraMissing(f"cannot open camera {device!r} (unplugged, or in use by another program?)")
        # Ask; a webcam may pick the nearest mode it has. One buffer: the newest frame, not a queue.
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps), (cv2.CAP_PROP_BUFFERSIZE, 1),
                            (cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.read_timeout_s * 1000)):
            capture.set(prop, value)
        self._capture = capture
        log.info("USB camera %s open (%dx%d)", device, capture.get(cv2.CAP_PROP_FRAME_WIDTH),
                 capture.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def read(self, timeout: float) -> np.ndarray | None:
        if self._capture is None:
            raise CameraError("camera not open")
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise CameraError("the USB camera stopped giving frames (unplugged?)")
        return to_luma(frame)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
