"""Replays recorded frames as a camera: a folder of images or a video file, looped or once.

For field captures and tests. Unlike a live camera, a recording waits for its reader: every frame
is decoded (at most ``camera.fps`` a second), so a replay gives the same check-ins every time.
Image files that cannot be read are skipped with a log line; a video ends where it stops decoding.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from scanner.camera.base import Camera, CameraMissing
from scanner.images import UNREADABLE, load_luma

log = logging.getLogger("scanner.replay")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mjpeg", ".mjpg", ".h264", ".mpg", ".mpeg"}


class ReplayCamera(Camera):
    name = "replay"
    live = False

    def __init__(self, path: str | Path, fps: float = 15.0, loop: bool = True):
        self.path, self.fps, self.loop = Path(path), fps, loop
        self._files: list[Path] = []
        self._index = 0
        self._video: Any = None
        self._video_frames = 0
        self._next_at = 0.0

    @classmethod
    def from_config(cls, config: Any) -> "ReplayCamera":
        return cls(config.replay_path, config.fps, config.replay_loop)

    @property
    def is_video(self) -> bool:
        return self.path.is_file() and self.path.suffix.lower() in VIDEO_SUFFIXES

    def open(self) -> None:
        if not str(self.path) or str(self.path) == "." or not self.path.exists():
            raise CameraMissing(f"replay source '{self.path}' does not exist (set camera.replay_path)")
        if self.is_video:
            self._open_video()
        else:
            files = [self.path] if self.path.is_file() else sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CameraMissing(f"replay folder '{self.path}' holds no images")
            self._files, self._index = files, 0
        self._next_at = time.monotonic()

    def read(self, timeout: float) -> np.ndarray | None:
        frame = self._next_video_frame() if self._video is not None else self._next_image()
        delay = self._next_at - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, timeout))
        self._next_at = max(self._next_at + 1 / self.fps, time.monotonic() - 1 / self.fps)
        return frame

    def _next_image(self) -> np.ndarray:
        for _ in range(len(self._files) + 1):
            if self._index >= len(self._files):
                if not self.loop:
                    raise StopIteration("replay finished")
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            try:
                return load_luma(path)
            except UNREADABLE as exc:
                log.warning("replay: skipping unreadable image %s (%s)", path.name, exc)
        raise CameraMissing(f"no readable image left in '{self.path}'")

    def _open_video(self) -> None:
        import cv2

        video = cv2.VideoCapture(str(self.path))
        if not video.isOpened():
            video.release()
            raise CameraMissing(f"cannot play video '{self.path}'")
        self._video, self._video_frames = video, 0

    def _next_video_frame(self) -> np.ndarray:
        from scanner.camera.uvc import to_luma

        ok, frame = self._video.read()
        if ok and frame is not None:
            self._video_frames += 1
            return to_luma(frame)
        log.info("replay: video %s ended after %d frames", self.path.name, self._video_frames)
        played = self._video_frames
        self._video.release()
        if not self.loop:
            self._video = None
            raise StopIteration("replay finished")
        if played == 0:
            self._video = None
            raise CameraMissing(f"no readable frame in video '{self.path}'")
        self._open_video()
        return self._next_video_frame()

    def close(self) -> None:
        self._files = []
        if self._video is not None:
            self._video.release()
            self._video = None
