"""The maintenance screen: device status, queue, recent errors, and the few things staff may change.

Reached by a long press in the top-left corner (touch screens) or the F2 / M key, behind the PIN
from ``screen.pin``; with no PIN configured it stays locked. Five wrong PINs lock it for a minute.
It closes by itself after two idle minutes, so a forgotten maintenance screen never blocks visitors.
Changes (direction, language) are saved in the state directory (``kiosk.core.config.save_overrides``).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Callable

import pygame

from kiosk.core.records import Component, StoreState
from kiosk.screen import render
from kiosk.screen import text as textbox
from kiosk.screen.catalogue import CATALOGUE, age_text, say
from kiosk.screen.fonts import Fonts
from kiosk.screen.layout import Layout
from kiosk.core.clock import local_time
from kiosk.screen.states import LOOKS
from kiosk.screen.statusbar import StatusSnapshot

if TYPE_CHECKING:
    from kiosk.screen.app import ScreenApp

LONG_PRESS_S = 3.0
DIM_INK = (176, 190, 197)       # secondary lines on the maintenance background
MESSAGE_INK = (255, 214, 102)   # "Saved", "Wrong PIN"
KEY_FILL = (69, 90, 100)
CLOSE_FILL = (120, 40, 40)
IDLE_CLOSE_S = 120.0
MAX_PIN_FAILURES = 5
LOCKOUT_S = 60.0
PIN_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok")


def keypad(surface: pygame.Surface, fonts: Fonts, layout: Layout, area: pygame.Rect, lang: str, close: str,
           close_label: str, fill: tuple[int, int, int], ink: tuple[int, int, int]) -> dict[str, pygame.Rect]:
    """Digits, Delete and OK in a 3x4 grid, and a wide close button under them (the PIN and ID keypads)."""
    rows, cols = 5, 3
    gap = max(4, layout.pad // 2)
    cell_w = (area.width - gap * (cols - 1)) // cols
    cell_h = (area.height - gap * (rows - 1)) // rows
    buttons: dict[str, pygame.Rect] = {}
    for i, name in enumerate(PIN_KEYS):
        rect = pygame.Rect(area.x + (i % cols) * (cell_w + gap), area.y + (i // cols) * (cell_h + gap), cell_w, cell_h)
        label = say(f"maintenance.{name}", lang) if name in ("del", "ok") else name
        buttons[name] = render.button(surface, fonts, rect, label, layout.button_px, fill, ink)
    bottom = pygame.Rect(area.x, area.y + 4 * (cell_h + gap), area.width, cell_h)
    buttons[close] = render.button(surface, fonts, bottom, close_label, layout.button_px, CLOSE_FILL, ink)
    return buttons


def _state_label(state: str | None, lang: str) -> str:
    if state is None:
        return say("state.missing", lang)
    key = f"state.{state}"
    return say(key, lang) if key in CATALOGUE else textbox.clean(state)[:40]


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def keypad_name(key: int, char: str) -> str | None:
    """The keypad button a key press stands for: a digit, Delete (Backspace) or OK (Enter)."""
    if char.isdigit() and char.isascii():
        return char
    if key == pygame.K_BACKSPACE:
        return "del"
    if key in (pygame.K_RETURN, pygame.K_KP_ENTER):
        return "ok"
    return None


class Panel:
    """A screen that staff (or a visitor) open over the kiosk's own, and that closes when left alone."""

    idle_close_s = IDLE_CLOSE_S

    def __init__(self, app: "ScreenApp"):
        self.app = app
        self.active = False
        self.message: Any = None
        self.last_input = 0.0
        self.version = 0  # bumped on every change, so the app knows to redraw

    def close(self) -> None:
        self.active, self.message = False, None
        self.forget()
        self.version += 1

    def forget(self) -> None:
        """Drop whatever was typed."""

    def _touch(self, now: float) -> None:
        self.last_input = now
        self.version += 1

    def tick(self, now: float) -> None:
        if self.active and now - self.last_input > self.idle_close_s:
            self.close()


