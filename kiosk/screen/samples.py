"""Representative data for every state: for ``kiosk screenshot``, the benchmark and the tests.

Each state is reached the way the kiosk reaches it: outcomes go through the same mapping as the
pipeline's, problems through a status snapshot like the one read from the database.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pygame

from kiosk.core.config import Config
from kiosk.credentials import Credential
from kiosk.credentials.base import ACCEPTED, REJECTED
from kiosk.events import DUPLICATE, ERROR, PROVISIONING, Outcome
from kiosk.screen.app import ScreenApp
from kiosk.screen.fonts import Fonts
from kiosk.screen.sounds import Sounds
from kiosk.screen.states import SCREENSHOT_STATES, STARTING
from kiosk.screen.statusbar import StatusSnapshot

SAMPLE_NAME = "Nguyễn V. A."
SAMPLE_CHECKIN = "0b6f7a52-9d1c-4e3b-a0f4-7c2e8d915a10"
SAMPLE_AUTHORITY_KEY = "a2lvc2stc2NyZWVuc2hvdC1zYW1wbGUta2V5LTMyYiE="  # 32 bytes; a kiosk in service has one


def sample_config(lang: str, state_dir: Path) -> Config:
    return Config().replace(
        device={"venue_id": "HCM-Q1-BENTHANH", "venue_name": "Chợ Bến Thành", "direction": "entry",
                "state_dir": str(state_dir)},
        screen={"language": lang, "pin": "2468"},
        clock={"assume_synced": True},
        privacy={"authority_public_key": SAMPLE_AUTHORITY_KEY},
    )


def sample_snapshot(now_ms: int, **changes: object) -> StatusSnapshot:
    snapshot = StatusSnapshot(
        statuses={"camera": {"state": "ok", "detail": {"backend": "picamera2"}, "updated_ms": now_ms},
                  "sync": {"state": "online", "detail": {"last_success_ms": now_ms - 4 * 60_000}, "updated_ms": now_ms},
                  "beacon": {"state": "advertising", "detail": {"slot": 57}, "updated_ms": now_ms},
                  "nearby": {"state": "ok", "detail": {"phones": 12, "window_s": 300.0}, "updated_ms": now_ms}},
        outbox={"pending": 3, "inflight": 0, "acked": 1520, "dead": 0},
        disk_free_bytes=12 * 2**30, clock_synced=True, taken_utc_ms=now_ms, checkins_today=148, checkins_since_start=37)
    return replace(snapshot, **changes)


def sample_frame(width: int = 640, height: int = 480, seed: int = 3) -> np.ndarray:
    """A camera frame with a visitor's code held up in it."""
    from scanner.camera.synthetic import demo_token
    from scanner.render import render_code, scene

    return scene(width, height, render_code(demo_token(7), module_px=5), seed=seed)


def sample_outcome(state: str, now_ms: int) -> Outcome | None:
    def outcome(event: str, reason: str, kind: str, name: str = "", **facts: object) -> Outcome:
        verdict = ACCEPTED if event in ("accepted", DUPLICATE, PROVISIONING) else REJECTED
        credential = Credential(kind=kind, verdict=verdict, reason=reason, display_name=name, facts=dict(facts))
        return Outcome(event=event, reason=reason, kind=kind, direction="entry", at_utc_ms=now_ms, credential=credential)

    return {
        "accepted": lambda: replace(outcome("accepted", "ok", "cccd", SAMPLE_NAME), checkin_id=SAMPLE_CHECKIN),
        "companion": lambda: replace(outcome("accepted", "ok", "companion", companion_of=SAMPLE_CHECKIN),
                                     checkin_id="5f0c3d1e-2b7a-4c9d-8e6f-102938475601"),
        "duplicate": lambda: outcome(DUPLICATE, "already-checked-in", "cccd", SAMPLE_NAME),
        "unrecognized": lambda: outcome("rejected", "not-recognised", "unknown"),
        "certificate-valid": lambda: outcome("accepted", "ok", "hc1", "Trần T. B."),
        "expired": lambda: outcome("rejected", "expired", "hc1", "Trần T. B."),
        "untrusted": lambda: outcome("rejected", "untrusted-signer", "hc1"),
        "storage-full": lambda: outcome(ERROR, "storage-unavailable", "cccd"),
        "provisioning": lambda: outcome(PROVISIONING, "ok", "provisioning", venue_id="HCM-Q1-BENTHANH",
                                        venue_name="Chợ Bến Thành", direction="entry",
                                        upstream_url="https://checkin.example.gov.vn/api"),
    }.get(state, lambda: None)()


def staged_app(state: str, surface: pygame.Surface, lang: str, state_dir: Path, fonts: Fonts | None = None,
               clock: Callable[[], float] | None = None) -> ScreenApp:
    """A ScreenApp on ``surface`` showing ``state`` after its next ``step()``."""
    if state not in SCREENSHOT_STATES:
        raise ValueError(f"unknown state {state!r}; one of: {', '.join(SCREENSHOT_STATES)}")
    now_ms = time.time_ns() // 1_000_000
    changes: dict[str, object] = {}
    if state == "camera-lost":
        changes["statuses"] = {**sample_snapshot(now_ms).statuses,
                               "camera": {"state": "lost", "detail": {"error": "no camera found"}, "updated_ms": now_ms}}
    if state == "clock-unset":
        changes["clock_synced"] = False
    snapshot = sample_snapshot(now_ms, **changes)
    config = sample_config(lang, state_dir)
    if state == "out-of-service":  # a kiosk that cannot record: here, one never provisioned
        config = config.replace(device={"venue_id": "", "venue_name": ""})
    app = ScreenApp(surface, config, fonts=fonts, sounds=Sounds(enabled=False),
                    status=lambda: snapshot, now=clock or time.monotonic)
    if state != "camera-lost":
        app.post_frame(sample_frame())
    outcome = sample_outcome(state, now_ms)
    if outcome is not None:
        app.post_outcome(outcome)
    if state == "maintenance":
        app.maintenance.unlock(app.now())
    if state == "manual-entry":
        app.keypad.open(app.now(), "manual")
        app.keypad.number = "079090"  # half typed
    if state == "starting":
        app.result, app._result_until = STARTING, float("inf")
    return app


def prewarm(fonts: Fonts, size: tuple[int, int], state_dir: Path) -> None:
    """Draw every state once off-screen, in both languages, so the first real showing is as fast as later ones.

    Rendering a text or icon the first time costs several milliseconds (glyphs loaded at that size);
    doing it at start-up keeps the first visitor's result within the frame budget.
    """
    surface = pygame.Surface(size)
    for lang in ("vi", "en"):
        for state in SCREENSHOT_STATES:
            app = staged_app(state, surface, lang, state_dir, fonts=fonts)
            app.log_shown = False
            app.step([])


def show_starting(surface: pygame.Surface, fonts: Fonts, lang: str) -> None:
    """The start-up screen, drawn and shown at once: loading takes seconds on a Pi."""
    from kiosk.screen import render
    from kiosk.screen.layout import Layout

    surface.fill(STARTING.look.background)
    render.result(surface, fonts, Layout.for_size(*surface.get_size()), STARTING, lang)
    pygame.display.flip()
