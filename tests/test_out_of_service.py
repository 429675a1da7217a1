"""A kiosk that cannot record check-ins says so to the visitor ("see staff"), and why to staff."""

from __future__ import annotations

import dataclasses
import time

import pygame
import pytest

from conftest import run_kiosk
from kiosk.screen.app import ScreenApp
from kiosk.screen.catalogue import say
from kiosk.screen.commands import render_state
from kiosk.screen.fonts import Fonts
from kiosk.screen.layout import Layout
from kiosk.screen.samples import sample_config, sample_snapshot
from kiosk.screen.states import LOOKS

SIZES = [(800, 480), (1024, 600), (1920, 1080), (480, 800), (600, 1024), (1080, 1920)]


@pytest.fixture(scope="module")
def fonts():
    pygame.display.init()
    yield Fonts()
    pygame.display.quit()


def app_for(fonts, state_dir, snapshot=None, **device):
    config = sample_config("vi", state_dir)
    if device:
        config = config.replace(device=device)
    snapshot = snapshot or sample_snapshot(time.time_ns() // 10**6)
    return ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts, status=lambda: snapshot)


@pytest.mark.system
def test_the_screenshot_command_renders_it_in_both_languages(tmp_path):
    for lang in ("vi", "en"):
        out = tmp_path / f"oos-{lang}.png"
        result = run_kiosk("screenshot", "--state", "out-of-service", "--lang", lang, str(out))
        assert result.returncode == 0, result.stderr
        image = pygame.image.load(str(out))
        assert image.get_size() == (800, 480)
        main = Layout.for_size(800, 480).main
        corner = image.get_at((main.right - 5, main.bottom - 5))[:3]
        assert corner == LOOKS["out-of-service"].background


@pytest.mark.parametrize("size", SIZES)
def test_every_size_and_language_renders(tmp_path, size):
    for lang in ("vi", "en"):
        out = tmp_path / f"{lang}.png"
        render_state("out-of-service", size, lang, out)
        image = pygame.image.load(str(out))
        assert image.get_size() == size
        main = Layout.for_size(*size).main
        colours = {image.get_at((x, y))[:3] for x in range(main.x, main.right, 7) for y in range(main.y, main.bottom, 7)}
        assert LOOKS["out-of-service"].background in colours and len(colours) > 2  # words and icon drawn on it


def test_each_cause_shows_it_and_the_maintenance_page_says_why(fonts, tmp_path):
    now = time.time_ns() // 10**6
    cases = {
        "not-provisioned": app_for(fonts, tmp_path, venue_id="", venue_name=""),
        "storage-read-only": app_for(fonts, tmp_path, dataclasses.replace(sample_snapshot(now), storage_writable=False)),
    }
    keyless = app_for(fonts, tmp_path)
    keyless.config = keyless.config.replace(privacy={"authority_public_key": ""})
    cases["no-authority-key"] = keyless
    for reason, app in cases.items():
        app.step([])
        assert app._shown_name == "out-of-service", reason
        snapshot = app.status()
        assert app.out_of_service(snapshot) == reason
        app.maintenance.unlock(app.now())
        lines = [line.text for line in app.maintenance._status_lines("en", app.layout, snapshot, now)]
        assert say("maintenance.out_of_service", "en", reason=say(f"out-of-service.{reason}", "en")) in lines
    healthy = app_for(fonts, tmp_path, dataclasses.replace(sample_snapshot(now), storage_writable=True))
    healthy.step([])
    assert healthy._shown_name == "ready" and healthy.out_of_service(healthy.status()) is None
    # The visitor's screen never carries the staff's reason.
    assert "privacy.authority_public_key" not in say("out-of-service.detail", "vi") + say("out-of-service.title", "vi")
