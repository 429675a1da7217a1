"""Render QR codes into grey camera-like scenes: for the synthetic camera, tests and benchmarks."""

from __future__ import annotations

import numpy as np
import segno


def qr_modules(payload: bytes, error: str = "m") -> np.ndarray:
    """The code's module matrix (True = dark), byte mode, exactly these bytes, no quiet zone."""
    code = segno.make(payload, error=error, micro=False, boost_error=False)
    return np.array([list(row) for row in code.matrix], dtype=bool)


def render_code(payload: bytes, module_px: int = 4, quiet: int = 4, dark: int = 20, light: int = 235) -> np.ndarray:
    """A printed-looking code: dark modules on a light card, with the standard 4-module quiet zone."""
    modules = np.pad(qr_modules(payload), quiet, constant_values=False)
    img = np.where(modules, dark, light).astype(np.uint8)
    return np.kron(img, np.ones((module_px, module_px), dtype=np.uint8))


def scene(width: int, height: int, code: np.ndarray | None = None, seed: int = 0, background: int = 110) -> np.ndarray:
    """A camera-sized frame with mild sensor noise and the code (if any) roughly centred."""
    rng = np.random.default_rng(seed)
    frame = rng.normal(background, 6, size=(height, width)).clip(0, 255).astype(np.uint8)
    if code is not None:
        ch, cw = code.shape
        if ch > height or cw > width:
            raise ValueError(f"a {cw}x{ch} code does not fit a {width}x{height} frame")
        y, x = (height - ch) // 2, (width - cw) // 2
        frame[y:y + ch, x:x + cw] = code
    return frame
