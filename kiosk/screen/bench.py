"""``kiosk bench screen``: frame times of the real screen code per state and screen size (JSON).

Each state is staged as for ``kiosk screenshot`` and stepped frame by frame with a new camera frame
every step (the worst case: a camera as fast as the screen), the countdown strip moving and the
status bar as read. Timed per frame: ``ScreenApp.step`` plus ``pygame.display.update`` of the dirty
rectangles on SDL's dummy driver (the copy to a real panel is not included). As in ``kiosk run``,
fonts and icons are pre-drawn first (``prewarm_ms``); ``enter_ms`` is then the first showing of a
state, ``full_redraw_ms`` a whole-screen redraw (what every state change costs). ``cpu`` figures
use this process's CPU time, which other processes on a busy machine do not inflate.
``ready_with_scanner`` runs the real scanner loop (synthetic camera, decoder, pipeline, SQLite) in
its thread while the screen draws, as ``kiosk run`` does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

SIZES = ((800, 480), (1024, 600), (1920, 1080), (480, 800))


def _ms(values: list[float]) -> dict[str, float]:
    from kiosk.bench import percentile

    return {"p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3)}


def _timed(action: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def _with_scanner(surface: Any, fonts: Any, frames: int) -> dict[str, Any]:
    """The ready screen drawn at 30 fps while the real scanner thread decodes and commits."""
    import pygame

    from kiosk.demo import demo_config
    from kiosk.pipeline import Pipeline
    from kiosk.screen.app import ScreenApp
    from kiosk.service import run_scanner

    with tempfile.TemporaryDirectory(prefix="kiosk-bench-scan-") as state_dir:
        config = demo_config(Path(state_dir)).replace(camera={"fps": 15.0})
        pipeline = Pipeline(config)
        app = ScreenApp(surface, config, fonts=fonts)
        pipeline.sinks.append(app.post_outcome)
        stop = threading.Event()
        scanner = threading.Thread(target=run_scanner, args=(pipeline, stop), kwargs={"on_frame": app.post_frame})
        scanner.start()
        wall, cpu = [], []
        clock = pygame.time.Clock()
        try:
            for _ in range(frames):
                def frame() -> None:
                    dirty = app.step([])
                    if dirty:
                        pygame.display.update(dirty)
                w, c = _timed(frame)
                wall.append(w)
                cpu.append(c)
                clock.tick(30)
        finally:
            stop.set()
            scanner.join()
            pipeline.close()
    return {"frames": frames, "frame_ms": _ms(wall), "cpu_ms": _ms(cpu), "shown": dict(app.shown)}


def bench_screen(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from kiosk.screen.fonts import Fonts
    from kiosk.screen.samples import prewarm, sample_frame, staged_app
    from kiosk.screen.states import SCREENSHOT_STATES

    frames = max(10, args.frames)
    pygame.display.init()
    camera = [sample_frame(seed=seed) for seed in (1, 2)]
    results: dict[str, Any] = {}
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-screen-") as state_dir:
        for width, height in SIZES:
            surface = pygame.display.set_mode((width, height))
            fonts = Fonts()  # fresh caches per size, as a kiosk has one size
            warm, _ = _timed(lambda: prewarm(fonts, (width, height), Path(state_dir)))
            per_state: dict[str, Any] = {}
            for state in SCREENSHOT_STATES:
                clock = [1000.0]
                app = staged_app(state, surface, "vi", Path(state_dir), fonts=fonts, clock=lambda: clock[0])
                enter, _ = _timed(lambda: pygame.display.update(app.step([])))
                wall, cpu = [], []
                for n in range(frames):
                    clock[0] += 3.0 / frames  # the result stays on screen; its countdown strip moves
                    app.post_frame(camera[n % 2])

                    def frame() -> None:
                        dirty = app.step([])
                        if dirty:
                            pygame.display.update(dirty)
                    w, c = _timed(frame)
                    wall.append(w)
                    cpu.append(c)
                full, full_cpu = [], []
                for _ in range(min(100, max(10, frames // 3))):
                    app.invalidate()
                    w, c = _timed(lambda: pygame.display.update(app.step([])))
                    full.append(w)
                    full_cpu.append(c)
                per_state[state] = {"enter_ms": round(enter, 3), "frame_ms": _ms(wall), "frame_cpu_ms": _ms(cpu),
                                    "full_redraw_ms": _ms(full), "full_redraw_cpu_ms": _ms(full_cpu)}
            key = f"{width}x{height}"
            results[key] = {"prewarm_ms": round(warm, 1), "states": per_state}
            worst[key] = round(max(max(s["frame_ms"]["p99"], s["full_redraw_ms"]["p99"]) for s in per_state.values()), 3)
        surface = pygame.display.set_mode((800, 480))
        fonts = Fonts()
        prewarm(fonts, (800, 480), Path(state_dir))
        with_scanner = _with_scanner(surface, fonts, frames)
        # the scanner thread's side: what on_frame costs per camera frame
        app = staged_app("ready", surface, "vi", Path(state_dir), fonts=fonts)
        costs = {}
        for label, frame in (("640x480", camera[0]), ("1280x720", sample_frame(1280, 720))):
            ms, _ = _timed(lambda: [app.post_frame(frame) for _ in range(1000)])
            costs[label] = round(ms, 3)  # total ms for 1000 calls = µs per call
    pygame.display.quit()
    return {
        "frames_per_state": frames,
        "driver": "dummy",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target": "frame_ms and full_redraw_ms p99 <= 16 at 800x480",
        "worst_p99_ms": worst,
        "meets_target_800x480": worst["800x480"] <= 16.0,
        "ready_with_scanner_800x480": with_scanner,
        "on_frame_us": costs,
        "sizes": results,
    }
