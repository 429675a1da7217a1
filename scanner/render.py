"""Render QR codes into grey camera-like scenes: for the synthetic camera, tests and benchmarks.

Two levels: ``render_code`` / ``scene`` paste a crisp code into a noisy frame (cheap, for the demo);
``render_shot`` films a code the way a kiosk camera sees it: printed on a card or shown on a phone
(pixel grid, bezel, glare), tilted, rotated, out of focus, noisy, faded or inverted, in front of a
cluttered background. The benchmark corpus and the decoder tests are built from ``render_shot``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import segno

QUIET_ZONE = 4  # modules of light margin the QR standard asks for


def qr_modules(payload: bytes, error: str = "m") -> np.ndarray:
    """The code's module matrix (True = dark), exactly these bytes, no quiet zone.

    segno picks the densest mode that holds the bytes (byte, alphanumeric, numeric or kanji), as
    phone apps and card printers do; the decoder must return the same bytes whatever the mode.
    """
    return _modules(bytes(payload), error).copy()


@functools.lru_cache(maxsize=64)
def _modules(payload: bytes, error: str) -> np.ndarray:  # encoding is the slow part of a corpus
    code = segno.make(payload, error=error, micro=False, boost_error=False)
    return np.array([list(row) for row in code.matrix], dtype=bool)


def render_code(payload: bytes, module_px: int = 4, quiet: int = QUIET_ZONE, dark: int = 20,
                light: int = 235) -> np.ndarray:
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


def held_code(payload: bytes, width: int, height: int, medium: str = "paper", module_px: int = 4,
              rotation: float = 0.0, seed: int = 0) -> np.ndarray:
    """A code held up to the camera, as the synthetic camera films it: a card, or a phone's dark body
    around the code, turned by ``rotation`` degrees, on a noisy background. Numpy and Pillow only,
    so a kiosk running the synthetic camera does not load OpenCV (``render_shot`` films the corpus)."""
    from PIL import Image

    code = render_code(payload, module_px=module_px)
    if medium == "phone":
        code = np.pad(code, module_px * 3, constant_values=18)
    held = Image.fromarray(code).rotate(rotation, resample=Image.Resampling.BILINEAR, expand=True)
    mask = Image.new("L", code.shape[::-1], 255).rotate(rotation, resample=Image.Resampling.BILINEAR, expand=True)
    if held.width > width or held.height > height:
        raise ValueError(f"a {held.width}x{held.height} code does not fit a {width}x{height} frame")
    frame = Image.fromarray(scene(width, height, seed=seed))
    frame.paste(held, ((width - held.width) // 2, (height - held.height) // 2), mask)
    return np.array(frame)


@dataclass(frozen=True)
class Shot:
    """How one camera frame sees a code (or, with no payload, a scene without one)."""

    width: int = 640
    height: int = 480
    medium: str = "paper"        # "paper" (printed card, CCCD) or "phone" (a lit screen with a pixel grid)
    px_per_module: float = 4.0   # size of one module in the frame, at the code's centre
    rotation: float = 0.0        # degrees, in the image plane
    tilt: float = 0.0            # degrees the card or phone leans away from the camera (perspective)
    blur: float = 0.0            # Gaussian sigma in pixels: focus and motion
    noise: float = 3.0           # sensor noise sigma in grey levels
    glare: float = 0.0           # 0..1: strength of a specular highlight across the code
    contrast: float = 1.0        # 1 = black on white; 0.2 = a faded print or a dimmed screen
    inverted: bool = False       # light modules on a dark ground (phone dark mode)
    seed: int = 0


def render_shot(payload: bytes | None, shot: Shot, error: str = "m") -> np.ndarray:
    """A 2-D uint8 frame of ``shot``; raises ValueError if the code cannot fit the frame."""
    import cv2

    rng = np.random.default_rng(shot.seed)
    frame = _background(shot.width, shot.height, rng).astype(np.float32)
    modules = qr_modules(payload, error) if payload is not None else None
    n = modules.shape[0] if modules is not None else int(rng.integers(25, 60))
    source, code_box = (_phone if shot.medium == "phone" else _card)(modules, n, shot, rng)
    scale = shot.px_per_module / code_box[2]  # destination px per source px
    if scale < 1:  # the lens and sensor average light: no aliasing of the print itself
        source = cv2.GaussianBlur(source, (0, 0), 0.35 / scale)
    src_corners, dst_corners = _placement(source.shape, code_box, scale, shot, rng)
    matrix = cv2.getPerspectiveTransform(src_corners, dst_corners)
    cv2.warpPerspective(source, matrix, (shot.width, shot.height), dst=frame, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)
    if shot.medium == "phone":
        _screen_grid(frame, matrix, source.shape, rng)
    img = frame
    if shot.glare > 0:
        img += _glare(dst_corners, shot, rng)
    if shot.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), shot.blur)
    if shot.noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(shot.noise)
    return img.clip(0, 255).astype(np.uint8)


def _tones(shot: Shot, dark: float, light: float) -> tuple[float, float]:
    """Dark and light grey of the modules after fading and inversion."""
    mid = (dark + light) / 2
    half = (light - dark) / 2 * shot.contrast
    dark, light = mid - half, mid + half
    return (light, dark) if shot.inverted else (dark, light)


def _code_image(modules: np.ndarray | None, n: int, cell: int, dark: float, light: float,
                rng: np.random.Generator) -> np.ndarray:
    """Modules plus quiet zone at ``cell`` source px per module; without a code, text-like blocks."""
    if modules is None:  # something that is not a code: lines of "text" and a photo-like patch
        modules = np.zeros((n, n), dtype=bool)
        for row in range(1, n - 1, 3):
            length = int(rng.integers(n // 3, n - 1))
            modules[row, 1:length] = rng.random(length - 1) < 0.55
    padded = np.pad(modules, QUIET_ZONE, constant_values=False)
    img = np.where(padded, dark, light).astype(np.float32)
    return np.kron(img, np.ones((cell, cell), dtype=np.float32))


def _card(modules: np.ndarray | None, n: int, shot: Shot, rng: np.random.Generator):
    """A printed card (white, with a margin of print around the code), 4 source px per module."""
    cell = 4
    dark, light = _tones(shot, 25.0, 230.0)
    code = _code_image(modules, n, cell, dark, light, rng)
    margin = cell * int(rng.integers(2, 8))
    card = np.full((code.shape[0] + 2 * margin, code.shape[1] + 2 * margin), light, np.float32)
    # A few printed lines beside the code, as on a CCCD card.
    for y in range(margin // 3, card.shape[0] - 2, max(6, margin // 2)):
        if rng.random() < 0.5:
            card[y:y + 2, 2:max(3, margin - 3)] = dark
    card[margin:margin + code.shape[0], margin:margin + code.shape[1]] = code
    return card, (margin, margin, cell, code.shape[0])


def _phone(modules: np.ndarray | None, n: int, shot: Shot, rng: np.random.Generator):
    """A phone: dark body around a lit screen showing the code (4 source px per module).

    The screen's pixel grid is added after the warp (see ``_screen_grid``), so that it beats against
    the camera's pixels into moiré the way a filmed screen does.
    """
    cell = 4
    dark, light = _tones(shot, 12.0, 245.0)
    code = _code_image(modules, n, cell, dark, light, rng)
    side, top = cell * 2, cell * int(rng.integers(4, 10))
    screen = np.full((code.shape[0] + 2 * top, code.shape[1] + 2 * side), light, np.float32)
    screen[top:top + code.shape[0], side:side + code.shape[1]] = code
    bezel = cell * 2
    body = np.full((screen.shape[0] + 2 * bezel, screen.shape[1] + 2 * bezel), 18.0, np.float32)
    body[bezel:-bezel, bezel:-bezel] = screen
    return body, (bezel + side, bezel + top, cell, code.shape[0])


def _screen_grid(frame: np.ndarray, matrix: np.ndarray, source_shape: tuple[int, ...], rng: np.random.Generator) -> None:
    """Multiply the filmed screen by its pixel grid (dimmer sub-pixels, a dark gap between rows),
    averaged over 3x3 points per camera pixel as a sensor pixel averages light: 8 to 16 screen
    pixels per module still alias into moiré."""
    h, w = source_shape[:2]
    bezel = 8
    period = 4 / rng.uniform(8, 16)  # source px per screen pixel
    inverse = np.linalg.inv(matrix)
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64) @ matrix.T
    corners = corners[:, :2] / corners[:, 2:]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    total = np.zeros(xs.shape, np.float32)
    inside = np.zeros(xs.shape, bool)
    subpixel = np.array([1.0, 0.9, 0.78], np.float32)
    offsets = (-1 / 3, 0.0, 1 / 3)
    for dx, dy in itertools.product(offsets, offsets):
        x, y = xs + dx, ys + dy
        d = inverse[2, 0] * x + inverse[2, 1] * y + inverse[2, 2]
        u = (inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]) / d
        v = (inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]) / d
        inside |= (u > bezel) & (u < w - bezel) & (v > bezel) & (v < h - bezel)
        gap = np.where(np.mod(v / period, 1.0) > 0.75, 0.7, 1.0).astype(np.float32)
        total += gap * subpixel[(np.mod(u / period, 1.0) * 3).astype(int).clip(0, 2)]
    region = frame[y0:y1, x0:x1]
    region[inside] *= total[inside] / len(offsets) ** 2


def _placement(shape: tuple[int, ...], code_box: tuple[int, int, int, int], scale: float, shot: Shot,
               rng: np.random.Generator):
    """Source and destination corners of the medium: rotated, tilted in 3-D, placed so the code fits."""
    h, w = shape[:2]
    x0, y0, _, size = code_box
    centre = np.array([x0 + size / 2, y0 + size / 2])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - centre
    code = np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]], np.float64) - centre
    focal = 1.2 * max(shot.width, shot.height)
    axis = rng.uniform(0, math.pi)

    def project(points: np.ndarray) -> np.ndarray:
        pts = points * scale
        theta = math.radians(shot.rotation)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pts = pts @ rot.T
        # Lean the plane by `tilt` about an in-plane axis, then project with a pinhole at distance `focal`.
        a, t = axis, math.radians(shot.tilt)
        u = pts @ np.array([math.cos(a), math.sin(a)])
        v = pts @ np.array([-math.sin(a), math.cos(a)])
        depth = focal + v * math.sin(t)
        v = v * math.cos(t)
        xy = np.stack([u * math.cos(a) - v * math.sin(a), u * math.sin(a) + v * math.cos(a)], axis=1)
        return xy * (focal / depth)[:, None]

    code_dst = project(code)
    lo, hi = code_dst.min(axis=0), code_dst.max(axis=0)
    room = np.array([shot.width, shot.height]) - (hi - lo) - 4
    if (room < 0).any():
        raise ValueError(f"a code of {size / code_box[2]:.0f} modules at {shot.px_per_module} px/module "
                         f"does not fit a {shot.width}x{shot.height} frame")
    offset = rng.uniform(0, room) + 2 - lo
    return (corners + centre).astype(np.float32), (project(corners) + offset).astype(np.float32)


def _glare(corners: np.ndarray, shot: Shot, rng: np.random.Generator) -> np.ndarray:
    """A bright elliptical highlight over part of the medium (a lamp reflected in a screen or laminate)."""
    centre = corners.mean(axis=0) + rng.uniform(-0.25, 0.25, 2) * (corners.max(axis=0) - corners.min(axis=0))
    radius = 0.22 * float(np.linalg.norm(corners[2] - corners[0]))
    yy, xx = np.ogrid[0:shot.height, 0:shot.width]
    stretch = rng.uniform(1.5, 3.0)
    angle = rng.uniform(0, math.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    dist2 = (along / stretch) ** 2 + across ** 2
    return (255 * shot.glare * np.exp(-dist2 / (2 * (radius / 2) ** 2))).astype(np.float32)


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered entrance: shaded wall, boxes, edges and a little text; never a code."""
    import cv2

    gx, gy = rng.uniform(-0.15, 0.15, 2)
    shade = np.add.outer(gy * np.arange(height, dtype=np.float32), gx * np.arange(width, dtype=np.float32))
    frame = (rng.uniform(70, 160) + shade).clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, width // 2)), int(rng.integers(20, height // 2))
        cv2.rectangle(frame, (x, y), (x + w, y + h), int(rng.integers(0, 255)), -1)
    for _ in range(int(rng.integers(2, 6))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(frame, p1, p2, int(rng.integers(0, 255)), int(rng.integers(1, 6)))
    for _ in range(int(rng.integers(0, 3))):
        org = (int(rng.integers(0, width - 100)), int(rng.integers(20, height)))
        cv2.putText(frame, "LOI VAO / ENTRANCE", org, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.4, 1.2),
                    int(rng.integers(0, 255)), 2)
    return frame
