"""The screen's state machine and drawing loop, fed by the scanner without ever waiting on it.

Threads: the scanner loop (camera, decode, pipeline) runs in a background thread and hands the
screen two things, both without blocking: each outcome goes into a ``queue.SimpleQueue`` and each
camera frame (cheaply decimated) into a one-frame slot that the next frame overwrites. The pygame
loop runs in the main thread (SDL wants its events there), takes whatever is new at each frame and
redraws only what changed: the preview when a frame came, the status bar when its words changed,
the countdown strip of a result, and everything only when the screen itself changes.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pygame

from kiosk.core.config import Config, ConfigError, SettingsWatch, save_overrides
from kiosk.credentials import Credential
from kiosk.events import ACCEPTED, DUPLICATE, ERROR, Outcome
from kiosk.screen import render
from kiosk.screen.catalogue import LANGUAGES, other_language
from kiosk.screen.entry import STAFF_SESSION_S, Keypad
from kiosk.screen.fonts import Fonts
from kiosk.screen.layout import Layout
from kiosk.screen.maintenance import LONG_PRESS_S, Maintenance
from kiosk.screen.sounds import Sounds
from kiosk.screen.states import CAMERA_LOST, CLOCK_BANNER, OUT_OF_SERVICE, STORAGE_BANNER, View, view_for_outcome
from kiosk.screen.statusbar import StatusSnapshot, bar_items, draw_bar
from kiosk.screen.text import clean

log = logging.getLogger("kiosk.screen")

SYNC_WAKE_FILE = "sync-now"  # touched by "Sync now"; the uploader may watch it to upload at once
VISITOR_LANGUAGE_S = 60.0     # a visitor's language choice lasts this long after their last action
PROVISIONING_TIMEOUT_S = 120.0
SETTINGS_LOOK_S = 0.25        # how often the screen looks whether the settings file changed (one stat)

ProvisioningHook = Callable[[Credential], "str | None"]  # returns an error to show, or None when applied
TypedHook = Callable[[str, str, str], None]  # (number, birth year, source): queue the check-in, never block
CompanionHook = Callable[[str], None]         # (adult's check-in id): queue a companion's check-in


class ScreenApp:
    """Everything the screen shows, decided and drawn frame by frame on ``surface``."""

    def __init__(self, surface: pygame.Surface, config: Config, *, fonts: Fonts | None = None,
                 sounds: Sounds | None = None, status: Callable[[], StatusSnapshot] | None = None,
                 now: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 on_provisioning: ProvisioningHook | None = None, on_typed: TypedHook | None = None,
                 on_companion: CompanionHook | None = None):
        self.surface = surface
        self.layout = Layout.for_size(*surface.get_size())
        self.config = config
        self.fonts = fonts or Fonts()
        self.sounds = sounds or Sounds(enabled=False)
        self.status = status or (lambda: StatusSnapshot())
        self.now, self.wall_ms = now, wall_ms
        self.on_provisioning = on_provisioning
        self.settings = SettingsWatch(config)  # settings saved by anyone reach the screen here
        self.on_typed, self.on_companion = on_typed, on_companion
        self.lang = config.screen.language
        self._lang_until: float | None = None
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._frame: tuple[int, np.ndarray] | None = None
        self._frame_numbers = itertools.count(1)
        self._step: int | None = None
        self.frames_seen = 0
        self.result: View | None = None
        self._result_since = self._result_until = 0.0
        self.provisioning: View | None = None
        self._provisioning_until = 0.0
        self.maintenance = Maintenance(self)
        self.keypad = Keypad(self)
        self.companions: dict[str, int] = {}  # adult's check-in id -> companions so far (this result only)
        self.storage_failed = False
        self.errors: deque[tuple[int, str]] = deque(maxlen=20)  # (utc ms, text): codes only, never a visitor
        self.shown: Counter[str] = Counter()
        self.on_shown: list[Callable[[str, pygame.Surface], None]] = []
        self.quit_requested = False
        self.log_shown = True  # off for the off-screen drawing done at start-up
        self._shown_name = ""
        self._press: tuple[tuple[int, int], float] | None = None
        self._buttons: dict[str, pygame.Rect] = {}
        self._drawn: tuple | None = None
        self._drawn_bar: Any = None
        self._drawn_frame = 0
        self._drawn_progress = -1
        self._preview_rect: pygame.Rect | None = None
        self._was_camera_lost = False
        self._was_out_of_service = False
        self._clock_warned = False
        self._next_settings_look = 0.0

    # ---- inputs from the scanner thread (never block) ----------------------------------------
    def post_outcome(self, outcome: Outcome) -> None:
        """An outcome sink for the pipeline: queued for the next frame."""
        self._outcomes.put(outcome)

    def post_frame(self, frame: object) -> None:
        """The scanner loop's ``on_frame``: keep a small copy of the latest frame, drop older ones."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 2 or frame.dtype != np.uint8 or min(frame.shape) < 2:
            return
        if self._step is None:
            target = self.layout.ready(False)[0]
            self._step = max(1, min(frame.shape[0] // max(1, target.height), frame.shape[1] // max(1, target.width)))
        step = self._step
        small = frame[::step, ::-step] if self.config.screen.mirror_preview else frame[::step, ::step]
        self._frame = (next(self._frame_numbers), np.ascontiguousarray(small))
        self.frames_seen += 1

    def latest_frame(self) -> np.ndarray | None:
        slot = self._frame
        return slot[1] if slot else None

    # ---- services for the maintenance screen -------------------------------------------------
    def apply_settings(self, changes: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """Save device-made settings through their one owner; the screen, the scanner and the other
        services each take them up from there (never from a copy held here)."""
        try:
            save_overrides(self.config.state_dir, changes)
        except (ConfigError, OSError) as exc:
            log.error("screen: cannot save settings: %s", exc)
            return "maintenance.save_failed", {"error": clean(str(exc))[:80]}
        self.follow_settings()
        log.info("screen: settings changed on the maintenance screen: %s",
                 ", ".join(f"{s}.{k}={v}" for s, values in changes.items() for k, v in values.items()))
        return "maintenance.saved", {}

    def follow_settings(self) -> None:
        """Take up settings saved since the last look (by this screen, the provisioning flow, another process)."""
        fresh = self.settings.poll()
        if fresh is None:
            return
        language_changed = fresh.screen.language != self.config.screen.language
        self.config = fresh
        if language_changed or self._lang_until is None:
            self.lang, self._lang_until = fresh.screen.language, None

    def request_sync(self) -> bool:
        """Ask the uploader for an immediate upload by touching ``<state dir>/sync-now``."""
        path = Path(self.config.state_dir) / SYNC_WAKE_FILE
        try:
            path.write_text(f"{self.wall_ms()}\n")
            return True
        except OSError as exc:
            log.error("screen: cannot request a sync (%s): %s", path, exc)
            return False

    def recent_errors(self, snapshot: StatusSnapshot) -> list[tuple[int, str]]:
        errors = list(self.errors)
        errors += [(snapshot.taken_utc_ms, f"{component}: {clean(message)[:120]}") for component, message in snapshot.errors()]
        return errors

    # ---- the frame ---------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Draw everything again at the next step (after the display was lost, or to time it)."""
        self._drawn = None

    def step(self, events: list[pygame.event.Event] = ()) -> list[pygame.Rect]:
        """Handle input and news, draw what changed; returns the rectangles to send to the display."""
        now = self.now()
        if now >= self._next_settings_look:
            self._next_settings_look = now + SETTINGS_LOOK_S
            self.follow_settings()
        for event in events:
            self._handle_event(event, now)
        self._check_long_press(now)
        self._take_outcomes(now)
        self._expire(now)
        snapshot = self.status()
        scene, view = self._scene(now, snapshot)
        dirty: list[pygame.Rect] = []
        key = (scene, id(view), view, self.lang, self.config.device.direction, self._maintenance_key(now, scene))
        items = bar_items(snapshot, self.config.device.venue_name or self.config.device.venue_id, self.lang,
                          self.wall_ms())
        if key != self._drawn:
            self._draw_scene(scene, view, snapshot)
            self._drawn, self._drawn_bar = key, items
            draw_bar(self.surface, self.layout, self.fonts, items)
            self._drawn_progress = -1
            dirty.append(self.surface.get_rect())
            for callback in self.on_shown:
                callback(self._shown_name, self.surface)
        elif items != self._drawn_bar:
            self._drawn_bar = items
            dirty.append(draw_bar(self.surface, self.layout, self.fonts, items))
        slot = self._frame
        if self._preview_rect is not None and slot is not None and slot[0] != self._drawn_frame:
            self._drawn_frame = slot[0]
            dirty.append(render.preview(self.surface, self.fonts, self.layout, self._preview_rect, slot[1], self.lang))
        if scene == "result" and view is not None and view.seconds:
            remaining = (self._result_until - now) / max(1e-3, self._result_until - self._result_since)
            width = round(self.layout.progress.width * max(0.0, remaining))
            if width != self._drawn_progress:
                self._drawn_progress = width
                dirty.append(render.progress(self.surface, self.layout, view, remaining))
        if dirty and dirty[0] == self.surface.get_rect():
            dirty = dirty[:1]
        return dirty

    def _maintenance_key(self, now: float, scene: str) -> tuple[int, int]:
        if scene == "manual-entry":
            return (self.keypad.version, 0)
        if scene != "maintenance":
            return (0, 0)
        # the camera test's frame counter is redrawn once a second
        return (self.maintenance.version, int(now) if self.maintenance.stage == "camera" else 0)

    def _scene(self, now: float, snapshot: StatusSnapshot) -> tuple[str, View | None]:
        if self.maintenance.active:
            return "maintenance", None
        if self.keypad.active:
            return "manual-entry", None
        if self.provisioning is not None:
            return "provisioning", self.provisioning
        if self.result is not None:
            return "result", self.result
        out_of_service = self.out_of_service(snapshot) is not None
        if out_of_service != self._was_out_of_service:
            self._was_out_of_service = out_of_service
            if out_of_service:
                self.sounds.play("out-of-service")
        if out_of_service:
            return "out-of-service", OUT_OF_SERVICE
        camera_lost = snapshot.camera_lost
        if camera_lost != self._was_camera_lost:
            self._was_camera_lost = camera_lost
            self.sounds.play("camera-lost" if camera_lost else "ready")
            if camera_lost:
                self.errors.append((self.wall_ms(), "camera: lost"))
        if camera_lost:
            return "camera-lost", CAMERA_LOST
        return "ready", self._banner(snapshot)

    def _banner(self, snapshot: StatusSnapshot) -> View | None:
        if self.storage_failed or snapshot.storage_low:
            return STORAGE_BANNER
        if not snapshot.clock_synced:
            if not self._clock_warned:
                self._clock_warned = True
                self.sounds.play("clock-unset")
            return CLOCK_BANNER
        self._clock_warned = False
        return None

    def out_of_service(self, snapshot: StatusSnapshot) -> str | None:
        """Why this kiosk cannot record a check-in now (a key of OUT_OF_SERVICE_REASONS), or None."""
        if not self.config.device.venue_id:
            return "not-provisioned"
        if not self.config.privacy.authority_public_key:
            return "no-authority-key"
        if snapshot.storage_writable is False:
            return "storage-read-only"
        return None

    def _draw_scene(self, scene: str, view: View | None, snapshot: StatusSnapshot) -> None:
        self._preview_rect = None
        self._buttons = {}
        if scene == "maintenance":
            self._buttons, self._preview_rect = self.maintenance.draw(self.surface, self.fonts, self.layout, self.lang,
                                                                      snapshot, self.wall_ms())
        elif scene == "manual-entry":
            self._buttons = self.keypad.draw(self.surface, self.fonts, self.layout, self.lang)
        elif scene == "ready":
            today = snapshot.checkins_today if self.config.screen.show_today_count else None
            self._preview_rect, entry = render.ready(self.surface, self.fonts, self.layout, self.lang,
                                                     self.config.device.direction, view, self.latest_frame(),
                                                     entry_label=self._entry_label(), today=today)
            self._buttons["entry"] = entry
            slot = self._frame
            self._drawn_frame = slot[0] if slot else 0
        else:
            assert view is not None
            if scene == "camera-lost":
                view = replace(view, actions=(("entry", self._entry_label()),))
            self._buttons = render.result(self.surface, self.fonts, self.layout, view, self.lang)
            if view.seconds and scene == "result":
                render.progress(self.surface, self.layout, view, 1.0)
        self._buttons["lang"] = self.layout.status_cells()["lang"]
        name = scene if scene in ("maintenance", "manual-entry") else (view.state if scene != "ready" else "ready")
        if scene == "ready" and view is not None:
            name = f"ready+{view.state}"
        self.shown[name] += 1
        self._shown_name = name
        if self.log_shown:
            log.debug("screen: showing %s", name)

    # ---- outcomes and timers -----------------------------------------------------------------
    def _take_outcomes(self, now: float) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            self.show_outcome(outcome, now)

    def show_outcome(self, outcome: Outcome, now: float | None = None) -> View:
        now = self.now() if now is None else now
        view = view_for_outcome(outcome, self.config.screen.result_seconds, self.config.screen.problem_seconds)
        if outcome.event == ACCEPTED and view.link:
            view = self._count_companion(outcome, view)
        if outcome.event in (ACCEPTED, DUPLICATE):
            self.storage_failed = False
        if view.code:  # the code is for staff: the maintenance page lists it, the visitor reads words
            self.errors.append((outcome.at_utc_ms, f"{clean(outcome.event)[:16]}: {view.code}"))
        if outcome.event == ERROR and outcome.reason == "storage-unavailable":
            self.storage_failed = True
        if self.maintenance.active:
            return view  # staff are using the screen; the outcome is recorded all the same
        if view.state == "provisioning":
            self.provisioning, self._provisioning_until = view, now + PROVISIONING_TIMEOUT_S
        elif self.provisioning is not None:
            return view
        else:
            self.result, self._result_since = view, now
            self._result_until = now + (view.seconds or self.config.screen.problem_seconds)
        if self._lang_until is not None:
            self._lang_until = now + VISITOR_LANGUAGE_S
        self.sounds.play(view.state)
        return view

    def _expire(self, now: float) -> None:
        if self.result is not None and now >= self._result_until:
            self.result = None
        if self.provisioning is not None and now >= self._provisioning_until:
            self._finish_provisioning(False, now)
        self.maintenance.tick(now)
        self.keypad.tick(now)
        if self._lang_until is not None and now >= self._lang_until and self.result is None:
            self.lang, self._lang_until = self.config.screen.language, None

    def _finish_provisioning(self, confirmed: bool, now: float) -> None:
        view, self.provisioning = self.provisioning, None
        if view is None:
            return
        if not confirmed:
            outcome = View("provisioning", "provisioning.cancelled", seconds=self.config.screen.result_seconds)
        else:
            error = "no provisioning handler in this process" if self.on_provisioning is None else None
            if self.on_provisioning is not None and view.credential is not None:
                try:
                    error = self.on_provisioning(view.credential)
                except Exception as exc:  # show the failure, keep the kiosk running
                    log.exception("screen: applying the provisioning code failed")
                    error = str(exc)
            if error:
                log.error("screen: provisioning not applied: %s", error)
                code = clean(error)[:80]
                outcome = View("error", "provisioning.failed", (("rejected.code", {"code": code}),),
                               seconds=self.config.screen.problem_seconds, code=code)
            else:
                self.follow_settings()  # the venue shows at once in the status bar and on the maintenance page
                outcome = View("provisioning", "provisioning.applied", seconds=self.config.screen.result_seconds)
        self.result, self._result_since = outcome, now
        self._result_until = now + (outcome.seconds or 3.0)

    # ---- input -------------------------------------------------------------------------------
    def _handle_event(self, event: pygame.event.Event, now: float) -> None:
        if event.type == pygame.QUIT:
            self.quit_requested = True
        elif event.type == pygame.KEYDOWN:
            self._key(event.key, getattr(event, "unicode", "") or "", now)
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self._press = (event.pos, now)
        elif event.type == pygame.MOUSEMOTION and self._press is not None:
            if not self.layout.corner().collidepoint(event.pos) and self.layout.corner().collidepoint(self._press[0]):
                self._press = None
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            press, self._press = self._press, None
            if press is not None and now - press[1] < LONG_PRESS_S:
                self._click(event.pos, now)

    def _check_long_press(self, now: float) -> None:
        if self._press is not None and self.layout.corner().collidepoint(self._press[0]) \
                and now - self._press[1] >= LONG_PRESS_S:
            self._press = None
            self.open_maintenance(now)

    def open_maintenance(self, now: float | None = None) -> None:
        self.maintenance.open(self.now() if now is None else now)
        self.sounds.play("maintenance")
        log.info("screen: maintenance screen opened")

    def _key(self, key: int, char: str, now: float) -> None:
        if self.maintenance.active:
            self.maintenance.key(key, char, now)
        elif self.keypad.active:
            self.keypad.key(key, char, now)
        elif key in (pygame.K_F2, pygame.K_m):
            self.open_maintenance(now)
        elif key == pygame.K_k and self.result is None and self.provisioning is None:
            self.open_entry(now)
        elif char == "+" or key in (pygame.K_PLUS, pygame.K_KP_PLUS):
            self.add_companion()
        elif self.provisioning is not None and key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self._finish_provisioning(True, now)
        elif self.provisioning is not None and key == pygame.K_ESCAPE:
            self._finish_provisioning(False, now)
        elif key == pygame.K_l:
            self.toggle_language(now)

    def _click(self, pos: tuple[int, int], now: float) -> None:
        for name, rect in self._buttons.items():  # noqa: B007 - `name` is used after the loop
            if rect.collidepoint(pos):
                break
        else:
            return
        if name == "lang" and not self.maintenance.active:
            self.toggle_language(now)
        elif self.maintenance.active:
            self.maintenance.click(name, now)
        elif self.keypad.active:
            self.keypad.click(name, now)
        elif name == "entry":
            self.open_entry(now)
        elif name == "companion":
            self.add_companion()
        elif name in ("confirm", "cancel") and self.provisioning is not None:
            self._finish_provisioning(name == "confirm", now)

    def toggle_language(self, now: float) -> None:
        """A visitor's switch: lasts a minute after their last action, then back to the configured one."""
        self.lang = other_language(self.lang) if self.lang in LANGUAGES else LANGUAGES[0]
        self._lang_until = now + VISITOR_LANGUAGE_S

    # ---- typing an ID number, and companions ---------------------------------------------------
    def _entry_label(self) -> str:
        return "entry.visitor" if self.config.screen.visitor_keypad else "entry.staff"

    def open_entry(self, now: float | None = None) -> None:
        """The keypad: at once for visitors (``screen.visitor_keypad``) or staff in session, else the PIN first."""
        now = self.now() if now is None else now
        if self.config.screen.visitor_keypad:
            self.keypad.open(now, "keypad")
        elif now < self.keypad.staff_until:
            self.keypad.open(now, "manual")
        else:
            self.open_maintenance(now)
            self.maintenance.after_unlock = self._staff_unlocked

    def _staff_unlocked(self, now: float) -> None:
        self.maintenance.close()
        self.keypad.staff_until = now + STAFF_SESSION_S
        self.keypad.open(now, "manual")
        log.info("screen: staff entry opened")

    def submit_typed(self, number: str, birth_year: str, source: str) -> None:
        """Hand a typed number to the check-in worker; its outcome comes back like a scan's."""
        if self.on_typed is None:
            self._show_local_error("no check-in worker in this process")
            return
        self.on_typed(number, birth_year, source)

    def add_companion(self) -> None:
        """A child with the adult on screen now: one more check-in linked to the adult's."""
        view = self.result
        if view is None or not view.link:
            return
        if self.on_companion is None:
            self._show_local_error("no check-in worker in this process")
            return
        self.on_companion(view.link)

    def _count_companion(self, outcome: Outcome, view: View) -> View:
        if outcome.kind != "companion":
            self.companions = {view.link: 0}
            return view
        count = self.companions.get(view.link, 0) + 1
        self.companions = {view.link: count}
        return replace(view, lines=view.lines + (("companion.count", {"n": count}),))

    def _show_local_error(self, what: str) -> None:
        now = self.now()
        log.error("screen: %s", what)
        self.errors.append((self.wall_ms(), what))
        self.result, self._result_since = View("error", "error.title", (("error.detail", {}),),
                                               seconds=self.config.screen.problem_seconds), now
        self._result_until = now + self.config.screen.problem_seconds
