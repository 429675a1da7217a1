"""A camera that films a scripted queue of visitors holding up codes: the demo's and tests' camera.

Scripts: ``demo`` (valid codes, repeats and a code no format knows, looping), ``unique`` (an endless
stream of different valid codes, for load and crash tests) and ``idle`` (no code at all).
Visitors alternately hold up a phone or a printed card, a little turned (scanner/render.py's
``held_code``: numpy and Pillow, no OpenCV); the load script shows plain codes and, like a recording, waits for its reader. Frames come at the configured rate, as a real camera's would, and are
read-only: the same array is handed out for every frame a visitor holds still.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any, Iterator

import numpy as np

from scanner.camera.base import Camera
from scanner.render import held_code, render_code, scene

# The demo's personal health QR tokens match this pattern (see kiosk/demo.py's config).
DEMO_TOKEN_PATTERN = r"DEMO-HQR-[0-9A-F]{12}"


def demo_token(n: int, prefix: str = "0000") -> bytes:
    return f"DEMO-HQR-{prefix}{n:08X}".encode()


def demo_script() -> list[bytes | None]:
    """Visitors in order; None is an empty scene between visitors."""
    a, b, c, d = (demo_token(i) for i in range(1, 5))
    return [a, None, b, None, a, None, b"WIFI:S:cafe;T:WPA;P:secret;;", None, c, None, b, None, d, None]


class SyntheticCamera(Camera):
    name = "synthetic"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, script: str = "demo",
                 hold_frames: int | None = None):
        self.width, self.height, self.fps, self.script = width, height, fps, script
        # A visitor holds a code ~0.8 s; the load script moves its queue as fast as frames are taken:
        # like a recording, it waits for its reader (every frame decoded, at most fps a second).
        self.hold_frames = hold_frames or (2 if script == "unique" else max(2, int(fps * 0.8)))
        self.live = script != "unique"
        self._frames: Iterator[np.ndarray] | None = None
        self._next_at = 0.0
        self._cache: dict[bytes | None, np.ndarray] = {}

    @classmethod
    def from_config(cls, config: Any) -> "SyntheticCamera":
        return cls(config.width, config.height, config.fps, config.synthetic_script)

    def _payloads(self) -> Iterator[bytes | None]:
        if self.script == "demo":
            return itertools.cycle(demo_script())
        if self.script == "unique":
            prefix = secrets.token_hex(2).upper()
            return itertools.chain.from_iterable((demo_token(n, prefix), None) for n in itertools.count(1))
        return itertools.repeat(None)

    def _render(self, payload: bytes | None) -> np.ndarray:
        """A visitor alternately holds up a phone or a printed card, a little tilted; cached per code."""
        if payload not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            n = len(self._cache)
            if payload is None:
                self._cache[payload] = scene(self.width, self.height, seed=n)
            elif self.script == "unique":  # load tests measure the pipeline, not the renderer
                code = render_code(payload, module_px=max(2, min(self.width, self.height) // 80))
                self._cache[payload] = scene(self.width, self.height, code, seed=n)
            else:
                self._cache[payload] = held_code(payload, self.width, self.height, medium=("phone", "paper")[n % 2],
                                                 module_px=max(3, round(min(self.width, self.height) / 120)),
                                                 rotation=(n * 37) % 40 - 20, seed=n)
            self._cache[payload].flags.writeable = False  # handed out many times: nobody may draw on it
        return self._cache[payload]

    def _stream(self) -> Iterator[np.ndarray]:
        for payload in self._payloads():
            frame = self._render(payload)
            for _ in range(self.hold_frames):
                yield frame

    def open(self) -> None:
        self._frames = self._stream()
        self._next_at = time.monotonic()

    def read(self, timeout: float) -> np.ndarray | None:
        if self._frames is None:
            raise RuntimeError("camera not open")
        delay = self._next_at - time.monotonic()
        if delay > timeout:
            time.sleep(timeout)
            return None
        if delay > 0:
            time.sleep(delay)
        self._next_at = max(self._next_at + 1 / self.fps, time.monotonic() - 1 / self.fps)
        return next(self._frames)

    def close(self) -> None:
        self._frames = None
