"""QR decoding of a camera frame's luminance (Y) plane, QR symbols only."""

from __future__ import annotations

import numpy as np
from pyzbar import pyzbar

MAX_FRAME_PIXELS = 4096 * 4096


class FrameError(ValueError):
    """A frame that cannot be decoded at all (wrong type, shape or size)."""


def as_luma(frame: object) -> np.ndarray:
    """Validate a frame and return a C-contiguous 2-D uint8 array (the Y plane)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame is {type(frame).__name__}, not a numpy array")
    if frame.ndim == 3 and frame.shape[2] in (3, 4) and frame.dtype == np.uint8:
        # Luminance from RGB(A); pyzbar itself would take channel 0 only.
        frame = (frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114).astype(np.uint8)
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise FrameError(f"frame must be 2-D uint8 (got shape {frame.shape}, dtype {frame.dtype})")
    if frame.size == 0 or frame.size > MAX_FRAME_PIXELS or min(frame.shape) < 21:
        raise FrameError(f"frame size {frame.shape[1]}x{frame.shape[0]} is outside what a camera gives")
    return np.ascontiguousarray(frame)


def decode_frame(frame: object) -> list[bytes]:
    """Payloads of every QR code in the frame, in reading order, without duplicates."""
    luma = as_luma(frame)
    found: list[bytes] = []
    for symbol in pyzbar.decode(luma, symbols=[pyzbar.ZBarSymbol.QRCODE]):
        if symbol.data not in found:
            found.append(symbol.data)
    return found
