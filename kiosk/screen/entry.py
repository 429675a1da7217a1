"""The ``manual-entry`` keypad: a way in for a visitor without a working QR code.

Staff open it with the staff button on the ready or camera-lost screen (or the K key) behind the
maintenance PIN; once unlocked it stays unlocked for ``STAFF_SESSION_S`` so a queue can be typed in
one after another. With ``screen.visitor_keypad`` a visitor opens it directly (venues without
staff). A 12-digit CCCD number goes straight in; a 9-digit CMND number asks for the birth year,
since nothing in it can be checked. The typed digits live in this object only until submitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.screen import render
from kiosk.screen.catalogue import other_language, say
from kiosk.screen.fonts import Fonts
from kiosk.screen.layout import Layout
from kiosk.screen.maintenance import KEY_FILL, Panel, keypad, keypad_name
from kiosk.screen.states import LOOKS

if TYPE_CHECKING:
    from kiosk.screen.app import ScreenApp

IDLE_CLOSE_S = 60.0
STAFF_SESSION_S = 120.0
CCCD_DIGITS, CMND_DIGITS, YEAR_DIGITS = 12, 9, 4


class Keypad(Panel):
    idle_close_s = IDLE_CLOSE_S

    def __init__(self, app: "ScreenApp"):
        super().__init__(app)
        self.source = "manual"  # manual (staff) or keypad (visitor)
        self.stage = "number"   # number -> year (CMND only)
        self.number = ""
        self.year = ""
        self.message: str | None = None
        self.staff_until = 0.0

    def open(self, now: float, source: str) -> None:
        self.active, self.source, self.stage = True, source, "number"
        self.number = self.year = ""
        self.message = None
        self._touch(now)

    def forget(self) -> None:
        self.number = self.year = ""

    # ---- input -------------------------------------------------------------------------------
    def key(self, key: int, char: str, now: float) -> None:
        name = "cancel" if key == pygame.K_ESCAPE else keypad_name(key, char)
        if name is not None:
            self.click(name, now)

    def click(self, name: str, now: float) -> None:
        self._touch(now)
        self.app.sounds.play("maintenance")
        field = "year" if self.stage == "year" else "number"
        value = getattr(self, field)
        limit = YEAR_DIGITS if field == "year" else CCCD_DIGITS
        if name == "cancel":
            self.close()
        elif name == "del":
            setattr(self, field, value[:-1])
            self.message = None
        elif len(name) == 1 and name.isdigit() and len(value) < limit:
            setattr(self, field, value + name)
            self.message = None
        elif name == "ok":
            self._ok(now)

    def _ok(self, now: float) -> None:
        if self.stage == "number":
            if len(self.number) == CMND_DIGITS:
                self.stage, self.message = "year", None
                return
            if len(self.number) != CCCD_DIGITS:
                self.message = "manual-entry.need_digits"
                return
        elif len(self.year) != YEAR_DIGITS:
            self.message = "manual-entry.need_year"
            return
        number, year, source = self.number, self.year, self.source
        self.close()
        self.app.submit_typed(number, year, source)

    # ---- drawing -----------------------------------------------------------------------------
    def draw(self, surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str) -> dict[str, pygame.Rect]:
        look = LOOKS["manual-entry"]
        surface.fill(look.background, layout.main)
        info, pad = layout.panels(0.36, 0.5)
        second = other_language(lang)
        typed = self.year if self.stage == "year" else self.number
        prompt = "manual-entry.year" if self.stage == "year" else "manual-entry.title"
        lines = [render.Line(say(prompt, lang), layout.title_px, True, look.ink, 2),
                 render.Line(say(prompt, second), layout.second_px, False, look.ink, 2),
                 render.Line(_grouped(typed) or "_", layout.title_px, True, look.ink)]
        if self.stage == "number":
            lines.append(render.Line(say("manual-entry.hint", lang), layout.small_px, False, look.ink, 2))
        if self.message:
            lines.append(render.Line(say(self.message, lang), layout.body_px, True, look.ink, 2))
        render.stack(surface, fonts, info, lines, gap=layout.pad // 2, valign="top", min_size=layout.min_text_px)
        return keypad(surface, fonts, layout, pad, lang, "cancel", say("manual-entry.cancel", lang), KEY_FILL, look.ink)


def _grouped(digits: str) -> str:
    """Digits in groups of three, as people read an ID number back."""
    return " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))
