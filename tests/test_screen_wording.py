"""Words that speak to the right person: the visitor reads what happened in their words, staff read codes."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata

import pytest

from conftest import run_kiosk
from kiosk.events import Outcome
from kiosk.screen.catalogue import CATALOGUE, say
from kiosk.screen.states import view_for_outcome
from test_screen_app import click, fonts, kiosk, outcome, shown  # noqa: F401 - fixtures


def test_certificate_valid_says_the_visitor_is_checked_in():
    for direction, vi_word, en_word in (("entry", "lượt vào", "checked in"), ("exit", "lượt ra", "checked out")):
        view = view_for_outcome(Outcome("accepted", "ok", "hc1", direction, 0), 4.0, 7.0)
        assert view.state == "certificate-valid"
        assert "ghi nhận" in say(view.title, "vi") and vi_word in say(view.title, "vi")
        assert en_word in say(view.title, "en").lower()


@pytest.mark.system
def test_ocr_of_the_vietnamese_certificate_screen_reads_ghi_nhan(tmp_path):
    """The real screen, as a person would read it: rendered, then read back by tesseract's Vietnamese model."""
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is missing: ./dev installs tesseract-ocr and tesseract-ocr-vie (APT_TEST)")
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
    assert "vie" in langs, "tesseract-ocr-vie is missing: ./dev installs it (APT_TEST)"
    image = tmp_path / "certificate-valid.png"
    result = run_kiosk("screenshot", "--state", "certificate-valid", "--size", "800x480", "--lang", "vi", str(image))
    assert result.returncode == 0, result.stderr
    text = subprocess.run(["tesseract", str(image), "-", "-l", "vie"], capture_output=True, text=True,
                          timeout=120).stdout
    text = unicodedata.normalize("NFC", text)
    assert "ghi nhận" in text, text
    assert "Certificate valid" in text, text


def test_status_words_read_as_vietnamese_is_written_today():
    assert say("status.sent_ago", "vi", age="4 phút") == "đã gửi 4 phút trước"
    assert "Beacon" not in say("status.beacon_on", "vi") and "Beacon" not in say("status.beacon_off", "vi")
    assert "Beacon" not in say("maintenance.beacon", "vi", value="x")
    assert say("provisioning.cancel", "vi") == "Hủy" and say("maintenance.del", "vi") == "Xóa"
    everything = " ".join(vi for vi, _ in CATALOGUE.values())
    # old-style tone placement in an open syllable (huỷ, xoá, hoà); phones write hủy, xóa, hòa
    old = re.findall(r"(?:uỷ|uý|uỳ|oá|oà|oả|oạ|oã)(?![a-zđ])", unicodedata.normalize("NFC", everything.lower()))
    assert not old, old


@pytest.mark.parametrize("event, reason, kind", [
    ("rejected", "invalid-cccd", "cccd"),
    ("rejected", "revoked-by-authority", "hc1"),
    ("rejected", "untrusted-signer", "provisioning"),
    ("error", "not-provisioned", "cccd"),
    ("error", "no-authority-key", "cccd"),
    ("error", "database-on-fire", "cccd"),
])
def test_no_raw_code_on_a_visitor_screen_but_the_code_on_the_maintenance_page(kiosk, event, reason, kind):
    kiosk.post_outcome(outcome(event, reason, kind))
    kiosk.step([])
    view = kiosk.result
    words = " ".join(say(key, lang, **params) for key, params in view.lines for lang in ("vi", "en"))
    words += " " + say(view.title, "vi") + " " + say(view.title, "en")
    assert reason not in words and "Mã lỗi" not in words and "Reason:" not in words
    assert view.lines, "the visitor gets a reason in words"
    staff = [what for _, what in kiosk.recent_errors(kiosk.status())]
    assert any(reason in what for what in staff), staff
    kiosk.open_maintenance()
    kiosk.maintenance.unlock(kiosk.now())
    lines = kiosk.maintenance._status_lines("vi", kiosk.layout, kiosk.status(), 0)
    assert any(reason in line.text for line in lines)
