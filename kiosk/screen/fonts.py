"""Fonts that cover Vietnamese, and a check that a font really has every glyph of a text.

pygame's default font (FreeSans bold) draws boxes for ư, ậ, ễ. DejaVu Sans covers Vietnamese and its
licence allows redistribution, so the package carries DejaVu Sans (regular and bold) in
``kiosk/screen/fonts/`` with its licence: the Pi then never depends on which fonts are installed.
Should the bundled files be missing, fontconfig and the usual Debian paths are tried, and each
candidate must pass :func:`missing_glyphs` on Vietnamese text before it is used.

``pygame.freetype`` is used rather than ``pygame.font`` because its ``get_metrics`` returns ``None``
for a character the font lacks, while ``pygame.font.Font.metrics`` returns the metrics of the
"missing glyph" box and so cannot tell (both checked on this machine with pygame 2.6.1).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import OrderedDict
from pathlib import Path

import pygame
import pygame.freetype

BUNDLED_DIR = Path(__file__).resolve().parent / "fonts"
FACES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}
FONTCONFIG_NAMES = {"regular": ("DejaVu Sans:style=Book", "Noto Sans:style=Regular"),
                    "bold": ("DejaVu Sans:style=Bold", "Noto Sans:style=Bold")}
KNOWN_PATHS = {
    "regular": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"),
    "bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
             "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf"),
}
VIETNAMESE_PROBE = "ĐđƯưƠơẬậỄễỖỗỰựẮắỲỳ"


def display_format(image: pygame.Surface) -> pygame.Surface:
    """``image`` in the display's pixel layout when a display is open: blits are then ~15x faster
    (measured: 320 -> 22 microseconds for a title). Without a display the image is kept as it is."""
    if pygame.display.get_init() and pygame.display.get_surface() is not None:
        try:
            return image.convert_alpha()
        except pygame.error:
            pass
    return image


class FontMissing(RuntimeError):
    """No font that covers Vietnamese could be found."""


def missing_glyphs(font: pygame.freetype.Font, text: str, size: float = 24) -> list[str]:
    """The characters of ``text`` that ``font`` has no glyph for (each once, in order)."""
    metrics = font.get_metrics(text, size=size)
    missing: list[str] = []
    for char, metric in zip(text, metrics):
        if metric is None and char not in missing:
            missing.append(char)
    return missing


def _fontconfig_candidates(face: str) -> list[Path]:
    if not shutil.which("fc-match"):
        return []
    found = []
    for pattern in FONTCONFIG_NAMES[face]:
        try:
            out = subprocess.run(["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))
    return found


def font_file(face: str) -> Path:
    """The file for ``face`` ("regular" or "bold"): bundled, else fontconfig, else known paths."""
    candidates = [BUNDLED_DIR / FACES[face], *_fontconfig_candidates(face), *map(Path, KNOWN_PATHS[face])]
    pygame.freetype.init()
    for path in candidates:
        if not path.is_file():
            continue
        try:
            if not missing_glyphs(pygame.freetype.Font(str(path)), VIETNAMESE_PROBE):
                return path
        except (OSError, pygame.error):
            continue
    raise FontMissing(
        f"no {face} font covering Vietnamese: the bundled {BUNDLED_DIR / FACES[face]} is missing and neither "
        "DejaVu Sans nor Noto Sans is installed (Debian: apt install fonts-dejavu-core)")


class Fonts:
    """The two faces the screen uses, with a small cache of rendered text (status bar, buttons)."""

    CACHE_SIZE = 1024

    def __init__(self) -> None:
        pygame.freetype.init()
        self.paths = {face: font_file(face) for face in FACES}
        self._faces = {face: pygame.freetype.Font(str(path)) for face, path in self.paths.items()}
        for font in self._faces.values():
            font.antialiased = True
            font.kerning = False  # pygame's kerning needs a FreeType built with it; keep widths predictable
        self._cache: OrderedDict[tuple, tuple[pygame.Surface, pygame.Rect]] = OrderedDict()
        self._advances: OrderedDict[tuple, list[float]] = OrderedDict()
        self.fits: OrderedDict[tuple, object] = OrderedDict()  # text.fit results, keyed by text, box and size

    def face(self, bold: bool = False) -> pygame.freetype.Font:
        return self._faces["bold" if bold else "regular"]

    def measure(self, text: str, size: int, bold: bool = False) -> pygame.Rect:
        """Ink box of ``text``: x = left bearing, y = height above the baseline."""
        return self.face(bold).get_rect(text, size=size)

    def width(self, text: str, size: int, bold: bool = False) -> int:
        """Width of the ink: text is placed by its ink box, so this is exactly what it covers."""
        return self.measure(text, size, bold).width if text else 0

    def advances(self, text: str, size: int, bold: bool = False) -> list[float]:
        """Horizontal advance of each character: one FreeType call, then widths of any part are sums."""
        key = (text, size, bold)
        hit = self._advances.get(key)
        if hit is not None:
            self._advances.move_to_end(key)
            return hit
        metrics = self.face(bold).get_metrics(text, size=size) if text else []
        found = [float(m[4]) if m is not None else size * 0.6 for m in metrics]
        self._advances[key] = found
        if len(self._advances) > self.CACHE_SIZE:
            self._advances.popitem(last=False)
        return found

    def line_height(self, size: int, bold: bool = False) -> int:
        return self.face(bold).get_sized_height(size)

    def ascender(self, size: int, bold: bool = False) -> int:
        return self.face(bold).get_sized_ascender(size)

    def render(self, text: str, size: int, colour: tuple[int, int, int], bold: bool = False) -> tuple[pygame.Surface, pygame.Rect]:
        key = (text, size, bold, colour)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        image, ink = self.face(bold).render(text, colour, size=size)
        rendered = (display_format(image), ink)
        self._cache[key] = rendered
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return rendered
