"""QR decoding of a camera frame's luminance (Y) plane, QR symbols only, payload bytes exactly.

Stages, tried in order until one reads something (measured with ``kiosk bench scanner``, see
docs/scanner.md; a frame without a code goes through all of them, within 1.3x raw pyzbar's time):

A live camera's frames go through scanner/live.py first, which runs stage 1 on every new frame and
the rest only where a code may be (see there); ``decode_frame`` runs them all, for single images.

1. zxing-cpp on the frame: about 10x cheaper than zbar per frame, and reads more (inverted codes,
   tilted phones, faded prints). It also reports codes it located but could not read, with where.
2. zxing-cpp on the frame smoothed (3x3 binomial, sigma about 0.7) then enlarged 2x: a phone screen's moiré, noise,
   low contrast and codes of only 2-3 pixels per module.
3. zxing-cpp on the frame enlarged 1.5x and sharpened: codes out of focus.
4. pyzbar (zbar), the product brief's decoder, on the frame: an independent second decoder. With
   zxing-cpp present it scans every second line (half the time; the stages above already cover
   small codes); without zxing-cpp it is the only decoder and scans every line.
5. Only where a stage located a code it could not read: that region enlarged 2x and sharpened,
   through both decoders. A frame without a code does not pay for this.

zbar guesses a text encoding and re-encodes short UTF-8 as if it were Shift-JIS ("Ngọc" comes back
as "Ng盻皇"); its ``ZBAR_CFG_BINARY`` option (zbar >= 0.23) returns the symbol's bytes untouched,
which is what this module asks for. zxing-cpp's ``Barcode.bytes`` is likewise the raw content.
"""

from __future__ import annotations

from ctypes import c_void_p, cast, string_at
from typing import Any, Callable

import numpy as np

MAX_FRAME_PIXELS = 4096 * 4096
MIN_SIDE = 21  # the smallest QR code is 21x21 modules


class FrameError(ValueError):
    """A frame that cannot be decoded at all (wrong type, shape or size)."""


