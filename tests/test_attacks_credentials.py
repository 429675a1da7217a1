"""Attacks through the codes visitors hold up: certificates from signers past their time, content
that breaks a converter, schema details that must not turn a genuine visitor away, and fuzzed
signed content. Each refusal is checked to leave nothing recorded."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from datetime import timedelta

import pytest

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_kiosk
from credential_factory import VIETNAMESE_DCC, Issuer, hc1_from_cose
from kiosk.credentials import hc1
from kiosk.credentials.trust import TrustList

NOW = dt.datetime.now(dt.timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
DAY = 86400


def trust(issuer: Issuer) -> TrustList:
    return TrustList.of([(issuer.cert, None)], "test")


def days_ago(n: float) -> int:
    return int((NOW - timedelta(days=n)).timestamp())


def kiosk_with_trust(tmp_path, config_file, issuer: Issuer):
    (tmp_path / "signer.pem").write_bytes(issuer.pem())
    text = config_file.read_text().replace("[clock]", f"[formats]\nhc1_trust = \"{tmp_path / 'signer.pem'}\"\n\n[clock]")
    config_file.write_text(text)
    return config_file


def checkins_recorded(state_dir) -> int:
    db = state_dir / "kiosk.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM checkins").fetchone()[0]


@pytest.mark.system
def test_a_signer_expired_before_it_signed_is_refused_and_nothing_is_recorded(tmp_path, config_file, state_dir):
    lapsed = Issuer.new(valid_from=NOW - timedelta(days=400), valid_until=NOW - timedelta(days=30))
    payload = lapsed.hc1(iat=days_ago(10), exp=days_ago(-300))  # signed 20 days after its signer ended
    cred = hc1.evaluate(payload, trust(lapsed), NOW_MS)
    assert (cred.verdict, cred.reason) == ("rejected", "signer-not-valid")
    assert cred.facts["verdicts"]["signer_validity"] == "expired" and cred.facts["verdicts"]["signature"] == "valid"
    config = kiosk_with_trust(tmp_path, config_file, lapsed)
    result = run_kiosk("--config", str(config), "checkin", "--payload", payload.decode())
    assert result.returncode == 1 and "signer-not-valid" in result.stderr
    assert checkins_recorded(state_dir) == 0
    shown = json.loads(run_kiosk("--config", str(config), "inspect", payload.decode()).stdout)
    assert shown["signer_validity"] == "expired" and shown["reason"] == "signer-not-valid"


def test_a_signer_not_yet_valid_when_it_signed_is_refused():
    early = Issuer.new(valid_from=NOW - timedelta(days=5), valid_until=NOW + timedelta(days=400))
    cred = hc1.evaluate(early.hc1(iat=days_ago(10)), trust(early), NOW_MS)
    assert (cred.reason, cred.facts["verdicts"]["signer_validity"]) == ("signer-not-valid", "not-yet-valid")


def test_a_certificate_signed_while_its_signer_was_valid_stays_good_after_the_signer_ends():
    """EU rule: the signer must be valid at issue time; a certificate outlives its signer's period."""
    ended = Issuer.new(valid_from=NOW - timedelta(days=400), valid_until=NOW - timedelta(days=30))
    cred = hc1.evaluate(ended.hc1(iat=days_ago(60), exp=days_ago(-300)), trust(ended), NOW_MS)
    assert cred.accepted and cred.facts["verdicts"]["signer_validity"] == "valid"


@pytest.mark.system
def test_a_date_tag_out_of_range_is_reported_not_a_traceback(tmp_path, config_file, state_dir):
    signer = Issuer.new()
    far = dict(VIETNAMESE_DCC, v=[dict(VIETNAMESE_DCC["v"][0], dt=cbor2.CBORTag(1, 2**39))])  # year ~19400
    payload = hc1_from_cose(signer.cose(far, days_ago(1), days_ago(-300))).decode()
    config = kiosk_with_trust(tmp_path, config_file, signer)
    shown = run_kiosk("--config", str(config), "inspect", payload)
    assert shown.returncode in (0, 1) and "Traceback" not in shown.stderr, shown.stderr
    report = json.loads(shown.stdout)
    assert report["schema"] == "deviations" and any("date out of range" in d for d in report["schema_deviations"])
    checked_in = run_kiosk("--config", str(config), "checkin", "--payload", payload)
    assert "Traceback" not in checked_in.stderr and checked_in.returncode in (0, 1)


def test_schema_details_the_check_in_never_reads_do_not_turn_a_genuine_visitor_away():
    signer = Issuer.new()
    entry = {k: v for k, v in VIETNAMESE_DCC["v"][0].items() if k != "ma"}  # an entry without its manufacturer
    older = dict(VIETNAMESE_DCC, ver="1.0",  # an early issuer's version string, a date written as date-time
                 nam=dict(VIETNAMESE_DCC["nam"], gn=""), v=[dict(entry, dt="2021-09-01T00:00:00Z")])
    cred = hc1.evaluate(signer.hc1(older), trust(signer), NOW_MS)
    assert (cred.verdict, cred.reason) == ("accepted", "ok")
    assert cred.facts["verdicts"]["schema"] == "deviations" and cred.facts["verdicts"]["fields"] == "valid"
    assert cred.facts["schema_deviations"] and all(":" in d for d in cred.facts["schema_deviations"])
    assert "NGUYEN" not in json.dumps(cred.facts)  # deviations name paths and rules, never values
    assert cred.subject == "NGUYEN<<VAN<AN|1990-01-01"
    mononym = hc1.evaluate(signer.hc1(dict(VIETNAMESE_DCC, nam={"gnt": "AN"})), trust(signer), NOW_MS)
    assert mononym.accepted and mononym.subject == "<<AN|1990-01-01"  # the schema allows a given name alone


def test_fields_the_check_in_reads_are_still_required():
    signer = Issuer.new()
    for broken in (dict(VIETNAMESE_DCC, nam={"fn": "Nguyễn", "fnt": ""}),   # no transliterated name
                   dict(VIETNAMESE_DCC, dob=19900101),                         # birth date not text
                   dict(VIETNAMESE_DCC, nam={"fnt": "nguyen<drop table"}),     # not the ICAO form
                   dict(VIETNAMESE_DCC, v=[VIETNAMESE_DCC["v"][0]] * 2)):      # two entries
        cred = hc1.evaluate(signer.hc1(broken), trust(signer), NOW_MS)
        assert (cred.reason, cred.facts["verdicts"]["fields"]) == ("invalid-schema", "invalid"), broken


CONTENT = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**64, max_value=2**64) | st.floats() | st.text(max_size=120)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(
        ["nam", "fnt", "gnt", "fn", "gn", "dob", "v", "t", "r", "ver", "dt", "sc"]) | st.text(max_size=4), children,
        max_size=4) | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 4, 5, 100, 1004]), children),
    max_leaves=20)


@settings(max_examples=200, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["nam", "dob", "v", "ver", "extra"]), content=CONTENT)
def test_signed_certificates_with_hostile_fields_get_a_verdict_never_an_exception(field, content):
    signer = FUZZ_SIGNER
    cred = hc1.evaluate(signer.hc1(dict(VIETNAMESE_DCC, **{field: content})), FUZZ_TRUST, NOW_MS)
    assert cred.reason in {"ok", "invalid-schema", "wrong-key-usage"}
    if cred.accepted:
        assert cred.facts["verdicts"]["fields"] == "valid" and cred.subject


FUZZ_SIGNER = Issuer.new()
FUZZ_TRUST = trust(FUZZ_SIGNER)
