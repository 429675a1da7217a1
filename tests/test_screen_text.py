"""Hostile text (huge names, right-to-left, combining marks, control characters, empty) never leaves its box."""

from __future__ import annotations

import os
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

from kiosk.screen import text as textbox
from kiosk.screen.fonts import Fonts

SENTINEL = (255, 0, 255)
HOSTILE = {
    "very long name": "Nguyễn Thị Minh Khai " * 500,
    "one endless word": "Ư" * 3000,
    "arabic": "محمد بن عبد الله بن عبد المطلب " * 10,
    "hebrew": "שלום עליכם ברוכים הבאים " * 10,
    "combining stack": "Z" + "\u0301\u0302\u0303\u0304\u0306\u0307\u0308\u0309\u030a\u030b" * 30 + "algo",
    "decomposed vietnamese": unicodedata.normalize("NFD", "Nguyễn Văn Ất Đỗ Thị Ưng"),
    "control and bidi override": "A\u202eB\nC\tD\x00E\u200fF\u2066G",
    "emoji and cjk": "😀👍🏽 市場 ベンタイン市場 " * 20,
    "empty": "",
    "spaces only": "     ",
}


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    pygame.freetype.init()
    return Fonts()


def draw_in_box(fonts: Fonts, text: str, box: pygame.Rect, size: int, **kw: object) -> tuple[np.ndarray, pygame.Rect]:
    surface = pygame.Surface((400, 300))
    surface.fill(SENTINEL)
    drawn = textbox.draw(surface, fonts, text, box, size, (255, 255, 255), **kw)
    return pygame.surfarray.array3d(surface).transpose(1, 0, 2), drawn


def outside_changed(pixels: np.ndarray, box: pygame.Rect) -> int:
    mask = np.ones(pixels.shape[:2], bool)
    mask[box.top:box.bottom, box.left:box.right] = False
    return int((pixels[mask] != SENTINEL).any(axis=1).sum())


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("max_lines", [1, 2])
def test_hostile_text_stays_in_its_box(fonts, name, max_lines):
    box = pygame.Rect(50, 60, 240, 70)
    pixels, drawn = draw_in_box(fonts, HOSTILE[name], box, 40, bold=True, max_lines=max_lines)
    assert outside_changed(pixels, box) == 0
    assert box.contains(drawn) or drawn.size == (0, 0)
    inside = (pixels[box.top:box.bottom, box.left:box.right] != SENTINEL).any(axis=2).sum()
    if HOSTILE[name].strip():
        assert inside > 50, "something must be shown"
    else:
        assert inside == 0


def test_long_text_is_shrunk_then_cut_with_an_ellipsis(fonts):
    box = pygame.Rect(0, 0, 300, 60)
    fitted = textbox.fit(fonts, HOSTILE["very long name"], box, 40, max_lines=2)
    assert fitted.size < 40 and len(fitted.lines) <= 2
    assert fitted.lines[-1].endswith(textbox.ELLIPSIS)
    assert all(fonts.width(line, fitted.size) <= box.width + 2 for line in fitted.lines)
    short = textbox.fit(fonts, "Nguyễn V. A.", box, 40)
    assert short.lines == ("Nguyễn V. A.",) and short.size == 40


def test_cleaning_removes_controls_and_bidi_overrides_and_composes_marks():
    assert textbox.clean("A\u202eB\nC\tD\x00E") == "AB C DE"
    assert textbox.clean(unicodedata.normalize("NFD", "Nguyễn")) == "Nguyễn"
    assert textbox.clean("x" * 10_000) == "x" * textbox.MAX_CHARS
    assert textbox.clusters("e\u0301\u0302a") == ["e\u0301\u0302", "a"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300), width=st.integers(20, 380), height=st.integers(8, 200),
       size=st.integers(8, 90), lines=st.integers(1, 3))
def test_any_text_any_box_never_overflows(fonts, text, width, height, size, lines):
    box = pygame.Rect(10, 10, width, min(height, 280))
    pixels, _ = draw_in_box(fonts, text, box, size, max_lines=lines)
    assert outside_changed(pixels, box) == 0


def test_a_screen_with_extreme_names_keeps_every_part_in_place(fonts, tmp_path):
    """A 200-character venue name and a huge visitor name change nothing outside their own boxes."""
    from kiosk.events import Outcome
    from kiosk.credentials import Credential
    from kiosk.screen.app import ScreenApp
    from kiosk.screen.samples import sample_config, sample_snapshot
    from kiosk.screen.states import LOOKS

    def render(venue: str, name: str) -> tuple[np.ndarray, ScreenApp]:
        surface = pygame.Surface((800, 480))
        config = sample_config("vi", tmp_path).replace(device={"venue_name": venue})
        app = ScreenApp(surface, config, fonts=fonts, status=lambda: sample_snapshot(0), now=lambda: 5.0)
        app.post_outcome(Outcome("accepted", "ok", "cccd", "entry", 0,
                                 credential=Credential("cccd", "accepted", "ok", display_name=name)))
        app.step([])
        return pygame.surfarray.array3d(surface).transpose(1, 0, 2), app

    normal, app = render("Chợ Bến Thành", "Nguyễn V. A.")
    for venue, name in (("Ư" * 200, "محمد " * 300), ("", "Z\u0301\u0302\u0303" * 200), ("x" * 200, "")):
        extreme, _ = render(venue, name)
        cells = app.layout.status_cells()
        for cell in ("sync", "beacon", "clock", "lang"):
            rect = cells[cell]
            assert (extreme[rect.top:rect.bottom, rect.left:rect.right] ==
                    normal[rect.top:rect.bottom, rect.left:rect.right]).all(), (venue[:5], cell)
        icon, text = app.layout.result()
        assert (extreme[icon.top:icon.bottom, icon.left:icon.right] == normal[icon.top:icon.bottom, icon.left:icon.right]).all()
        main = extreme[app.layout.main.top:app.layout.progress.top]
        mask = np.ones(main.shape[:2], bool)
        for rect in (icon, text):
            mask[rect.top - app.layout.main.top:rect.bottom - app.layout.main.top, rect.left:rect.right] = False
        assert (np.abs(main[mask] - np.array(LOOKS["accepted"].background)).max(axis=1) <= 3).all()