def as_luma(frame: object) -> np.ndarray:
    """Validate a frame and return a C-contiguous 2-D uint8 array (the Y plane)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame is {type(frame).__name__}, not a numpy array")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 3 and frame.shape[2] in (3, 4) and frame.dtype == np.uint8:
        # Luminance from RGB(A); pyzbar itself would take channel 0 only.
        frame = (frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114).astype(np.uint8)
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise FrameError(f"frame must be 2-D uint8 (got shape {frame.shape}, dtype {frame.dtype})")
    if frame.size > MAX_FRAME_PIXELS or min(frame.shape) < MIN_SIDE:
        raise FrameError(f"frame size {frame.shape[1]}x{frame.shape[0]} is outside what a camera gives")
    return np.ascontiguousarray(frame)


# ---- zbar, through pyzbar's ctypes bindings ------------------------------------------------------
ZBAR_CFG_BINARY = 4  # zbar.h (0.23+): "don't convert binary data to text"; pyzbar 0.1.9 lacks the name
_ZBAR_GREY = 0x30303859  # fourcc "Y800": 8-bit grey


def zbar_read(luma: np.ndarray, density: int = 1) -> list[bytes]:
    """Every QR code zbar finds in a 2-D uint8 array, as the exact bytes the symbol holds.

    ``density`` n scans every n-th row and column: n = 2 halves the time, and loses little on
    codes of 3 or more pixels per module.
    """
    from pyzbar import wrapper as zbar

    height, width = luma.shape
    pixels = np.ascontiguousarray(luma).tobytes()
    scanner = zbar.zbar_image_scanner_create()
    if not scanner:
        raise MemoryError("zbar could not create a scanner")
    try:
        zbar.zbar_image_scanner_set_config(scanner, 0, zbar.ZBarConfig.CFG_ENABLE, 0)  # 0 = every symbology
        zbar.zbar_image_scanner_set_config(scanner, zbar.ZBarSymbol.QRCODE, zbar.ZBarConfig.CFG_ENABLE, 1)
        zbar.zbar_image_scanner_set_config(scanner, zbar.ZBarSymbol.QRCODE, ZBAR_CFG_BINARY, 1)
        if density != 1:
            zbar.zbar_image_scanner_set_config(scanner, 0, zbar.ZBarConfig.CFG_X_DENSITY, density)
            zbar.zbar_image_scanner_set_config(scanner, 0, zbar.ZBarConfig.CFG_Y_DENSITY, density)
        image = zbar.zbar_image_create()
        if not image:
            raise MemoryError("zbar could not create an image")
        try:
            zbar.zbar_image_set_format(image, _ZBAR_GREY)
            zbar.zbar_image_set_size(image, width, height)
            zbar.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
            if zbar.zbar_scan_image(scanner, image) <= 0:
                return []
            found = []
            symbol = zbar.zbar_image_first_symbol(image)
            while symbol:
                found.append(string_at(zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol)))
                symbol = zbar.zbar_symbol_next(symbol)
            return found
        finally:
            zbar.zbar_image_destroy(image)
    finally:
        zbar.zbar_image_scanner_destroy(scanner)


# ---- zxing-cpp -------------------------------------------------------------------------------------
def _zxing() -> Any | None:
    try:
        import zxingcpp
    except ImportError:  # the pipeline still works with zbar alone, reading less
        return None
    return zxingcpp


def zxing_available() -> bool:
    return _zxing() is not None


def zxing_read(luma: np.ndarray, unreadable: list[tuple[Any, float]] | None = None, fast: bool = False,
               scale: float = 1.0) -> list[bytes]:
    """QR codes (model 2, what every generator makes) zxing-cpp reads, as raw bytes.

    Codes it locates but cannot decode are appended to ``unreadable`` with ``scale``, the size of
    ``luma`` relative to the frame (their positions are in ``luma``'s pixels).
    Rotation search is off: a QR code's finder patterns are found at any angle anyway. ``fast``
    also skips the inverted and downscaled passes (for images already enlarged by a stage).
    """
    zxingcpp = _zxing()
    if zxingcpp is None:
        return []
    results = zxingcpp.read_barcodes(luma, formats=zxingcpp.BarcodeFormat.QRCodeModel2, try_rotate=False,
                                     try_invert=not fast, try_downscale=not fast,
                                     return_errors=unreadable is not None)
    found = []
    for result in results:
        if result.valid:
            found.append(result.bytes)
        elif unreadable is not None:
            unreadable.append((result, scale))
    return found


# ---- the pipeline ----------------------------------------------------------------------------------
# Pillow rather than OpenCV for the three filters: OpenCV is 37 MB of a kiosk's memory for these
# calls alone, and these stages run only on a small share of a live camera's frames (scanner/live.py).
def _image(luma: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(luma)


def unsharp(luma: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """Unsharp mask: undoes some of the blur of a camera focused a little off the code."""
    from PIL import ImageFilter

    return np.asarray(_image(luma).filter(ImageFilter.UnsharpMask(radius=sigma, percent=int(amount * 100), threshold=0)))


def enlarge(luma: np.ndarray, factor: float) -> np.ndarray:
    """Bicubic enlargement: gives the binarizer more than 2-3 pixels per module to work with."""
    from PIL import Image

    height, width = luma.shape
    size = (round(width * factor), round(height * factor))
    return np.asarray(_image(luma).resize(size, Image.Resampling.BICUBIC))


def smoothed(luma: np.ndarray) -> np.ndarray:
    """A 3x3 binomial filter (a Gaussian of sigma about 0.7), in integers: a tenth of Pillow's blur time."""
    wide = luma.astype(np.uint16)
    rows = wide.copy()
    rows[:, 1:-1] = (wide[:, :-2] + 2 * wide[:, 1:-1] + wide[:, 2:] + 2) >> 2
    both = rows.copy()
    both[1:-1] = (rows[:-2] + 2 * rows[1:-1] + rows[2:] + 2) >> 2
    return both.astype(np.uint8)


def smoothed_enlarged(luma: np.ndarray) -> np.ndarray:
    """Smooth away a screen's moiré and sensor noise, then enlarge 2x: phones, faded and small codes."""
    return enlarge(smoothed(luma), 2.0)


def sharpened_enlarged(luma: np.ndarray) -> np.ndarray:
    """Enlarge 1.5x, then sharpen: codes out of focus."""
    return unsharp(enlarge(luma, 1.5), 2.2, 2.0)


def _region(luma: np.ndarray, result: Any, scale: float) -> np.ndarray:
    """The part of the frame around a located code, with a margin for its quiet zone."""
    pos = result.position
    corners = (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
    xs, ys = [int(p.x / scale) for p in corners], [int(p.y / scale) for p in corners]
    margin = int(0.2 * max(max(xs) - min(xs), max(ys) - min(ys))) + 8
    h, w = luma.shape
    return luma[max(0, min(ys) - margin):min(h, max(ys) + margin), max(0, min(xs) - margin):min(w, max(xs) + margin)]


def _second_look(luma: np.ndarray, unreadable: list[tuple[Any, float]]) -> list[bytes]:
    """Located but unreadable codes: that region enlarged 2x, sharpened or not, through both decoders."""
    for result, scale in unreadable[:2]:
        region = _region(luma, result, scale)
        if min(region.shape) < MIN_SIDE or region.size * 4 > MAX_FRAME_PIXELS:
            continue
        big = enlarge(region, 2.0)
        for attempt in (unsharp(big, 3.0, 2.0), big):
            found = zxing_read(attempt) or zbar_read(attempt)
            if found:
                return found
    return []


STAGES = ("zxing", "zxing-smoothed-enlarged", "zxing-sharpened-enlarged", "zbar", "second-look")


def decode_luma(luma: np.ndarray, trace: list[str] | None = None, stages: tuple[str, ...] = STAGES,
                unreadable: list[tuple[Any, float]] | None = None) -> list[bytes]:
    """The decoding pipeline on a validated Y plane (see the module docstring for the order).

    ``stages`` picks which stages run (in STAGES order); ``unreadable`` carries the codes located but
    not read by an earlier call on the same frame. ``trace``, if given, receives the name of the
    stage that read the code (for the benchmark).
    """
    unreadable = [] if unreadable is None else unreadable
    run: dict[str, Callable[[], list[bytes]]] = {
        "zxing": lambda: zxing_read(luma, unreadable),
        "zxing-smoothed-enlarged": lambda: zxing_read(smoothed_enlarged(luma), unreadable, fast=True, scale=2.0),
        "zxing-sharpened-enlarged": lambda: zxing_read(sharpened_enlarged(luma), unreadable, fast=True, scale=1.5),
        "zbar": lambda: zbar_read(luma, density=2 if _zxing() else 1),  # alone, zbar gets every line
        "second-look": lambda: _second_look(luma, unreadable) if unreadable else [],
    }
    for name in stages:
        found = run[name]()
        if found:
            if trace is not None:
                trace.append(name)
            return found
    return []


def decode_frame(frame: object) -> list[bytes]:
    """Payloads of every QR code in the frame, in reading order, without duplicates."""
    luma = as_luma(frame)
    found: list[bytes] = []
    for payload in decode_luma(luma):
        if payload not in found:
            found.append(payload)
    return found
