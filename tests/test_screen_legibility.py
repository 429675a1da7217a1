"""Legibility as a rule: contrast of every text colour on its background, text size readable at 1 m
on the 7-inch panel, venue names that fit; computed from the theme and from the real drawing code."""

from __future__ import annotations

import pygame
import pytest

from kiosk.screen import maintenance, render, statusbar
from kiosk.screen import text as textbox
from kiosk.screen.entry import KEY_FILL
from kiosk.screen.layout import MIN_TEXT_PX_7INCH, Layout
from kiosk.screen.samples import sample_snapshot, staged_app
from kiosk.screen.states import LOOKS, MIN_CONTRAST, SCREENSHOT_STATES, contrast, luminance
from test_screen_app import fonts  # noqa: F401 - fixture

MAINTENANCE = LOOKS["maintenance"]


def text_colour_pairs() -> list[tuple[str, tuple, tuple]]:
    """Every (what, text colour, background) the screen draws."""
    pairs = []
    for state, look in LOOKS.items():
        pairs += [(f"{state} ink", look.ink, look.background),
                  (f"{state} second language / hint", render.secondary_ink(look), look.background)]
    pairs += [("status bar", statusbar.BAR_INK, statusbar.BAR_BACKGROUND),
              ("status bar dim", statusbar.BAR_DIM, statusbar.BAR_BACKGROUND),
              ("maintenance dim", maintenance.DIM_INK, MAINTENANCE.background),
              ("maintenance message", maintenance.MESSAGE_INK, MAINTENANCE.background),
              ("key", MAINTENANCE.ink, maintenance.KEY_FILL),
              ("keypad key", LOOKS["manual-entry"].ink, KEY_FILL),
              ("close / cancel", MAINTENANCE.ink, maintenance.CLOSE_FILL),
              ("waiting for the camera", render.PREVIEW_WAITING_INK, render.PREVIEW_EMPTY)]
    return pairs


def test_contrast_is_computed_as_wcag_defines_it():
    assert contrast((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert contrast((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # the classic #777 on white
    assert luminance((255, 255, 255)) == pytest.approx(1.0)


@pytest.mark.parametrize("what, ink, background", text_colour_pairs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_text_colour_has_at_least_4_5_to_1_on_its_background(what, ink, background):
    assert contrast(ink, background) >= MIN_CONTRAST, f"{what}: {contrast(ink, background):.2f}:1"


def test_the_second_language_is_still_dimmer_than_the_title_where_contrast_allows():
    green = LOOKS["accepted"]
    assert render.secondary_ink(green) != green.ink or contrast(green.ink, green.background) < 5.5
    ready = LOOKS["ready"]
    assert render.secondary_ink(ready) != ready.ink


def test_the_minimum_text_size_is_the_documented_one():
    from conftest import ROOT

    assert Layout.for_size(800, 480).min_text_px == MIN_TEXT_PX_7INCH == 21
    assert f"{MIN_TEXT_PX_7INCH} px" in (ROOT / "docs" / "screen.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_visitor_text_is_never_drawn_below_the_minimum(fonts, tmp_path, monkeypatch, size, lang):
    """Every piece of text drawn in the main area of a visitor's screen, at the size it was fitted to."""
    drawn: list[tuple[str, str, int]] = []
    real_draw = textbox.draw

    def recording_draw(surface, fonts_, text, box, size_, colour, bold=False, max_lines=1, align="left",
                       valign="middle", min_size=None):
        fitted = textbox.fit(fonts_, text, box, size_, bold, max_lines, min_size)
        drawn.append((state, text, fitted.size, box.top))
        return real_draw(surface, fonts_, text, box, size_, colour, bold, max_lines, align, valign, min_size)

    monkeypatch.setattr(textbox, "draw", recording_draw)
    layout = Layout.for_size(*size)
    for state in SCREENSHOT_STATES:
        if state in ("maintenance",):  # staff read it up close
            continue
        surface = pygame.Surface(size)
        app = staged_app(state, surface, lang, tmp_path, fonts=fonts)
        app.step([])
    small = [(s, t, px) for s, t, px, top in drawn if top >= layout.main.top and px < layout.min_text_px]
    assert not small, small


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("venue", ["Chợ Bến Thành", "Chợ Bến Thành – Cổng chính số 1",
                                   "Bến xe Miền Đông mới – Cổng số 2 (khu A)"])
def test_venue_names_fit_in_the_status_bar(fonts, size, venue):
    layout = Layout.for_size(*size)
    cells = layout.status_cells()
    items = statusbar.bar_items(sample_snapshot(0), venue, "vi", 0)
    icon, words = items["venue"]
    side = min(cells["venue"].height, round(layout.status_px * 1.5))
    box = pygame.Rect(0, 0, cells["venue"].width - side - layout.status_px // 2, cells["venue"].height)
    fitted = textbox.fit(fonts, words, box, layout.venue_px, True, 2, round(layout.status_px * 0.7))
    assert " ".join(fitted.lines) == venue and "…" not in "".join(fitted.lines), fitted
    surface = pygame.Surface(size)
    statusbar.draw_bar(surface, layout, fonts, items)  # and the real bar draws it without complaint
