"""Where everything goes, computed from the screen size alone.

Sizes scale with the shorter side, so the official 7-inch panel (800x480), 1024x600 panels and
1920x1080 monitors get the same proportions; when the screen is taller than wide (a panel mounted in
portrait) the preview and the result icon move above the text, and the status bar takes two rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

Rect = pygame.Rect

# The smallest text a visitor must read (hints, the second language), in pixels of font size, on the
# official 7-inch panel (800x480 over 154 mm: 0.193 mm a pixel), from 1 m: a capital letter 10 arc
# minutes tall (2.9 mm), what a person with 20/40 vision reads, is 15 px; DejaVu Sans's capitals are
# 0.73 of its size, so 21 px. Larger screens scale it with their shorter side.
MIN_TEXT_PX_7INCH = 21


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    portrait: bool
    pad: int
    status: Rect
    status_rows: int
    main: Rect
    progress: Rect
    title_px: int
    second_px: int
    name_px: int
    body_px: int
    small_px: int
    status_px: int
    venue_px: int
    clock_px: int
    status_small_px: int
    button_px: int
    min_text_px: int

    @classmethod
    def for_size(cls, width: int, height: int) -> "Layout":
        unit = min(width, height)
        portrait = height > width
        row = max(28, round(unit * 0.1))
        rows = 2 if portrait else 1
        status = Rect(0, 0, width, row * rows)
        main = Rect(0, status.bottom, width, height - status.bottom)
        bar = max(4, round(unit * 0.014))
        status_px = max(10, round(row * 0.36))
        return cls(
            width=width, height=height, portrait=portrait, pad=max(6, round(unit * 0.035)),
            status=status, status_rows=rows, main=main, progress=Rect(0, height - bar, width, bar),
            title_px=round(unit * 0.085), second_px=round(unit * 0.05), name_px=round(unit * 0.07),
            body_px=round(unit * 0.05), small_px=round(unit * 0.046), status_px=status_px,
            venue_px=round(status_px * 1.15), clock_px=round(status_px * 1.3), status_small_px=round(status_px * 0.9),
            button_px=round(unit * 0.05), min_text_px=max(MIN_TEXT_PX_7INCH, round(unit * MIN_TEXT_PX_7INCH / 480)),
        )

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def font_sizes(self) -> set[int]:
        """Every nominal font size the screen uses at this size (the glyph test renders each)."""
        return {self.title_px, self.second_px, self.name_px, self.body_px, self.small_px, self.status_px,
                self.venue_px, self.clock_px, self.status_small_px, self.button_px}

    # ---- the parts of the screen -------------------------------------------------------------
    def content(self) -> Rect:
        """The main area less its padding and the progress bar."""
        return self.main.inflate(-2 * self.pad, -2 * self.pad - 2 * self.progress.height)

    def banner(self) -> Rect:
        """A strip at the bottom of the main area for a lasting problem (clock, storage)."""
        height = round(self.body_px * (3.4 if self.portrait else 2.6))  # portrait: three lines of readable text
        return Rect(0, self.height - height, self.width, height)

    def ready(self, with_banner: bool) -> tuple[Rect, Rect]:
        """(camera preview, instruction text) for the ready screen."""
        area = self.content()
        if with_banner:
            area.height = self.banner().top - self.pad - area.top
        if self.portrait:
            preview_h = min(round(area.height * 0.58), area.width)
            preview = Rect(area.left, area.top, area.width, preview_h)
            return preview, Rect(area.left, preview.bottom + self.pad, area.width, area.bottom - preview.bottom - self.pad)
        preview = Rect(area.left, area.top, round(area.width * 0.52), area.height)
        return preview, Rect(preview.right + 2 * self.pad, area.top, area.right - preview.right - 2 * self.pad, area.height)

    def result(self) -> tuple[Rect, Rect]:
        """(icon, text) for a result or problem screen."""
        area = self.content()
        if self.portrait:
            side = min(round(area.height * 0.3), round(area.width * 0.55))
            icon = Rect(0, area.top + self.pad, side, side)
            icon.centerx = area.centerx
            return icon, Rect(area.left, icon.bottom + self.pad, area.width, area.bottom - icon.bottom - self.pad)
        side = min(round(area.height * 0.72), round(area.width * 0.3))
        icon = Rect(area.left + self.pad, 0, side, side)
        icon.centery = area.centery
        return icon, Rect(icon.right + 2 * self.pad, area.top, area.right - icon.right - 2 * self.pad, area.height)

    def panels(self, portrait_share: float, landscape_share: float) -> tuple[Rect, Rect]:
        """(information, controls): side by side, or one above the other in portrait (maintenance, keypad)."""
        area = self.content()
        if self.portrait:
            info = Rect(area.x, area.y, area.width, round(area.height * portrait_share))
            return info, Rect(area.x, info.bottom + self.pad, area.width, area.bottom - info.bottom - self.pad)
        info = Rect(area.x, area.y, round(area.width * landscape_share), area.height)
        return info, Rect(info.right + self.pad * 2, area.y, area.right - info.right - self.pad * 2, area.height)

    def buttons(self, text: Rect, count: int) -> list[Rect]:
        """``count`` touch buttons side by side along the bottom of ``text``."""
        height = round(self.button_px * 2.4)
        gap = self.pad
        width = (text.width - gap * (count - 1)) // count
        return [Rect(text.left + i * (width + gap), text.bottom - height, width, height) for i in range(count)]

    def status_cells(self) -> dict[str, Rect]:
        """Cells of the status bar: venue, sync, beacon, clock and the language button."""
        row = self.status.height // self.status_rows
        inset = max(2, row // 8)
        em = self.status_px
        lang_w, clock_w, beacon_w, sync_w = round(em * 6.2), round(em * 6), round(em * 8), round(em * 12)
        cells: dict[str, Rect] = {}
        right = self.width - inset
        cells["lang"] = Rect(right - lang_w, inset, lang_w, row - 2 * inset)
        right = cells["lang"].left - inset * 2
        cells["clock"] = Rect(right - clock_w, 0, clock_w, row)
        right = cells["clock"].left - inset * 2
        if self.portrait:
            half = (self.width - 3 * inset * 2) // 2
            cells["sync"] = Rect(inset * 2, row, half, row)
            cells["beacon"] = Rect(cells["sync"].right + inset * 2, row, half, row)
        else:
            cells["beacon"] = Rect(right - beacon_w, 0, beacon_w, row)
            cells["sync"] = Rect(cells["beacon"].left - inset * 2 - sync_w, 0, sync_w, row)
            right = cells["sync"].left - inset * 2
        cells["venue"] = Rect(inset * 2, 0, max(0, right - inset * 2), row)
        return cells

    def corner(self) -> Rect:
        """The top-left corner where a long press opens maintenance."""
        side = max(48, round(min(self.width, self.height) * 0.12))
        return Rect(0, 0, side, side)
