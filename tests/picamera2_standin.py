"""A stand-in for the ``picamera2`` module, for machines without a Raspberry Pi camera.

picamera2 needs libcamera (Raspberry Pi OS only), so the adapter's tests install this module as
``picamera2``. It mirrors what picamera2 documents and does, quoted from its source and manual
(raspberrypi/picamera2, picamera2/picamera2.py, request.py, job.py, controls.py):

- No camera: ``Picamera2.__init__`` does ``camera_num = self.global_camera_info()[camera_num]['Num']``,
  so with no camera attached it raises ``IndexError: list index out of range`` (the error users of
  Bookworm's picamera2 report); other versions raise ``RuntimeError("Camera __init__ sequence did
  not complete.")``. Both are reproduced (``RIG.no_camera_error``).
- ``create_video_configuration(main={}, lores=None, ..., buffer_count=6, controls={}, queue=True)``
  defaults main to XBGR8888 1280x720 and lores (when asked for) to YUV420 at the main size.
  ``configure`` refuses a lores larger than main ("lores stream dimensions may not exceed main
  stream"), odd sizes ("width and height should be even") and, on a Pi 4 or older, a lores that is
  not YUV ("lores stream must be YUV").
- ``capture_array(name, wait=...)``: ``wait`` may be "a number - wait for this number of seconds
  before raising a 'timed out' error"; the job stays queued until ``cancel_all_and_flush()``
  ("really only intended for tidying up after an operation has unexpectedly timed out (for
  example, the camera cable has become dislodged)"). Without a number it can wait forever, which
  the adapter must never do: here that is an AssertionError.
- YUV420 arrays come back as an image half as tall again (the extra rows hold U and V): shape
  ``(h * 3 // 2, stride)``, reshaped from the buffer with any row padding left in. The manual's format table
  gives YUV420 an alignment of 64, so rows are padded to a multiple of 64 bytes here.
- ``set_controls`` with a control the camera does not advertise raises RuntimeError ("Control ...
  is not advertised by libcamera"); ``AfMode`` exists only on autofocus cameras (Camera Module 3).
- ``start()`` before ``configure()`` raises "Camera has not been configured".

``RIG`` is the hardware: which cameras are attached, what they film, and whether the cable is in.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class Rig:
    def __init__(self) -> None:
        self.cameras = [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/i2c@1/imx708@1a", "Num": 0}]
        self.autofocus = True
        self.vc4 = True                 # Pi 4 and older: lores must be YUV
        self.no_camera_error = "IndexError"
        self.scene: np.ndarray | None = None  # what the lens sees (2-D uint8); scaled to the stream size
        self.frame_interval = 1 / 30
        self.connected = threading.Event()
        self.connected.set()
        self.opened: list["Picamera2"] = []

    def unplug(self) -> None:
        self.connected.clear()

    def replug(self) -> None:
        self.connected.set()


RIG = Rig()


def reset() -> Rig:
    global RIG
    RIG = Rig()
    return RIG


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


class Picamera2:
    def __init__(self, camera_num: int = 0):
        if not RIG.cameras and RIG.no_camera_error == "RuntimeError":
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_idx = self.global_camera_info()[camera_num]["Num"]  # IndexError with no camera
        self.model = RIG.cameras[camera_num]["Model"]
        self.camera_config: dict | None = None
        self.controls: dict[str, Any] = {}
        self.started = False
        self.is_open = True
        self.pending_jobs = 0
        self.cancels = self.stops = self.starts = 0
        RIG.opened.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return list(RIG.cameras)

    @property
    def camera_controls(self) -> dict[str, tuple]:
        controls = {"FrameDurationLimits": (33333, 120000, None), "ExposureTime": (26, 112015443, None),
                    "AnalogueGain": (1.12, 16.0, None)}
        if RIG.autofocus:
            controls.update({"AfMode": (0, 2, 0), "AfTrigger": (0, 1, 0), "LensPosition": (0.0, 15.0, 1.0)})
        return controls

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None, raw: dict | None = None,
                                   buffer_count: int = 6, controls: dict | None = None, queue: bool = True,
                                   **_: Any) -> dict:
        main = {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True, **(main or {})}
        if lores is not None:
            lores = {"format": "YUV420", "size": main["size"], "preserve_ar": False, **lores}
        return {"use_case": "video", "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores,
                "raw": raw, "controls": dict(controls or {}), "display": "main", "encode": "main"}

    def configure(self, config: dict) -> None:
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            width, height = stream["size"]
            if width % 2 or height % 2:
                raise RuntimeError("width and height should be even")
            bytes_per_pixel = 1 if stream["format"] in ("YUV420", "YVU420") else 4
            stream["stride"] = _align(width * bytes_per_pixel, 64)
        lores = config.get("lores")
        if lores is not None:
            if lores["size"][0] > config["main"]["size"][0] or lores["size"][1] > config["main"]["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if RIG.vc4 and lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")
        self.camera_config = config
        self.set_controls(config.get("controls", {}))

    def set_controls(self, controls: dict) -> None:
        for name, value in controls.items():
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            self.controls[name] = value

    def start(self, config: Any = None, show_preview: bool = False) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        self.starts += 1

    def stop(self) -> None:
        if self.started:
            self.stops += 1
        self.started = False

    def cancel_all_and_flush(self) -> None:
        self.pending_jobs = 0
        self.cancels += 1

    def close(self) -> None:
        self.stop()
        self.is_open = False

    def capture_array(self, name: str = "main", wait: Any = None) -> np.ndarray:
        assert isinstance(wait, (int, float)) and not isinstance(wait, bool), \
            "capture_array without a wait= timeout can block forever when the camera stops"
        stream = self.camera_config[name] if self.camera_config else None
        if stream is None:
            raise KeyError(name)
        # Queued jobs (left by earlier timeouts) take the next frames first.
        needed = self.pending_jobs + 1
        deadline = time.monotonic() + wait
        while needed:
            if not (self.started and RIG.connected.is_set()) or time.monotonic() + RIG.frame_interval > deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                self.pending_jobs += 1
                raise TimeoutError()
            time.sleep(RIG.frame_interval)
            needed -= 1
        self.pending_jobs = 0
        return self._frame(stream)

    def _frame(self, stream: dict) -> np.ndarray:
        width, height = stream["size"]
        assert stream["format"] == "YUV420", "this stand-in films only YUV420 streams"
        array = np.full((height * 3 // 2, stream["stride"]), 255, np.uint8)  # padding: visible if not cut off
        scene = RIG.scene if RIG.scene is not None else np.full((height, width), 90, np.uint8)
        if scene.shape != (height, width):
            import cv2

            scene = cv2.resize(scene, (width, height), interpolation=cv2.INTER_AREA)
        array[:height, :width] = scene
        array[height:, :width] = 128  # U and V: grey
        return array