class Maintenance(Panel):
    def __init__(self, app: "ScreenApp"):
        super().__init__(app)
        self.stage = "pin"  # pin -> menu <-> camera
        self.entered = ""
        self.message: tuple[str, dict[str, Any]] | None = None
        self.failures = 0
        self.locked_until = 0.0
        self.camera_since: tuple[float, int] = (0.0, 0)
        self.after_unlock: Callable[[float], None] | None = None  # e.g. open the staff keypad instead of the menu

    # ---- opening and closing -----------------------------------------------------------------
    def open(self, now: float) -> None:
        self.active, self.stage, self.entered, self.after_unlock = True, "pin", "", None
        self.message = None if self.app.config.screen.pin else ("maintenance.no_pin", {})
        self._touch(now)

    def unlock(self, now: float) -> None:
        """Skip the PIN (screenshots only)."""
        self.open(now)
        self.stage, self.message = "menu", None
        self._touch(now)

    def forget(self) -> None:
        self.entered = ""

    # ---- input -------------------------------------------------------------------------------
    def key(self, key: int, char: str, now: float) -> None:
        if key == pygame.K_ESCAPE:
            if self.stage == "camera":
                self.click("back", now)
            else:
                self.close()
            return
        if self.stage == "pin":
            name = keypad_name(key, char)
            if name is not None:
                self.click(name, now)
            return
        shortcuts = {pygame.K_d: "direction", pygame.K_l: "language", pygame.K_c: "camera", pygame.K_s: "sync"}
        if key in shortcuts and self.stage == "menu":
            self.click(shortcuts[key], now)

    def click(self, name: str, now: float) -> None:
        self._touch(now)
        self.app.sounds.play("maintenance")
        if name == "close":
            self.close()
        elif self.stage == "pin":
            self._pin_key(name, now)
        elif name == "direction":
            new = "exit" if self.app.config.device.direction == "entry" else "entry"
            self.message = self.app.apply_settings({"device": {"direction": new}})
        elif name == "language":
            new = "en" if self.app.config.screen.language == "vi" else "vi"
            self.message = self.app.apply_settings({"screen": {"language": new}})
        elif name == "sync":
            ok = self.app.request_sync()
            self.message = ("maintenance.sync_requested" if ok else "maintenance.sync_failed", {})
        elif name == "camera":
            self.stage, self.message = "camera", None
            self.camera_since = (now, self.app.frames_seen)
        elif name == "back":
            self.stage = "menu"

    def _pin_key(self, name: str, now: float) -> None:
        pin = self.app.config.screen.pin
        if not pin:
            return
        if now < self.locked_until:
            self.message = ("maintenance.pin_locked", {"seconds": int(self.locked_until - now) + 1})
            return
        if name == "del":
            self.entered = self.entered[:-1]
        elif name.isdigit() and len(name) == 1 and len(self.entered) < 12:
            self.entered += name
        elif name == "ok":
            if hmac.compare_digest(self.entered.encode(), pin.encode()):
                self.stage, self.message, self.failures = "menu", None, 0
                if self.after_unlock is not None:
                    self.after_unlock(now)
            else:
                self.failures += 1
                self.message = ("maintenance.pin_wrong", {})
                if self.failures >= MAX_PIN_FAILURES:
                    self.locked_until, self.failures = now + LOCKOUT_S, 0
            self.entered = ""

    # ---- drawing -----------------------------------------------------------------------------
    def draw(self, surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str, snapshot: StatusSnapshot,
             now_utc_ms: int) -> tuple[dict[str, pygame.Rect], pygame.Rect | None]:
        """Draw the current stage; returns (buttons, camera preview rect or None)."""
        look = LOOKS["maintenance"]
        surface.fill(look.background, layout.main)
        info, controls = layout.panels(0.45, 0.55)
        if self.stage == "pin":
            return self._draw_pin(surface, fonts, layout, lang, info, controls), None
        if self.stage == "camera":
            return self._draw_camera(surface, fonts, layout, lang, info, controls, snapshot)
        return self._draw_menu(surface, fonts, layout, lang, info, controls, snapshot, now_utc_ms), None

    def _message_line(self, lang: str, layout: Layout) -> list[render.Line]:
        if self.message is None:
            return []
        key, params = self.message
        return [render.Line(say(key, lang, **params), layout.body_px, True, MESSAGE_INK, 2)]

    def _draw_pin(self, surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str, info: pygame.Rect,
                  controls: pygame.Rect) -> dict[str, pygame.Rect]:
        ink, fill = LOOKS["maintenance"].ink, KEY_FILL
        dots_h = round(layout.title_px * 1.4)
        top = pygame.Rect(info.x, info.y, info.width, (info.height - dots_h) // 2)
        render.stack(surface, fonts, top, [
            render.Line(say("maintenance.title", lang), layout.title_px, True, ink),
            render.Line(say("maintenance.pin", lang), layout.body_px, False, ink),
        ], gap=layout.pad // 2, valign="bottom")
        radius = layout.title_px // 4
        for i in range(len(self.entered)):  # one dot per digit typed, never the digits
            pygame.draw.circle(surface, ink, (info.x + radius + i * radius * 3, top.bottom + dots_h // 2), radius)
        render.stack(surface, fonts, pygame.Rect(info.x, top.bottom + dots_h, info.width, info.bottom - top.bottom - dots_h),
                     self._message_line(lang, layout), gap=0, valign="top")
        buttons: dict[str, pygame.Rect] = {}
        if self.app.config.screen.pin:
            return keypad(surface, fonts, layout, controls, lang, "close", say("maintenance.close", lang), fill, ink)
        buttons["close"] = render.button(surface, fonts, layout.buttons(controls, 1)[0], say("maintenance.close", lang),
                                         layout.button_px, CLOSE_FILL, ink)
        return buttons

    def _status_lines(self, lang: str, layout: Layout, snapshot: StatusSnapshot, now_utc_ms: int) -> list[render.Line]:
        ink, dim = LOOKS["maintenance"].ink, DIM_INK
        config = self.app.config
        sync = _state_label(snapshot.state(Component.SYNC), lang)
        if snapshot.last_upload_ms is not None:
            sync += " · " + say("status.sent_ago", lang, age=age_text((now_utc_ms - snapshot.last_upload_ms) / 1000, lang))
        values = [
            ("maintenance.today", {"today": _count(snapshot.checkins_today),
                                   "since_start": _count(snapshot.checkins_since_start)}),
            ("maintenance.camera", {"value": _state_label(snapshot.state(Component.CAMERA), lang)}),
            ("maintenance.store", {"value": _state_label(snapshot.state(Component.STORE) or StoreState.OK, lang)}),
            ("maintenance.disk", {"mb": "?" if snapshot.disk_free_bytes is None else snapshot.disk_free_bytes // 2**20}),
            ("maintenance.sync", {"value": sync}),
            ("maintenance.queue", {"pending": snapshot.outbox.get("pending", 0),
                                   "inflight": snapshot.outbox.get("inflight", 0), "dead": snapshot.outbox.get("dead", 0)}),
            ("maintenance.beacon", {"value": _state_label(snapshot.state(Component.BEACON), lang)}),
            ("maintenance.clock", {"value": say("maintenance.synced" if snapshot.clock_synced else "maintenance.not_synced", lang)}),
        ]
        venue = textbox.clean(config.device.venue_name or config.device.venue_id or say("status.no_venue", lang))
        lines = [render.Line(say("maintenance.title", lang) + " · " + venue, layout.body_px, True, ink)]
        reason = self.app.out_of_service(snapshot)
        if reason:  # what the visitor's "out of service" screen does not say, for staff
            lines.append(render.Line(say("maintenance.out_of_service", lang, reason=say(f"out-of-service.{reason}", lang)),
                                     layout.small_px, True, (255, 214, 102), 2))
        lines += [render.Line(say(key, lang, **params), layout.small_px, False, ink) for key, params in values]
        lines.append(render.Line(say("maintenance.errors", lang), layout.small_px, True, ink))
        errors = self.app.recent_errors(snapshot)
        if not errors:
            lines.append(render.Line(say("maintenance.no_errors", lang), layout.small_px, False, dim))
        for at_ms, what in errors[-3:]:
            stamp = local_time(at_ms).strftime("%H:%M") if at_ms else "--:--"
            lines.append(render.Line(f"{stamp} {what}", layout.small_px, False, dim))
        return lines

    def _draw_menu(self, surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str, info: pygame.Rect,
                   controls: pygame.Rect, snapshot: StatusSnapshot, now_utc_ms: int) -> dict[str, pygame.Rect]:
        ink, fill = LOOKS["maintenance"].ink, KEY_FILL
        render.stack(surface, fonts, info, self._status_lines(lang, layout, snapshot, now_utc_ms) +
                     self._message_line(lang, layout), gap=2, valign="top")
        direction = say(f"result.direction.{self.app.config.device.direction}", lang)
        labels = {"direction": say("maintenance.direction", lang, value=direction),
                  "language": say("maintenance.language", lang),
                  "camera": say("maintenance.test_camera", lang),
                  "sync": say("maintenance.sync_now", lang),
                  "close": say("maintenance.close", lang)}
        buttons: dict[str, pygame.Rect] = {}
        gap = max(4, layout.pad // 2)
        columns = 2 if layout.portrait else 1
        rows = -(-len(labels) // columns)
        cell_w = (controls.width - gap * (columns - 1)) // columns
        cell_h = min((controls.height - gap * (rows - 1)) // rows, round(layout.button_px * 2.6))
        for i, (name, label) in enumerate(labels.items()):
            rect = pygame.Rect(controls.x + (i % columns) * (cell_w + gap), controls.y + (i // columns) * (cell_h + gap),
                               cell_w, cell_h)
            buttons[name] = render.button(surface, fonts, rect, label, layout.button_px,
                                          CLOSE_FILL if name == "close" else fill, ink)
        return buttons

    def camera_rect(self, layout: Layout) -> pygame.Rect:
        area = layout.content()
        if layout.portrait:
            return pygame.Rect(area.x, area.y, area.width, round(area.height * 0.55))
        return pygame.Rect(area.x, area.y, round(area.width * 0.6), area.height)

    def _draw_camera(self, surface: pygame.Surface, fonts: Fonts, layout: Layout, lang: str, info: pygame.Rect,
                     controls: pygame.Rect, snapshot: StatusSnapshot) -> tuple[dict[str, pygame.Rect], pygame.Rect]:
        ink, area = LOOKS["maintenance"].ink, layout.content()
        preview = self.camera_rect(layout)
        render.preview(surface, fonts, layout, preview, self.app.latest_frame(), lang)
        if layout.portrait:
            side = pygame.Rect(area.x, preview.bottom + layout.pad, area.width, area.bottom - preview.bottom - layout.pad)
        else:
            side = pygame.Rect(preview.right + layout.pad * 2, area.y, area.right - preview.right - layout.pad * 2,
                               area.height)
        since, frames_then = self.camera_since
        seconds = max(1.0, self.app.now() - since)  # no rate from a single frame
        frames = self.app.frames_seen - frames_then
        back = layout.buttons(side, 1)[0]
        render.stack(surface, fonts, pygame.Rect(side.x, side.y, side.width, back.top - side.y - layout.pad), [
            render.Line(say("maintenance.test_camera", lang), layout.body_px, True, ink, 2),
            render.Line(say("maintenance.camera", lang, value=_state_label(snapshot.state(Component.CAMERA), lang)),
                        layout.small_px, False, ink, 2),
            render.Line(say("maintenance.frames", lang, frames=frames, fps=f"{frames / seconds:.1f}"),
                        layout.small_px, False, ink, 2),
        ], gap=layout.pad // 2, valign="top")
        buttons = {"back": render.button(surface, fonts, back, say("maintenance.back", lang), layout.button_px,
                                         KEY_FILL, ink)}
        return buttons, preview
