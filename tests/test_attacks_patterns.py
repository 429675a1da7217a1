"""A configured personal-QR pattern cannot freeze the scanner: patterns run on RE2 (linear time), and
what RE2 cannot do (backreferences, look-around) is refused when the config loads, naming the key."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_kiosk
from kiosk.core.config import Config, ConfigError
from kiosk.credentials.personal import PersonalTokenFormat

NESTED = r"PC-([0-9A-F]+)+-OK"  # plausible, and exponential on a backtracking engine


def with_pattern(config_file, pattern: str):
    text = config_file.read_text().replace("pattern = 'DEMO-HQR-[0-9A-F]{12}'", f"pattern = '{pattern}'")
    config_file.write_text(text)
    return config_file


@pytest.mark.system
def test_a_nested_repetition_pattern_does_not_hold_the_scan(config_file, state_dir):
    config = with_pattern(config_file, NESTED)
    hostile = "PC-" + "A" * 40 + "!"  # a backtracking engine would need ~2^40 steps on this
    result = run_kiosk("--config", str(config), "checkin", "--payload", hostile, timeout=60)
    assert result.returncode == 1 and "not-recognised" in result.stderr
    accepted = run_kiosk("--config", str(config), "checkin", "--payload", "PC-12AB-OK", timeout=60)
    assert accepted.returncode == 0, accepted.stderr
    with sqlite3.connect(state_dir / "kiosk.db") as conn:
        assert conn.execute("SELECT count(*) FROM checkins").fetchone()[0] == 1  # the genuine one only


@pytest.mark.system
def test_patterns_that_need_backtracking_are_refused_at_load_naming_the_key(config_file, state_dir):
    original = config_file.read_text()
    for pattern in (r"(PC)\1", r"(?=PC)P.*", r"(?<!X)PC"):
        config_file.write_text(original)
        result = run_kiosk("--config", str(with_pattern(config_file, pattern)), "checkin", "--payload", "PCPC")
        assert result.returncode == 2 and "formats.personal[0].pattern" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (state_dir / "kiosk.db").exists()  # nothing started, nothing recorded


PATTERNS = PersonalTokenFormat.from_config(Config().replace(formats={"personal": [
    {"name": "nested", "pattern": NESTED}, {"name": "alternation", "pattern": r"(a|aa|aaa)*b"},
    {"name": "any", "pattern": r"(.*)*X(.*)*"}]}).formats.personal)


@settings(max_examples=300, deadline=timedelta(seconds=1))
@given(st.binary(max_size=3000) | st.text(alphabet="aPC-AB0X!", max_size=3000).map(str.encode)
       | st.builds(lambda head, run, n, tail: (head + run * n + tail).encode(), st.sampled_from(["", "PC-", "X"]),
                   st.sampled_from(["a", "A", "0", "ab"]), st.integers(0, 1500), st.sampled_from(["", "!", "-O"])))
def test_any_payload_gets_an_answer_from_every_pattern(payload):
    assert PATTERNS.detect(payload) in (True, False)


def test_a_wrong_pattern_in_code_is_a_config_error():
    try:
        Config().replace(formats={"personal": [{"name": "x", "pattern": "(unclosed"}]})
    except ConfigError as exc:
        assert "formats.personal[0].pattern" in str(exc)
    else:
        raise AssertionError("an unclosed group was accepted")
