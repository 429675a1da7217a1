"""State icons drawn from shapes (no font glyphs), so they look the same whatever fonts exist.

Each icon is drawn at twice its size on a transparent surface and smoothly scaled down, which gives
anti-aliased edges with pygame's plain drawing functions; results are cached per size and colour,
since the same few icons come back all day.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import pygame

from kiosk.screen.fonts import display_format

RGB = tuple[int, int, int]
_SUPERSAMPLE = 2
_cache: OrderedDict[tuple, pygame.Surface] = OrderedDict()


class _Pen:
    """Draws in unit coordinates (0..1 across the icon) on a square surface."""

    def __init__(self, surface: pygame.Surface, ink: RGB, hole: RGB):
        self.s, self.size, self.ink, self.hole = surface, surface.get_width(), ink, hole

    def p(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.size), round(y * self.size)

    def w(self, width: float) -> int:
        return max(1, round(width * self.size))

    def circle(self, x: float, y: float, r: float, colour: RGB, width: float = 0) -> None:
        pygame.draw.circle(self.s, colour, self.p(x, y), self.w(r), self.w(width) if width else 0)

    def poly(self, points: list[tuple[float, float]], colour: RGB, width: float = 0) -> None:
        pygame.draw.polygon(self.s, colour, [self.p(x, y) for x, y in points], self.w(width) if width else 0)

    def line(self, points: list[tuple[float, float]], colour: RGB, width: float) -> None:
        """A thick polyline with round joints (pygame's own thick lines thin out on diagonals)."""
        half = width * self.size / 2
        pts = [(x * self.size, y * self.size) for x, y in points]
        for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
            length = math.hypot(x2 - x1, y2 - y1) or 1.0
            nx, ny = -(y2 - y1) / length * half, (x2 - x1) / length * half
            pygame.draw.polygon(self.s, colour, [(x1 + nx, y1 + ny), (x2 + nx, y2 + ny), (x2 - nx, y2 - ny), (x1 - nx, y1 - ny)])
        for x, y in pts:
            pygame.draw.circle(self.s, colour, (round(x), round(y)), round(half))

    def rect(self, x: float, y: float, w: float, h: float, colour: RGB, width: float = 0, radius: float = 0) -> None:
        pygame.draw.rect(self.s, colour, pygame.Rect(*self.p(x, y), self.w(w), self.w(h)),
                         self.w(width) if width else 0, border_radius=self.w(radius) if radius else -1)

    def ellipse(self, x: float, y: float, w: float, h: float, colour: RGB, width: float = 0) -> None:
        pygame.draw.ellipse(self.s, colour, pygame.Rect(*self.p(x, y), self.w(w), self.w(h)),
                            self.w(width) if width else 0)

    def arc(self, x: float, y: float, r: float, start_deg: float, stop_deg: float, colour: RGB, width: float) -> None:
        """A band between two radii, counter-clockwise from start to stop (pygame's arc leaves gaps)."""
        steps = max(8, int(abs(stop_deg - start_deg) / 4))
        angles = [math.radians(start_deg + (stop_deg - start_deg) * i / steps) for i in range(steps + 1)]
        outer = [(x + (r + width / 2) * math.cos(a), y - (r + width / 2) * math.sin(a)) for a in angles]
        inner = [(x + (r - width / 2) * math.cos(a), y - (r - width / 2) * math.sin(a)) for a in reversed(angles)]
        self.poly(outer + inner, colour)


def _tick(pen: _Pen, colour: RGB, cx: float = 0.5, cy: float = 0.5, scale: float = 1.0) -> None:
    pts = [(-0.23, 0.02), (-0.07, 0.18), (0.24, -0.15)]
    pen.line([(cx + x * scale, cy + y * scale) for x, y in pts], colour, 0.09 * scale)


def _cross(pen: _Pen, colour: RGB, cx: float = 0.5, cy: float = 0.5, scale: float = 1.0) -> None:
    d = 0.17 * scale
    pen.line([(cx - d, cy - d), (cx + d, cy + d)], colour, 0.09 * scale)
    pen.line([(cx + d, cy - d), (cx - d, cy + d)], colour, 0.09 * scale)


def _bang(pen: _Pen, colour: RGB, cx: float, cy: float, scale: float) -> None:
    pen.line([(cx, cy - 0.19 * scale), (cx, cy + 0.04 * scale)], colour, 0.09 * scale)
    pen.circle(cx, cy + 0.17 * scale, 0.055 * scale, colour)


def _badge(pen: _Pen, mark: Callable[..., None], cx: float = 0.76, cy: float = 0.76, r: float = 0.21) -> None:
    pen.circle(cx, cy, r + 0.035, pen.hole)
    pen.circle(cx, cy, r, pen.ink)
    mark(pen, pen.hole, cx, cy, r / 0.45)


def _finders(pen: _Pen) -> None:
    for x, y in ((0.08, 0.08), (0.62, 0.08), (0.08, 0.62)):
        pen.rect(x, y, 0.3, 0.3, pen.ink, 0.06)
        pen.rect(x + 0.09, y + 0.09, 0.12, 0.12, pen.ink)
    for x, y in ((0.46, 0.1), (0.46, 0.3), (0.1, 0.46), (0.3, 0.46), (0.46, 0.46), (0.62, 0.5)):
        pen.rect(x, y, 0.09, 0.09, pen.ink)


SHIELD = [(0.5, 0.05), (0.88, 0.18), (0.85, 0.52), (0.5, 0.95), (0.15, 0.52), (0.12, 0.18)]
PIN_HEAD = (0.5, 0.38, 0.3)


def _pin(pen: _Pen) -> None:
    x, y, r = PIN_HEAD
    pen.circle(x, y, r, pen.ink)
    pen.poly([(x - r * 0.87, y + r * 0.5), (x + r * 0.87, y + r * 0.5), (x, 0.95)], pen.ink)
    pen.circle(x, y, r * 0.42, pen.hole)


def _draw(name: str, pen: _Pen) -> None:
    ink, hole = pen.ink, pen.hole
    if name == "tick":
        pen.circle(0.5, 0.5, 0.47, ink)
        _tick(pen, hole, scale=1.25)
    elif name == "cross":
        pen.circle(0.5, 0.5, 0.47, ink)
        _cross(pen, hole, scale=1.3)
    elif name == "repeat":  # a circular arrow around a small tick: "you did this already"
        pen.arc(0.5, 0.5, 0.4, 100, 420, ink, 0.1)
        pen.poly([(0.5, 0.0), (0.5, 0.22), (0.68, 0.11)], ink)
        _tick(pen, ink, scale=0.8)
    elif name == "qr" or name == "qr-cross":
        _finders(pen)
        if name == "qr-cross":
            _badge(pen, _cross)
        else:
            pen.rect(0.62, 0.62, 0.3, 0.3, ink, 0.06)
    elif name in ("shield-tick", "shield-cross"):
        pen.poly(SHIELD, ink)
        (_tick if name == "shield-tick" else _cross)(pen, hole, 0.5, 0.47, 1.1)
    elif name == "hourglass":
        pen.rect(0.2, 0.05, 0.6, 0.09, ink, radius=0.03)
        pen.rect(0.2, 0.86, 0.6, 0.09, ink, radius=0.03)
        pen.poly([(0.27, 0.14), (0.73, 0.14), (0.53, 0.5), (0.73, 0.86), (0.27, 0.86), (0.47, 0.5)], ink, 0.06)
        pen.poly([(0.5, 0.62), (0.68, 0.84), (0.32, 0.84)], ink)
        pen.poly([(0.36, 0.26), (0.64, 0.26), (0.5, 0.44)], ink)
    elif name == "camera-off":
        pen.rect(0.06, 0.28, 0.88, 0.56, ink, radius=0.08)
        pen.rect(0.34, 0.18, 0.32, 0.14, ink, radius=0.04)
        pen.circle(0.5, 0.56, 0.19, hole)
        pen.circle(0.5, 0.56, 0.11, ink)
        pen.line([(0.1, 0.08), (0.9, 0.94)], hole, 0.16)
        pen.line([(0.1, 0.08), (0.9, 0.94)], ink, 0.07)
    elif name == "storage":
        pen.rect(0.1, 0.16, 0.66, 0.66, ink)
        pen.ellipse(0.1, 0.72, 0.66, 0.2, ink)
        for top in (0.38, 0.6):  # seams between the stacked discs
            pen.line([(0.1, top), (0.43, top + 0.1), (0.76, top)], hole, 0.03)
        pen.ellipse(0.1, 0.06, 0.66, 0.2, ink)
        pen.ellipse(0.14, 0.09, 0.58, 0.14, hole, 0.02)
        _badge(pen, _bang, 0.76, 0.76, 0.21)
    elif name == "clock":
        pen.circle(0.5, 0.5, 0.45, ink, 0.08)
        pen.line([(0.5, 0.5), (0.5, 0.22)], ink, 0.07)
        pen.line([(0.5, 0.5), (0.7, 0.62)], ink, 0.07)
        for angle in range(0, 360, 90):
            a = math.radians(angle)
            pen.circle(0.5 + 0.33 * math.cos(a), 0.5 + 0.33 * math.sin(a), 0.03, ink)
    elif name == "pin":
        _pin(pen)
    elif name == "pin-off":
        _pin(pen)
        pen.line([(0.12, 0.1), (0.88, 0.9)], hole, 0.15)
        pen.line([(0.12, 0.1), (0.88, 0.9)], ink, 0.06)
    elif name == "warning":
        pen.poly([(0.5, 0.06), (0.96, 0.9), (0.04, 0.9)], ink)
        _bang(pen, hole, 0.5, 0.58, 1.15)
    elif name == "gear":
        teeth, outer, inner = 8, 0.47, 0.36
        points = []
        for i in range(teeth * 4):
            a = 2 * math.pi * i / (teeth * 4)
            r = outer if i % 4 in (1, 2) else inner
            points.append((0.5 + r * math.cos(a), 0.5 + r * math.sin(a)))
        pen.poly(points, ink)
        pen.circle(0.5, 0.5, 0.15, hole)
    elif name == "cloud":
        pen.circle(0.33, 0.6, 0.2, ink)
        pen.circle(0.55, 0.48, 0.26, ink)
        pen.circle(0.76, 0.63, 0.17, ink)
        pen.rect(0.15, 0.6, 0.72, 0.2, ink, radius=0.1)
    elif name == "cloud-off":
        _draw("cloud", pen)
        pen.line([(0.12, 0.12), (0.88, 0.9)], hole, 0.14)
        pen.line([(0.12, 0.12), (0.88, 0.9)], ink, 0.06)
    elif name in ("beacon", "beacon-off"):
        pen.circle(0.5, 0.62, 0.09, ink)
        pen.line([(0.5, 0.62), (0.5, 0.95)], ink, 0.07)
        for r in (0.24, 0.4):
            pen.arc(0.5, 0.62, r, 35, 145, ink, 0.07)
        if name == "beacon-off":
            pen.line([(0.12, 0.12), (0.88, 0.9)], hole, 0.14)
            pen.line([(0.12, 0.12), (0.88, 0.9)], ink, 0.06)
    elif name == "keypad":  # twelve keys: typing a number instead of scanning
        for i in range(12):
            pen.rect(0.1 + (i % 3) * 0.28, 0.04 + (i // 3) * 0.24, 0.24, 0.2, ink, radius=0.04)
    elif name == "power":  # the power symbol: the kiosk is starting
        pen.arc(0.5, 0.55, 0.36, 120, 420, ink, 0.1)
        pen.line([(0.5, 0.08), (0.5, 0.5)], ink, 0.1)
    elif name == "staff":  # a person: "see a staff member"
        pen.circle(0.5, 0.28, 0.17, ink)
        pen.rect(0.2, 0.52, 0.6, 0.42, ink, radius=0.2)
        pen.rect(0.44, 0.52, 0.12, 0.2, hole)
    elif name == "phone":
        pen.rect(0.27, 0.05, 0.46, 0.9, ink, radius=0.08)
        pen.rect(0.33, 0.14, 0.34, 0.62, hole)
        pen.circle(0.5, 0.85, 0.045, hole)
    else:
        raise KeyError(f"no icon named {name!r}")


ICONS = ("tick", "cross", "repeat", "qr", "qr-cross", "shield-tick", "shield-cross", "hourglass", "camera-off",
         "storage", "clock", "pin", "pin-off", "warning", "gear", "cloud", "cloud-off", "beacon", "beacon-off", "phone",
         "keypad", "power", "staff")


def icon(name: str, size: int, ink: RGB, hole: RGB) -> pygame.Surface:
    """The icon ``name`` as a transparent square of ``size`` pixels; ``hole`` is the cut-out colour."""
    size = max(4, int(size))
    key = (name, size, ink, hole)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    big = pygame.Surface((size * _SUPERSAMPLE, size * _SUPERSAMPLE), pygame.SRCALPHA)
    big.fill((*hole, 0))  # transparent, but edges blend towards the background colour, not black
    _draw(name, _Pen(big, ink, hole))
    image = display_format(pygame.transform.smoothscale(big, (size, size)))
    _cache[key] = image
    if len(_cache) > 160:
        _cache.popitem(last=False)
    return image


def draw_icon(surface: pygame.Surface, name: str, rect: pygame.Rect, ink: RGB, hole: RGB) -> pygame.Rect:
    """Draw ``name`` centred in ``rect`` (as large as the rect's shorter side)."""
    image = icon(name, min(rect.width, rect.height), ink, hole)
    return surface.blit(image, image.get_rect(center=rect.center))
