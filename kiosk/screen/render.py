"""Drawing of the visitor-facing screens (ready, results, problems, provisioning) on any surface.

Nothing here keeps state or reads the clock: the app decides what to show, these functions draw it
and return the rectangles they touched (for partial display updates) and any touch buttons.
Titles appear in the main language, with the other language underneath, so a visitor who reads
either understands the result without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pygame

from kiosk.screen import text as textbox
from kiosk.screen.catalogue import other_language, say
from kiosk.screen.fonts import Fonts
from kiosk.screen.icons import draw_icon
from kiosk.screen.layout import Layout
from kiosk.screen.states import LOOKS, MIN_CONTRAST, RGB, Look, View, contrast

GREY_PALETTE = [(i, i, i) for i in range(256)]
PREVIEW_EMPTY = (34, 40, 48)
PREVIEW_WAITING_INK = (200, 205, 210)
AIM = (255, 255, 255)
AIM_SHADOW = (0, 0, 0)


def mix(a: RGB, b: RGB, amount: float) -> RGB:
    """``a`` moved ``amount`` of the way towards ``b``: dimmed text that keeps its contrast."""
    return tuple(round(x + (y - x) * amount) for x, y in zip(a, b))


@dataclass(frozen=True)
class Line:
    text: str
    size: int
    bold: bool = False
    colour: RGB = (255, 255, 255)
    max_lines: int = 1


def secondary_ink(look: Look) -> RGB:
    """The dimmer ink of second-language and hint lines: as far towards the background as keeps
    4.5:1 contrast (WCAG's minimum for body text), never further."""
    for step in range(35, -1, -1):
        colour = mix(look.ink, look.background, step / 100)
        if contrast(colour, look.background) >= MIN_CONTRAST:
            return colour
    return look.ink


def stack(surface: pygame.Surface, fonts: Fonts, box: pygame.Rect, lines: list[Line], gap: int,
          valign: str = "middle", align: str = "left", min_size: int = 8) -> pygame.Rect:
    """Lines of text one under another in ``box``; everything shrinks together if they do not fit,
    but no line below ``min_size`` pixels (a line that still does not fit is cut with "…")."""
    lines = [line for line in lines if line.text]
    if not lines or box.width <= 0 or box.height <= 0:
        return pygame.Rect(box.x, box.y, 0, 0)
    scale = 1.0
    for _ in range(8):
        heights = []
        for line in lines:
            size = max(min(min_size, line.size), round(line.size * scale))
            fitted = textbox.fit(fonts, line.text, pygame.Rect(0, 0, box.width, 10**6), size, line.bold, line.max_lines,
                                 _floor(size, min_size))
            heights.append(len(fitted.lines) * fitted.line_height)
        total = sum(heights) + gap * (len(lines) - 1)
        if total <= box.height:
            break
        scale *= max(0.5, min(0.92, box.height / total))
    y = {"top": box.top, "bottom": box.bottom - total}.get(valign, box.top + max(0, (box.height - total) // 2))
    for line, height in zip(lines, heights):
        cell = pygame.Rect(box.left, y, box.width, height).clip(box)
        if cell.height > 0:
            size = max(min(min_size, line.size), round(line.size * scale))
            textbox.draw(surface, fonts, line.text, cell, size, line.colour, line.bold, line.max_lines, align=align,
                         min_size=_floor(size, min_size))
        y += height + gap
    return box


def _floor(size: int, min_size: int) -> int | None:
    """The smallest size a line may shrink to when fitting its width (None: the text module's default)."""
    return min(size, min_size) if min_size > 8 else None


def button(surface: pygame.Surface, fonts: Fonts, rect: pygame.Rect, label: str, size: int, fill: RGB, ink: RGB,
           outline: bool = False) -> pygame.Rect:
    radius = max(4, rect.height // 5)
    if outline:
        pygame.draw.rect(surface, ink, rect, max(2, size // 10), border_radius=radius)
    else:
        pygame.draw.rect(surface, fill, rect, border_radius=radius)
    textbox.draw(surface, fonts, label, rect.inflate(-size, -size // 3), size, ink, bold=True, align="center",
                 max_lines=2)
    return rect


# ---- the camera preview --------------------------------------------------------------------------
def frame_surface(frame: np.ndarray) -> pygame.Surface:
    """A grey 2-D uint8 array as an 8-bit surface (no copy into RGB: cheap at every frame)."""
    height, width = frame.shape
    image = pygame.image.frombuffer(frame.tobytes(), (width, height), "P")
    image.set_palette(GREY_PALETTE)
    return image


def _cover(source: pygame.Surface, size: tuple[int, int]) -> pygame.Surface:
    """Scale ``source`` to fill ``size``, cropping what sticks out (no letterbox bars)."""
    sw, sh = source.get_size()
    tw, th = size
    if sw * th > tw * sh:
        crop_w = max(1, sh * tw // th)
        source = source.subsurface(pygame.Rect((sw - crop_w) // 2, 0, crop_w, sh))
    else:
        crop_h = max(1, sw * th // tw)
        source = source.subsurface(pygame.Rect(0, (sh - crop_h) // 2, sw, crop_h))
    return pygame.transform.scale(source, size)


def aiming_frame(surface: pygame.Surface, rect: pygame.Rect) -> None:
    """Corner brackets in the middle of the preview: where to hold the code."""
    side = round(min(rect.width, rect.height) * 0.7)
    box = pygame.Rect(0, 0, side, side)
    box.center = rect.center
    arm, width = side // 4, max(3, side // 28)
    for colour, grow in ((AIM_SHADOW, 2), (AIM, 0)):
        w = width + grow
        for cx, cy, dx, dy in ((box.left, box.top, 1, 1), (box.right, box.top, -1, 1),
                               (box.left, box.bottom, 1, -1), (box.right, box.bottom, -1, -1)):
            pygame.draw.rect(surface, colour, pygame.Rect(min(cx, cx + dx * arm), cy - (w if dy < 0 else 0) - grow // 2,
                                                          arm, w))
            pygame.draw.rect(surface, colour, pygame.Rect(cx - (w if dx < 0 else 0) - grow // 2, min(cy, cy + dy * arm),
                                                          w, arm))


def preview(surface: pygame.Surface, fonts: Fonts, layout: Layout, rect: pygame.Rect, frame: np.ndarray | None,
            lang: str) -> pygame.Rect:
    """The live camera picture (or a placeholder) with the aiming frame."""
    previous = surface.get_clip()
    surface.set_clip(rect)
    try:
        if frame is None or frame.ndim != 2 or min(frame.shape) < 2:
            surface.fill(PREVIEW_EMPTY, rect)
            icon_box = pygame.Rect(0, 0, rect.width // 4, rect.width // 4)
            icon_box.center = (rect.centerx, rect.centery - layout.body_px)
            draw_icon(surface, "camera-off", icon_box, (150, 160, 170), PREVIEW_EMPTY)
            textbox.draw(surface, fonts, say("preview.waiting", lang),
                         pygame.Rect(rect.x, icon_box.bottom, rect.width, layout.body_px * 2), layout.body_px,
                         (200, 205, 210), align="center")
        else:
            surface.blit(_cover(frame_surface(frame), rect.size), rect)
        aiming_frame(surface, rect)
    finally:
        surface.set_clip(previous)
    return rect


# ---- whole screens -------------------------------------------------------------------------------
def ready(surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str, direction: str, banner: View | None,
          frame: np.ndarray | None, entry_label: str = "entry.staff",
          today: int | None = None) -> tuple[pygame.Rect, pygame.Rect]:
    """The waiting screen; returns the preview rectangle (redrawn alone as frames arrive) and the
    button that opens the ID-number keypad."""
    look = LOOKS["ready"]
    surface.fill(look.background, layout.main)
    preview_rect, text_rect = layout.ready(banner is not None)
    preview(surface, fonts, layout, preview_rect, frame, lang)
    entry = layout.buttons(text_rect, 1)[0]
    entry = button(surface, fonts, entry, say(entry_label, lang), layout.button_px, look.background, look.ink,
                   outline=True)
    text_rect = pygame.Rect(text_rect.x, text_rect.y, text_rect.width, entry.top - layout.pad - text_rect.y)
    dim = secondary_ink(look)
    icon_side = min(text_rect.width // 3, round(layout.title_px * 2.2))
    icon_rect = pygame.Rect(text_rect.x, text_rect.y, icon_side, icon_side)
    if not layout.portrait:
        draw_icon(surface, look.icon, icon_rect, look.ink, look.background)
        text_rect = pygame.Rect(text_rect.x, icon_rect.bottom + layout.pad, text_rect.width,
                                text_rect.bottom - icon_rect.bottom - layout.pad)
    second = other_language(lang)
    stack(surface, fonts, text_rect, [
        Line(say("ready.title", lang), layout.title_px, True, look.ink, 3),
        Line(say("ready.title", second), layout.second_px, False, dim, 2),
        Line(say("ready.hint", lang), layout.small_px, False, dim, 3),
        Line(say(f"ready.direction.{direction}", lang) + " · " + say(f"ready.direction.{direction}", second),
             layout.body_px, True, look.ink),
        Line(say("ready.today", lang, n=today) if today is not None else "", layout.small_px, False, look.ink),
    ], gap=layout.pad // 2, valign="top" if not layout.portrait else "middle", min_size=layout.min_text_px)
    if banner is not None:
        draw_banner(surface, fonts, layout, banner, lang)
    return preview_rect, entry


def draw_banner(surface: pygame.Surface, fonts: Fonts, layout: Layout, banner: View, lang: str) -> pygame.Rect:
    look = banner.look
    rect = layout.banner()
    surface.fill(look.background, rect)
    side = rect.height - layout.pad
    draw_icon(surface, look.icon, pygame.Rect(layout.pad, rect.y + layout.pad // 2, side, side), look.ink,
              look.background)
    box = pygame.Rect(2 * layout.pad + side, rect.y + 4, rect.width - 3 * layout.pad - side, rect.height - 8)
    textbox.draw(surface, fonts, say(banner.title, lang), box, layout.body_px, look.ink, bold=True, max_lines=3,
                 min_size=layout.min_text_px)
    return rect


def provisioning_facts(view: View, lang: str) -> list[str]:
    """Venue name and id, direction and server from the provisioning credential's facts."""
    facts = dict(view.credential.facts) if view.credential is not None else {}
    unknown = say("provisioning.unknown", lang)

    def fact(*keys: str) -> str:
        for key in keys:
            value = facts.get(key)
            if value not in (None, ""):
                return textbox.clean(str(value))
        return unknown

    direction = fact("direction")
    if direction in ("entry", "exit"):
        direction = say(f"result.direction.{direction}", lang)
    return [say("provisioning.venue", lang, value=fact("venue_name", "venue")),
            say("provisioning.venue_id", lang, value=fact("venue_id")),
            say("provisioning.direction", lang, value=direction),
            say("provisioning.upstream", lang, value=fact("upstream", "upstream_url", "url"))]


def result(surface: pygame.Surface, fonts: Fonts, layout: Layout, view: View, lang: str) -> dict[str, pygame.Rect]:
    """A result, problem or provisioning screen; returns its touch buttons by name."""
    look = view.look
    surface.fill(look.background, layout.main)
    icon_rect, text_rect = layout.result()
    draw_icon(surface, look.icon, icon_rect, look.ink, look.background)
    dim = secondary_ink(look)
    second = other_language(lang)
    lines = [Line(say(view.title, lang), layout.title_px, True, look.ink, 2),
             Line(say(view.title, second), layout.second_px, False, dim, 2)]
    buttons: dict[str, pygame.Rect] = {}
    if view.name:
        lines.append(Line(view.name, layout.name_px, True, look.ink))
    if view.state == "provisioning" and view.credential is not None:
        lines += [Line(fact, layout.body_px, False, look.ink, 2) for fact in provisioning_facts(view, lang)]
        confirm, cancel = layout.buttons(text_rect, 2)
        text_rect = pygame.Rect(text_rect.x, text_rect.y, text_rect.width, confirm.top - layout.pad - text_rect.y)
        buttons["confirm"] = button(surface, fonts, confirm, say("provisioning.confirm", lang), layout.button_px,
                                    look.ink, look.background)
        buttons["cancel"] = button(surface, fonts, cancel, say("provisioning.cancel", lang), layout.button_px,
                                   look.background, look.ink, outline=True)
    if view.actions:
        rects = layout.buttons(text_rect, len(view.actions))
        text_rect = pygame.Rect(text_rect.x, text_rect.y, text_rect.width, rects[0].top - layout.pad - text_rect.y)
        for (name, label), rect in zip(view.actions, rects):
            buttons[name] = button(surface, fonts, rect, say(label, lang), layout.button_px, look.background,
                                   look.ink, outline=True)
    for key, params in view.lines:
        small = key == "rejected.code"
        lines.append(Line(say(key, lang, **params), layout.small_px if small else layout.body_px, False,
                          dim if small else look.ink, 1 if small else 2))
    stack(surface, fonts, text_rect, lines, gap=max(2, layout.pad // 3),
          align="center" if layout.portrait else "left", valign="top" if layout.portrait else "middle",
          min_size=layout.min_text_px)
    return buttons


def progress(surface: pygame.Surface, layout: Layout, view: View, remaining: float) -> pygame.Rect:
    """The strip along the bottom that runs down until the screen returns to ready."""
    look = view.look
    rect = layout.progress
    surface.fill(mix(look.background, (0, 0, 0), 0.35), rect)
    filled = rect.copy()
    filled.width = round(rect.width * max(0.0, min(1.0, remaining)))
    if filled.width:
        surface.fill(mix(look.ink, look.background, 0.25), filled)
    return rect
