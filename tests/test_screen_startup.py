"""The start-up screen: the display shows "Starting…" before the seconds of loading, never a black window."""

from __future__ import annotations

import threading

import numpy as np
import pygame

from kiosk.pipeline import Pipeline
from kiosk.screen import samples
from kiosk.screen.run import run_with_screen
from kiosk.screen.states import STARTING


def test_the_first_frame_is_the_start_up_screen(config, monkeypatch):
    seen: dict[str, object] = {}
    real_prewarm = samples.prewarm

    def prewarm_after_looking(fonts, size, state_dir):  # the slow part of start-up (glyphs, every state)
        surface = pygame.display.get_surface()
        pixels = pygame.surfarray.array3d(surface).transpose(1, 0, 2)
        seen["background"] = float((np.abs(pixels - np.array(STARTING.look.background)).max(axis=2) <= 3).mean())
        seen["ink"] = float((np.abs(pixels - np.array(STARTING.look.ink)).max(axis=2) <= 40).mean())
        real_prewarm(fonts, size, state_dir)

    monkeypatch.setattr(samples, "prewarm", prewarm_after_looking)
    pipeline = Pipeline(config)
    stop = threading.Event()
    stats, shown = run_with_screen(pipeline, stop, seconds=2, dummy_display=True)
    pipeline.close()
    assert seen["background"] > 0.5, "the start-up screen was not on the display before loading"
    assert seen["ink"] > 0.01, "no words or icon on the start-up screen"
    assert shown and shown.get("ready", 0) >= 1  # and then the kiosk went on to its ready screen
