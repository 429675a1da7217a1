"""Replays a folder of images as camera frames, looped or once: for field captures and tests.

Files that cannot be read are skipped with a log line, never fatal.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from scanner.camera.base import Camera, CameraMissing

log = logging.getLogger("scanner.replay")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_luma(path: Path) -> np.ndarray:
    """An image file as a 2-D uint8 luminance array; raises OSError/ValueError if unreadable."""
    with Image.open(path) as img:
        img.load()
        return np.asarray(img.convert("L"))


class ReplayCamera(Camera):
    name = "replay"

    def __init__(self, path: str | Path, fps: float = 15.0, loop: bool = True):
        self.path, self.fps, self.loop = Path(path), fps, loop
        self._files: list[Path] = []
        self._index = 0
        self._next_at = 0.0

    @classmethod
    def from_config(cls, config: Any) -> "ReplayCamera":
        return cls(config.replay_path, config.fps, config.replay_loop)

    def open(self) -> None:
        if not str(self.path) or not self.path.exists():
            raise CameraMissing(f"replay source '{self.path}' does not exist (set camera.replay_path)")
        files = [self.path] if self.path.is_file() else sorted(
            p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraMissing(f"replay folder '{self.path}' holds no images")
        self._files, self._index, self._next_at = files, 0, time.monotonic()

    def read(self, timeout: float) -> np.ndarray | None:
        for _ in range(len(self._files)):
            if self._index >= len(self._files):
                if not self.loop:
                    raise StopIteration("replay finished")
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            try:
                frame = load_luma(path)
            except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
                log.warning("replay: skipping unreadable image %s (%s)", path.name, exc)
                continue
            delay = self._next_at - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, timeout))
            self._next_at = max(self._next_at + 1 / self.fps, time.monotonic() - 1 / self.fps)
            return frame
        raise CameraMissing(f"no readable image left in '{self.path}'")

    def close(self) -> None:
        self._files = []
