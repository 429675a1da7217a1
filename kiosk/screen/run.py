"""``kiosk run`` / ``kiosk demo`` with the screen: scanner in a background thread, pygame in the main one.

If the display or the fonts cannot be had, the reason is logged once and the scanner runs exactly as
with ``--headless``: check-ins and the event stream never depend on the screen.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from kiosk.desk import CheckinDesk
from kiosk.health import ScannerHealth
from kiosk.pipeline import Pipeline
from kiosk.service import LoopStats, run_scanner

log = logging.getLogger("kiosk.screen")

SCREEN_STALL_S = 10.0  # the screen loop turns at screen.fps; this long without a turn means it froze


def run_with_screen(pipeline: Pipeline, stop: threading.Event, seconds: float | None = None, *,
                    dummy_display: bool = False, windowed: bool = False, screenshots: Path | None = None,
                    on_provisioning: Callable | None = None, camera_factory: Callable | None = None) -> tuple[LoopStats, dict[str, int] | None]:
    """Run scanner and screen until ``stop`` (or ``seconds``); returns (scanner stats, states shown or None)."""
    import pygame

    from kiosk.screen.app import ScreenApp
    from kiosk.screen.display import DisplayUnavailable, open_display
    from kiosk.screen.fonts import FontMissing, Fonts
    from kiosk.screen.sounds import Sounds
    from kiosk.screen.statusbar import StatusPoller

    config = pipeline.config
    try:
        surface = open_display(config.screen, force_dummy=dummy_display, windowed=windowed)
        fonts = Fonts()
    except (DisplayUnavailable, FontMissing) as exc:
        log.error("screen: %s", exc)
        pygame.quit()
        return run_scanner(pipeline, stop, seconds, camera_factory=camera_factory), None
    log.info("screen: %dx%d on SDL video driver %s", *surface.get_size(), pygame.display.get_driver())
    from kiosk.screen.samples import prewarm, show_starting

    show_starting(surface, fonts, config.screen.language)  # the first frame: never a black window while we load

    prewarm(fonts, surface.get_size(), config.state_dir)
    try:
        pipeline.store  # noqa: B018 - create or migrate the database before the status reader looks at it
    except Exception as exc:  # noqa: BLE001 - the scanner reports storage faults per scan
        log.warning("screen: state database not ready yet: %s", exc)
    sounds = Sounds(config.screen.sound, config.screen.volume)
    poller = StatusPoller(config.state_dir, config.clock.assume_synced).start()

    desk = CheckinDesk(config, pipeline.sinks)  # typed numbers and companions, off the screen's thread
    app = ScreenApp(surface, config, fonts=fonts, sounds=sounds, status=lambda: poller.latest,
                    on_provisioning=on_provisioning, on_typed=desk.typed, on_companion=desk.companion)
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        app.on_shown.append(lambda name, image: pygame.image.save(
            image, str(screenshots / f"{sum(app.shown.values()):04d}-{name}.png")))
    pipeline.sinks.append(app.post_outcome)
    outcome: dict[str, object] = {}

    # systemd's watchdog vouches for the screen too: a frozen display stops the pings (kiosk/health.py).
    health = ScannerHealth(pipeline)
    last_step = [time.monotonic()]
    health.watch_loop("screen", lambda: last_step[0], SCREEN_STALL_S)

    def scan() -> None:
        try:
            outcome["stats"] = run_scanner(pipeline, stop, seconds, camera_factory=camera_factory,
                                           on_frame=app.post_frame, health=health)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc
        finally:
            stop.set()

    scanner = threading.Thread(target=scan, name="scanner", daemon=True)
    scanner.start()
    clock = pygame.time.Clock()
    try:
        while not stop.is_set():
            last_step[0] = time.monotonic()
            dirty = app.step(pygame.event.get())
            if dirty:
                pygame.display.update(dirty)
            if app.quit_requested:
                stop.set()
            clock.tick(config.screen.fps)
    finally:
        stop.set()
        scanner.join()
        desk.stop()
        poller.stop()
        pipeline.sinks.remove(app.post_outcome)
        pygame.quit()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["stats"], dict(app.shown)
