"""The screen inside `kiosk run` and `kiosk demo` (real processes), and a display that cannot be opened."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import numpy as np
from PIL import Image

from conftest import run_kiosk
from kiosk.events import read_events
from kiosk.screen.display import choose_driver, explain
from kiosk.screen.states import LOOKS, SCREENSHOT_STATES


def colour_share(path: Path, colour: tuple[int, int, int]) -> float:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return float((np.abs(pixels - np.array(colour)).max(axis=2) <= 6).mean())


@pytest.mark.system
def test_kiosk_run_drives_the_screen_from_the_real_pipeline(config_file, tmp_path):
    events = tmp_path / "events.jsonl"
    result = run_kiosk("--config", str(config_file), "--log-level", "DEBUG", "run", "--seconds", "9",
                       "--events", str(events), SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    assert result.returncode == 0, result.stderr
    assert "screen: 800x480 on SDL video driver dummy" in result.stderr
    outcomes = [e["event"] for e in read_events(events)]
    assert "accepted" in outcomes
    shown = re.findall(r"screen: showing (\S+)", result.stderr)
    assert shown[0] == "ready" and "accepted" in shown
    assert shown.count("accepted") == outcomes.count("accepted")  # every check-in reached the screen
    assert "Chợ Bến Thành" not in result.stderr  # names and venue only on the screen, not in logs


@pytest.mark.system
def test_a_display_that_cannot_open_explains_itself_and_scanning_goes_on(config_file, tmp_path):
    events = tmp_path / "events.jsonl"
    result = run_kiosk("--config", str(config_file), "run", "--seconds", "6", "--events", str(events),
                       SDL_VIDEODRIVER="no-such-video-driver", SDL_AUDIODRIVER="dummy")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    message = next(line for line in result.stderr.splitlines() if "cannot open the display" in line)
    assert "SDL_VIDEODRIVER=no-such-video-driver" in message and "kmsdrm" in message and "--headless" in message
    assert "accepted" in [e["event"] for e in read_events(events)]  # the event stream kept working


def test_missing_kms_and_missing_permission_are_told_apart(monkeypatch):
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    assert "/dev/dri/card* does not exist" in explain("kmsdrm", "kmsdrm not available")
    monkeypatch.setattr("glob.glob", lambda pattern: ["/dev/dri/card1"])
    monkeypatch.setattr("os.access", lambda path, mode: False)
    message = explain("kmsdrm", "Could not initialize")
    assert "No permission on /dev/dri/card1" in message and "video" in message and "render" in message
    assert "DISPLAY" in explain("x11", "x11 not available")
    assert choose_driver({}) == "kmsdrm"  # a Pi without a desktop
    assert choose_driver({"DISPLAY": ":0"}) is None  # a desktop: SDL picks x11/wayland
    assert choose_driver({"DISPLAY": ":0", "SDL_VIDEODRIVER": "dummy"}) == "dummy"


@pytest.mark.system
def test_demo_headless_draws_every_outcome_offscreen(tmp_path):
    shots = tmp_path / "shots"
    result = run_kiosk("--state-dir", str(tmp_path / "state"), "demo", "--headless", "--seconds", "12",
                       "--screenshots", str(shots))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("demo summary: ")
    counts = dict(re.findall(r"(\S+)=(\d+)", re.search(r"demo screen: shown (.*)", result.stderr)[1]))
    summary = dict(re.findall(r"(\w+)=(\d+)", result.stdout.splitlines()[-1]))
    assert int(counts["accepted"]) == int(summary["accepted"]) >= 3
    assert int(counts["unrecognized"]) == int(summary["rejected"]) >= 1
    files = sorted(shots.glob("*.png"))
    assert len(files) == sum(int(n) for n in counts.values())
    for state in ("ready", "accepted", "duplicate", "unrecognized"):
        shot = next(p for p in files if p.stem.endswith("-" + state))
        assert colour_share(shot, LOOKS[state].background) > 0.25, state


@pytest.mark.system
def test_demo_in_a_window_uses_the_same_screen(tmp_path):
    result = run_kiosk("--state-dir", str(tmp_path), "demo", "--seconds", "5", SDL_VIDEODRIVER="dummy",
                       SDL_AUDIODRIVER="dummy")
    assert result.returncode == 0, result.stderr
    assert "screen: 800x480 on SDL video driver dummy" in result.stderr
    assert "demo screen: shown" in result.stderr and "accepted=" in result.stderr


@pytest.mark.system
def test_screen_benchmark_prints_frame_times_per_state_and_size():
    result = run_kiosk("bench", "screen", "--frames", "10", SDL_AUDIODRIVER="dummy", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == "screen" and report["machine"]["cores"]
    assert set(report["sizes"]) == {"800x480", "1024x600", "1920x1080", "480x800"}
    for size in report["sizes"].values():
        assert len(size["states"]) == len(SCREENSHOT_STATES)
        for figures in size["states"].values():
            assert 0 < figures["frame_ms"]["p50"] <= figures["frame_ms"]["p99"] <= figures["frame_ms"]["max"]
    assert report["ready_with_scanner_800x480"]["frames"] == 10


def test_screenshots_of_shown_screens_are_complete():
    """The PNG a `--screenshots` hook saves has the status bar too, not only the main area."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from kiosk.screen.samples import staged_app
    from kiosk.screen.statusbar import BAR_BACKGROUND

    pygame.display.init()
    try:
        import tempfile

        surface = pygame.display.set_mode((800, 480))
        app = staged_app("ready", surface, "vi", Path(tempfile.mkdtemp()))
        captured = []
        app.on_shown.append(lambda name, image: captured.append((name, pygame.surfarray.array3d(image).copy())))
        app.step([])
        name, pixels = captured[0]
        bar = pixels[:, : app.layout.status.height].transpose(1, 0, 2).astype(int)
        assert name == "ready"
        assert (np.abs(bar - np.array(BAR_BACKGROUND)).max(axis=2) <= 3).mean() > 0.5
        assert (bar.max(axis=2) > 200).mean() > 0.01  # the bar's words and icons are there
    finally:
        pygame.display.quit()
