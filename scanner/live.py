"""Decoding a live camera's stream: an idle frame costs one cheap pass, or nothing at all.

A kiosk sees no code most of the day. ``LiveDecoder`` keeps a small signature of each frame (the
mean brightness of 16x16-pixel blocks, from every 8th pixel of every 8th row: sensor noise averages
out, a hand or a phone moving in does not) and decides per frame:

- **The scene moved** (a block's mean changed by more than CHANGE_LEVEL grey levels since the
  previous frame): one zxing-cpp pass. The expensive stages (scanner/decode.py: smoothed and
  sharpened enlargements, second look) follow only on evidence that a code is there (zxing-cpp
  located one it could not read), or on one moving frame in THOROUGH_EVERY_MOVING (a code held in a
  trembling hand).
- **The scene has just settled** (first still frame after a move): the whole pipeline, once. A
  visitor holding a code still in front of the camera is exactly this.
- **Still, already decoded**: not decoded again; the last result stands (a code in view stays in
  view), with a zxing-cpp pass every RECHECK_EVERY frames and the whole pipeline every
  THOROUGH_EVERY_STILL frames in case the scene drifted slowly.

With zxing-cpp missing, zbar is the whole decoder on every new frame (as in ``decode_frame``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scanner.decode import STAGES, as_luma, decode_luma, zxing_available

CHANGE_LEVEL = 12          # grey levels of a block's mean: above sensor noise, below a hand or a card
RECHECK_EVERY = 15         # still frames between two zxing-cpp passes (1 s at 15 fps)
THOROUGH_EVERY_STILL = 150  # still frames between two whole-pipeline passes (10 s at 15 fps)
THOROUGH_EVERY_MOVING = 15  # moving frames between two whole-pipeline passes without evidence (1 s)
SAMPLE, BLOCK = 8, 2       # signature: every 8th pixel, 2x2 samples a block (16x16 pixels)
LATER_STAGES = tuple(s for s in STAGES if s not in ("zxing", "zbar"))  # zbar reads nothing these miss


def signature(luma: np.ndarray) -> np.ndarray:
    """Sums of 2x2-sample blocks of an 8x-subsampled frame (int32): a few tens of microseconds."""
    samples = luma[::SAMPLE, ::SAMPLE]
    rows, cols = samples.shape[0] // BLOCK, samples.shape[1] // BLOCK
    return samples[:rows * BLOCK, :cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).sum(axis=(1, 3), dtype=np.int32)


class LiveDecoder:
    """Payloads of each frame of one camera's stream; one instance per stream, not thread-safe."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._last: list[bytes] = []
        self._settled_decoded = False  # the still scene has had its whole-pipeline pass
        self._since_cheap = 0
        self._since_thorough = THOROUGH_EVERY_MOVING  # a first frame gets every stage
        self.passes = {"skipped": 0, "cheap": 0, "thorough": 0}  # for the benchmark and the status

    def decode(self, frame: object) -> list[bytes]:
        """Payloads in ``frame`` (exact bytes, no duplicates); raises FrameError like ``decode_frame``."""
        luma = as_luma(frame)
        current = signature(luma)
        moved = (self._previous is None or current.shape != self._previous.shape
                 or int(np.abs(current - self._previous).max()) > CHANGE_LEVEL * BLOCK * BLOCK)
        self._previous = current
        self._since_cheap += 1
        self._since_thorough += 1
        if moved:
            self._settled_decoded = False
            thorough = self._since_thorough >= THOROUGH_EVERY_MOVING
        elif not self._settled_decoded or self._since_thorough >= THOROUGH_EVERY_STILL:
            thorough = True
        elif self._since_cheap < RECHECK_EVERY:
            self.passes["skipped"] += 1
            return list(self._last)
        else:
            thorough = False
        self._last = self._decode(luma, thorough)
        if thorough or self._last:  # the next still frame looks the same: nothing new to find in it
            self._settled_decoded = True
        return list(self._last)

    def _decode(self, luma: np.ndarray, thorough: bool) -> list[bytes]:
        self._since_cheap = 0
        if not zxing_available():
            self.passes["thorough"] += 1
            return _unique(decode_luma(luma, stages=("zbar",)))
        unreadable: list[tuple[Any, float]] = []
        found = decode_luma(luma, stages=("zxing",), unreadable=unreadable)
        if found or not (thorough or unreadable):
            self.passes["cheap"] += 1
            return _unique(found)
        self.passes["thorough"] += 1
        self._since_thorough = 0
        return _unique(decode_luma(luma, stages=LATER_STAGES, unreadable=unreadable))


def _unique(payloads: list[bytes]) -> list[bytes]:
    return list(dict.fromkeys(payloads))
