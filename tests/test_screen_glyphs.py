"""Every visible string is in the catalogue, in both languages, and the font has every glyph at every size used."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame
import pygame.freetype

from kiosk.screen.catalogue import CATALOGUE, LANGUAGES, SAMPLE_PARAMS, parameters, say
from kiosk.screen.fonts import BUNDLED_DIR, FACES, Fonts, font_file, missing_glyphs
from kiosk.screen.layout import Layout

SCREEN_CODE = Path(__file__).resolve().parent.parent / "kiosk" / "screen"
LAYOUTS = [Layout.for_size(w, h) for w, h in ((800, 480), (1024, 600), (1920, 1080), (480, 800), (600, 1024))]
USED_SIZES = sorted(set().union(*(layout.font_sizes() for layout in LAYOUTS)))
EXTRA_TEXT = " · …0123456789:-~"  # separators and digits the screen adds around catalogue strings


def every_string() -> list[str]:
    return [say(key, lang, **SAMPLE_PARAMS) for key in CATALOGUE for lang in LANGUAGES] + [EXTRA_TEXT]


@pytest.fixture(scope="module")
def fonts() -> Fonts:
    pygame.freetype.init()
    return Fonts()


def test_the_check_really_detects_boxes_with_pygames_default_font():
    pygame.freetype.init()
    default = pygame.freetype.Font(None)
    assert missing_glyphs(default, "Được ghi nhận, cảm ơn") == ["ư", "ợ", "ậ", "ả", "ơ"]
    assert set("ưậễ") <= set(missing_glyphs(default, "ưậễ"))
    flagged = [text for text in every_string() if missing_glyphs(default, text)]
    assert len(flagged) > len(CATALOGUE) // 3  # Vietnamese strings would show boxes in the default font


def test_every_catalogue_string_has_every_glyph_at_every_used_size(fonts):
    assert len(USED_SIZES) >= 15
    problems = []
    for bold in (False, True):
        face = fonts.face(bold)
        for size in USED_SIZES:
            for text in every_string():
                missing = missing_glyphs(face, text, size)
                if missing:
                    problems.append((size, bold, text, missing))
    assert not problems, problems[:5]


def test_bundled_fonts_are_used_and_carry_their_licence():
    for face, name in FACES.items():
        assert font_file(face) == BUNDLED_DIR / name
    licence = (BUNDLED_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Bitstream" in licence and "Permission is hereby granted" in licence


def test_every_key_has_both_languages_and_fills_its_parameters():
    for key, texts in CATALOGUE.items():
        assert len(texts) == len(LANGUAGES) and all(t.strip() for t in texts), key
        assert parameters(key) <= set(SAMPLE_PARAMS), key
        for lang in LANGUAGES:
            assert "{" not in say(key, lang, **SAMPLE_PARAMS), key
    vietnamese_marks = re.compile("[àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ]", re.I)
    assert sum(bool(vietnamese_marks.search(vi)) for vi, _ in CATALOGUE.values()) > len(CATALOGUE) // 2


def test_every_key_the_code_asks_for_exists():
    """A key missing from the catalogue would put the raw key on the screen."""
    used = set()
    for path in SCREEN_CODE.glob("*.py"):
        used |= set(re.findall(r"""say\(\s*["']([a-z0-9_.-]+)["']""", path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"""View\(\s*"[a-z-]+",\s*"([a-z0-9_.-]+)\"""", path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"""\(\s*"([a-z0-9_-]+\.[a-z0-9_.-]+)",\s*\{""", path.read_text(encoding="utf-8")))
    assert len(used) > 40
    assert not sorted(k for k in used if k not in CATALOGUE)


def test_unknown_keys_and_bad_parameters_do_not_crash():
    assert say("no.such.key", "vi") == "no.such.key"
    assert say("result.time", "xx", time="09:00") == "Lúc 09:00"  # unknown language: Vietnamese
    assert say("result.time", "en") == "At {time}"  # a missing parameter leaves the template, no exception
