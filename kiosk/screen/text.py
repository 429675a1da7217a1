"""Text placed in a box: shrunk, wrapped, cut with an ellipsis, and clipped, so it never leaves the box.

Names come from visitors' codes and venue names from provisioning: they may be very long, carry
combining marks, right-to-left script or control characters. Text is first made safe to show
(NFC, no control or bidi-override characters, one line), then fitted; as a last guard every blit is
clipped to the box, so even stacked combining marks taller than the line cannot spill out.
Right-to-left text is shown in stored order (pygame has no bidi reordering); it still fits its box.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pygame is imported where drawing happens, so `clean` is cheap to import anywhere
    import pygame

    from kiosk.screen.fonts import Fonts

ELLIPSIS = "…"
MAX_CHARS = 400  # nobody reads more on a kiosk; bounds the work spent on hostile input


def clean(text: str) -> str:
    """NFC, control/format characters (incl. bidi overrides) removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", str(text)[: MAX_CHARS * 2])
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char.isspace():
            kept.append(" ")
        elif category[0] != "C":  # Cc control, Cf format (bidi overrides), Cs, Co, Cn
            kept.append(char)
    return " ".join("".join(kept).split())[:MAX_CHARS]


def clusters(text: str) -> list[str]:
    """Characters with their combining marks attached, so a cut never strands a mark."""
    out: list[str] = []
    for char in text:
        if out and unicodedata.combining(char):
            out[-1] += char
        else:
            out.append(char)
    return out


@dataclass(frozen=True)
class Fitted:
    lines: tuple[str, ...]
    size: int
    line_height: int


def _cluster_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for i in range(start, end):
        if spans and unicodedata.combining(text[i]):
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return spans


def wrap(fonts: Fonts, text: str, size: int, bold: bool, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the line is broken between characters.

    Widths are sums of character advances from one FreeType call per text (measuring every
    candidate line with FreeType costs ~0.1-0.3 ms each, too slow for a 16 ms frame).
    """
    advances = fonts.advances(text, size, bold)
    space = fonts.advances(" ", size, bold)[0] if text else 0.0
    lines: list[str] = []
    line_start, line_end, line_width = -1, -1, 0.0
    position = 0
    for word in text.split(" "):
        start, end = position, position + len(word)
        position = end + 1
        word_width = sum(advances[start:end])
        if line_start >= 0 and line_width + space + word_width <= width:
            line_end, line_width = end, line_width + space + word_width
            continue
        if line_start >= 0:
            lines.append(text[line_start:line_end])
        if word_width <= width:
            line_start, line_end, line_width = start, end, word_width
            continue
        piece_start, piece_width = start, 0.0  # break the long word between clusters
        for c_start, c_end in _cluster_spans(text, start, end):
            w = sum(advances[c_start:c_end])
            if piece_width and piece_width + w > width:
                lines.append(text[piece_start:c_start])
                piece_start, piece_width = c_start, 0.0
            piece_width += w
        line_start, line_end, line_width = piece_start, end, piece_width
    if line_start >= 0:
        lines.append(text[line_start:line_end])
    return lines or [""]


def ellipsize(fonts: Fonts, line: str, size: int, bold: bool, width: int) -> str:
    line = line.rstrip()
    advances = fonts.advances(line + ELLIPSIS, size, bold)
    room = width - advances[-1]
    spans = _cluster_spans(line, 0, len(line))
    total = sum(advances[:-1])
    while spans and total > room:
        c_start, c_end = spans.pop()
        total -= sum(advances[c_start:c_end])
    return line[: spans[-1][1] if spans else 0].rstrip() + ELLIPSIS


def _line_width(fonts: Fonts, line: str, size: int, bold: bool) -> float:
    return sum(fonts.advances(line, size, bold))


def fit(fonts: Fonts, text: str, box: pygame.Rect, size: int, bold: bool = False, max_lines: int = 1,
        min_size: int | None = None) -> Fitted:
    """The largest size from ``size`` down to ``min_size`` at which ``text`` fits; else cut with '…'."""
    key = (text, box.width, box.height, size, bold, max_lines, min_size)
    cached = fonts.fits.get(key)
    if cached is not None:
        return cached
    fitted = _fit(fonts, clean(text), box, size, bold, max_lines, min_size)
    fonts.fits[key] = fitted
    if len(fonts.fits) > fonts.CACHE_SIZE:
        fonts.fits.popitem(last=False)
    return fitted


def _fit(fonts: Fonts, text: str, box: pygame.Rect, size: int, bold: bool, max_lines: int,
         min_size: int | None) -> Fitted:
    min_size = max(6, min(size, min_size or int(size * 0.6)))
    current = size
    while True:
        height = fonts.line_height(current, bold)
        lines = wrap(fonts, text, current, bold, box.width)
        if len(lines) <= max_lines and len(lines) * height <= box.height:
            return Fitted(tuple(lines), current, height)
        if current <= min_size:
            break
        current = max(min_size, int(current * 0.9))
    room = max(1, min(max_lines, box.height // max(1, height)))
    kept = lines[:room]
    if len(lines) > room or _line_width(fonts, kept[-1], current, bold) > box.width:
        kept[-1] = ellipsize(fonts, kept[-1], current, bold, box.width)
    return Fitted(tuple(kept), current, height)


def draw(surface: pygame.Surface, fonts: Fonts, text: str, box: pygame.Rect, size: int,
         colour: tuple[int, int, int], bold: bool = False, max_lines: int = 1, align: str = "left",
         valign: str = "middle", min_size: int | None = None) -> pygame.Rect:
    """Draw ``text`` fitted into ``box`` (never outside it); returns the area that was drawn on."""
    fitted = fit(fonts, text, box, size, bold, max_lines, min_size)
    total = fitted.line_height * len(fitted.lines)
    top = {"top": box.top, "bottom": box.bottom - total}.get(valign, box.top + (box.height - total) // 2)
    ascender = fonts.ascender(fitted.size, bold)
    previous_clip = surface.get_clip()
    surface.set_clip(box.clip(previous_clip))
    import pygame

    drawn = pygame.Rect(box.x, box.y, 0, 0)
    try:
        for number, line in enumerate(fitted.lines):
            if not line:
                continue
            image, ink = fonts.render(line, fitted.size, colour, bold)
            x = {"center": box.centerx - ink.width // 2, "right": box.right - ink.width}.get(align, box.left)
            y = top + number * fitted.line_height + ascender - ink.y
            area = surface.blit(image, (max(box.left, x), y))
            drawn = area if drawn.size == (0, 0) else drawn.union(area)
    finally:
        surface.set_clip(previous_clip)
    return drawn.clip(box)
