"""The interface every camera backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class CameraError(RuntimeError):
    """The camera failed; the kiosk shows 'camera problem' and retries with backoff."""


class CameraMissing(CameraError):
    """No camera is attached or it cannot be opened at all."""


class Camera(ABC):
    name = "camera"
    # True: frames come on the camera's own clock whether anyone reads them or not, so the scanner
    # loop reads them on a thread and keeps only the newest. False: the source waits for its reader.
    live = True

    @classmethod
    @abstractmethod
    def from_config(cls, config: Any) -> "Camera":
        """Build from the [camera] config section without touching hardware."""

    @abstractmethod
    def open(self) -> None:
        """Acquire and start the device; raises CameraError (CameraMissing if absent)."""

    @abstractmethod
    def read(self, timeout: float) -> np.ndarray | None:
        """The next frame's Y plane (2-D uint8), or None if none came within ``timeout`` seconds.

        Raises CameraError when the device is gone; StopIteration when a finite source has ended.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
