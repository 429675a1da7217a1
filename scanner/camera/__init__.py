"""Camera backends behind one small interface, chosen by name in config (``camera.backend``).

Every backend yields the Y plane of a frame as a 2-D uint8 array. ``auto`` tries the real cameras in
order and falls back to nothing silently: a kiosk without a camera reports it, it does not pretend.
"""

from __future__ import annotations

import importlib
from typing import Any

from scanner.camera.base import Camera, CameraError, CameraMissing

__all__ = ["Camera", "CameraError", "CameraMissing", "BACKENDS", "open_camera"]

# name -> "module:Class"; imported lazily so picamera2 is only touched on a Pi.
BACKENDS = {
    "picamera2": "scanner.camera.picam:PiCamera",
    "uvc": "scanner.camera.uvc:UvcCamera",
    "synthetic": "scanner.camera.synthetic:SyntheticCamera",
    "replay": "scanner.camera.replay:ReplayCamera",
}
AUTO_ORDER = ("picamera2", "uvc")


def backend_class(name: str) -> type[Camera]:
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_camera(config: Any) -> Camera:
    """Open the configured camera (``config`` is the [camera] section); raises CameraError."""
    names = [n for n in AUTO_ORDER if n in BACKENDS] if config.backend == "auto" else [config.backend]
    problems = []
    for name in names:
        if name not in BACKENDS:
            raise CameraError(f"camera backend '{name}' is not available in this build")
        camera = backend_class(name).from_config(config)
        try:
            camera.open()
            return camera
        except CameraError as exc:
            problems.append(f"{name}: {exc}")
    raise CameraMissing("no camera found (" + "; ".join(problems or ["no backend to try"]) + ")")
