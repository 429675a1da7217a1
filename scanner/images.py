"""Image files as luminance arrays, for replay and ``kiosk scan-image``: any file Pillow opens.

Transparent images are laid on white first (a QR code saved as black modules on a transparent
background would otherwise come out black on black), 16-bit images are scaled to 8 bits, and
multi-frame files (GIF, TIFF) give their first frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from scanner.decode import MAX_FRAME_PIXELS

# What Pillow raises on a file it cannot read: not an image, truncated, corrupt, too large.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
              Image.DecompressionBombWarning)


class ImageTooLarge(ValueError):
    """An image larger than any camera frame, where shrinking it was not asked for."""


def load_luma(path: str | Path, shrink: bool = False) -> np.ndarray:
    """The image at ``path`` as a 2-D uint8 array; raises one of UNREADABLE if it cannot be read.

    An image above MAX_FRAME_PIXELS raises ImageTooLarge, or with ``shrink`` is scaled down to fit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is an error, not a warning
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_FRAME_PIXELS:
                if not shrink:
                    raise ImageTooLarge(f"{width}x{height} is larger than a camera frame")
                scale = (MAX_FRAME_PIXELS / (width * height)) ** 0.5
                img.draft("L", (int(width * scale), int(height * scale)))  # JPEG: decode at reduced size
                img.load()
                if img.size[0] * img.size[1] > MAX_FRAME_PIXELS:
                    img = img.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.Resampling.BOX)
            img.load()
            return _luma(img)


def _luma(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        return ((values - low) * (255.0 / (high - low or 1.0))).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L"))
