"""Attacks on the upstream's enrollment, tried against a real upstream process on loopback: taking over
an enrolled device id, spending a device's token on another, hammering enrollment; and the audit
trail each leaves in the upstream's log (who, what, when, from where; never a token)."""

import os
import re
import time

import pytest
import requests

from conftest import run_kiosk
from sync import protocol as p
from upstream_helpers import RawDevice, start_upstream, token, upstream_ids


class LoggedUpstream:
    """``kiosk upstream serve`` with its log in a file the test reads."""

    def __init__(self, tmp_path, *extra: str):
        self.db = str(tmp_path / "upstream.db")
        self.log_path = tmp_path / "upstream.log"
        self._log = open(self.log_path, "w")
        self.server = start_upstream(self.db, "127.0.0.1:0", *extra, log=self._log)
        self.url = self.server.url

    def log(self) -> str:
        return self.log_path.read_text()

    def audit(self, event: str) -> list[str]:
        return [line for line in self.log().splitlines() if f"event={event} " in line]

    def stop(self) -> None:
        self.server.stop()
        self._log.close()


@pytest.fixture
def upstream(tmp_path):
    server = LoggedUpstream(tmp_path)
    yield server
    server.stop()


def refused(response, status, reason):
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason, response.text


def enroll_with(dev: RawDevice, tok: str, venue: str = "VENUE-1"):
    return dev.send(p.PATH_ENROLL, {"token": tok, "device_id": dev.device_id, "venue_id": venue,
                                    "public_key": dev.public_key_b64, "software_version": "test"})


def impostor_of(victim: RawDevice) -> RawDevice:
    """Same device id, a key of its own."""
    return RawDevice(victim.url, victim.device_id)


def test_a_valid_token_for_another_venue_cannot_take_over_an_enrolled_device(upstream):
    victim = RawDevice(upstream.url, "victim-01")
    assert victim.enroll(upstream.db).status_code == 200
    attacker = impostor_of(victim)
    stolen_token = token(upstream.db, "VENUE-EVIL")
    refused(enroll_with(attacker, stolen_token, "VENUE-EVIL"), 409, "device-enrolled")
    refused(attacker.enroll(upstream.db), 409, "device-enrolled")  # nor with a fresh token for the victim's venue
    forged = attacker.item(venue="VENUE-EVIL")
    refused(attacker.send(p.PATH_CHECKINS, {"checkins": [forged]}), 401, "bad-signature")
    genuine = victim.item()
    assert victim.send(p.PATH_CHECKINS, {"checkins": [genuine]}).json()["stored"] == 1  # not locked out
    assert upstream_ids(upstream.db) == [genuine["id"]]
    refusals = upstream.audit("enrollment-refused")
    assert len(refusals) == 2 and all('device="victim-01"' in r and 'reason="device-enrolled"' in r
                                      and 'from="127.0.0.1"' in r and re.search(r"at=\d{4}-\d\d-\d\dT", r)
                                      for r in refusals), refusals
    assert stolen_token not in upstream.log()


def test_an_enrollment_refused_by_the_schema_is_audited_without_its_token(upstream):
    dev = RawDevice(upstream.url, "malformed-01")
    tok = token(upstream.db, "VENUE-1")
    body = {"token": tok, "device_id": dev.device_id, "venue_id": "VENUE-1", "public_key": dev.public_key_b64}
    refused(dev.send(p.PATH_ENROLL, body), 422, "invalid-field")  # software_version missing
    refusals = upstream.audit("enrollment-refused")
    assert len(refusals) == 1 and 'device="malformed-01"' in refusals[0] and 'reason="invalid-field"' in refusals[0]
    assert tok not in upstream.log()


def test_the_enrolled_device_may_return_with_its_own_key(upstream):
    from sync.upstream.engines import open_storage

    dev = RawDevice(upstream.url, "mover-01")
    assert dev.enroll(upstream.db).status_code == 200
    assert dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]}).json()["stored"] == 1  # served at its first venue
    assert dev.enroll(upstream.db, "VENUE-2").status_code == 200  # moved to another venue: same key, proof of it
    assert 'action="re-enrolled"' in upstream.audit("enrollment")[-1]
    # The worker serves it at its new venue at once: its beacon key is registered for VENUE-2.
    assert dev.send(p.PATH_CHECKINS, {"checkins": [dev.item("VENUE-2")]}).json()["stored"] == 1
    key = {"base_key": "ab" * 32, "key_day": "2026-12-01"}
    assert dev.send(p.PATH_BEACON_KEY, key).json()["registered"] is True
    storage = open_storage(upstream.db)
    try:
        assert [k["device_id"] for k in storage.beacon_keys("VENUE-2")] == ["mover-01"]
        assert "mover-01" not in [k["device_id"] for k in storage.beacon_keys("VENUE-1")]
    finally:
        storage.close()


def test_re_keying_needs_a_token_issued_for_that_device(upstream):
    old = RawDevice(upstream.url, "sd-card-01")
    assert old.enroll(upstream.db).status_code == 200
    assert old.send(p.PATH_CHECKINS, {"checkins": [old.item()]}).json()["stored"] == 1  # served with its first key
    result = run_kiosk("upstream", "token", "--db", upstream.db, "--venue", "VENUE-1", "--device", "sd-card-01")
    assert result.returncode == 0, result.stderr
    device_token = result.stdout.strip()
    other = RawDevice(upstream.url, "someone-else")
    refused(enroll_with(other, device_token), 403, "device-mismatch")  # bound to its device id
    new = impostor_of(old)  # the replaced SD card
    assert enroll_with(new, device_token).status_code == 200
    refused(old.send(p.PATH_CHECKINS, {"checkins": [old.item()]}), 401, "bad-signature")
    assert new.send(p.PATH_CHECKINS, {"checkins": [new.item()]}).json()["stored"] == 1
    rekeyed = upstream.audit("enrollment")[-1]
    assert 'action="re-keyed"' in rekeyed and 'device="sd-card-01"' in rekeyed and device_token not in upstream.log()
    assert 'command="token"' in result.stderr and '"sd-card-01"' in result.stderr  # the operator's own trail


def test_revoke_then_enroll_gives_a_new_key_and_never_the_revoked_one(upstream):
    stolen = RawDevice(upstream.url, "stolen-01")
    assert stolen.enroll(upstream.db).status_code == 200
    assert stolen.send(p.PATH_CHECKINS, {"checkins": [stolen.item()]}).json()["stored"] == 1  # served before the revocation
    assert run_kiosk("upstream", "revoke", "--db", upstream.db, "--device", "stolen-01").returncode == 0
    refused(stolen.enroll(upstream.db), 403, "device-revoked")  # the thief's copy of the key stays dead
    replacement = impostor_of(stolen)
    assert replacement.enroll(upstream.db).status_code == 200
    assert replacement.send(p.PATH_CHECKINS, {"checkins": [replacement.item()]}).json()["stored"] == 1
    refused(stolen.send(p.PATH_CHECKINS, {"checkins": [stolen.item()]}), 401, "bad-signature")
    assert 'action="re-enrolled-after-revocation"' in upstream.audit("enrollment")[-1]


def test_failed_signatures_are_logged_with_their_source(upstream):
    dev = RawDevice(upstream.url, "signer-01")
    assert dev.enroll(upstream.db).status_code == 200
    refused(dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]}, key=RawDevice(upstream.url).key),
            401, "bad-signature")
    line = upstream.audit("request-refused")[-1]
    assert 'reason="bad-signature"' in line and 'device="signer-01"' in line and 'from="127.0.0.1"' in line


def test_operator_queries_are_logged_without_the_token(upstream):
    operator = run_kiosk("upstream", "token", "--db", upstream.db, "--operator").stdout.strip()
    url = upstream.url + "/v1/admin/trace"
    params = {"venue_id": "VENUE-1", "start_ms": 0, "end_ms": 10**12}
    assert requests.get(url, params=params, headers={"Authorization": f"Bearer {operator}"}, timeout=10).ok
    assert requests.get(url, params=params, headers={"Authorization": "Bearer ko_guess"}, timeout=10).status_code == 403
    query, = upstream.audit("operator-query")
    assert 'path="/v1/admin/trace"' in query and "venue_id=VENUE-1" in query and 'from="127.0.0.1"' in query
    assert re.search(r'token="[0-9a-f]{12}"', query)
    assert 'reason="bad-operator-token"' in upstream.audit("operator-refused")[0]
    assert operator not in upstream.log() and "ko_guess" not in upstream.log()


def test_a_hostile_device_id_cannot_forge_an_audit_field(upstream):
    dev = RawDevice(upstream.url, "x")
    dev.send(p.PATH_CHECKINS, {"checkins": []}, device_id='x" action="re-keyed')
    line, = upstream.audit("request-refused")
    assert 'action="re-keyed"' not in line and '\\"' in line, line


def test_enrollment_attempts_are_rate_limited_per_source(tmp_path):
    server = LoggedUpstream(tmp_path, "--enroll-per-minute", "3")
    try:
        devices = [RawDevice(server.url, f"flood-{i}") for i in range(5)]
        answers = [enroll_with(d, "kt_not-a-real-token-000") for d in devices]
        assert [a.status_code for a in answers] == [403, 403, 403, 429, 429]
        assert int(answers[3].headers["Retry-After"]) >= 1 and answers[3].json()["reason"] == "rate-limited"
        assert len(server.audit("enrollment-rate-limited")) == 2
        assert upstream_ids(server.db) == []
    finally:
        server.stop()


def test_an_upstream_database_made_before_device_bound_tokens_is_upgraded(tmp_path):
    import sqlite3

    from sync.protocol import ProtocolError
    from sync.upstream.storage import Storage

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the tokens table as earlier versions made it
        conn.execute("CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, venue_id TEXT, "
                     "created_ms INTEGER NOT NULL, expires_ms INTEGER, used_ms INTEGER, used_by TEXT, used_key BLOB)")
    storage = Storage(str(db))
    try:
        tok = storage.create_token("enroll", "VENUE-1", ttl_s=60, device_id="dev-1")
        refusal = pytest.raises(ProtocolError, storage.enroll, tok, "dev-2", "VENUE-1", b"k" * 32, "test")
        assert refusal.value.reason == "device-mismatch"
        assert storage.enroll(tok, "dev-1", "VENUE-1", b"k" * 32, "test").action == "enrolled"
    finally:
        storage.close()


def test_hostile_enrollment_bodies_are_refused_and_enroll_nobody(upstream):
    import gzip
    import json as js

    dev = RawDevice(upstream.url, "hostile-01")
    body = {"token": token(upstream.db), "device_id": dev.device_id, "venue_id": "VENUE-1",
            "public_key": dev.public_key_b64, "software_version": "test"}
    refused(dev.send(p.PATH_ENROLL, raw=os.urandom(20_000), compress=False,
                     headers={"Content-Encoding": "gzip"}), 413, "body-too-large")  # over the 16 KB cap
    bomb = gzip.compress(b"{" + b" " * (10 * 2**20) + b"}")  # 10 MB of JSON from ~10 KB
    signed = p.sign(dev.key, "POST", p.PATH_ENROLL, dev.device_id, bomb, int(time.time() * 1000))
    answer = requests.post(upstream.url + p.PATH_ENROLL, data=bomb, timeout=30,
                           headers={**signed, "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    tampered = dev.send(p.PATH_ENROLL, body, tamper={p.H_DIGEST: "0" * 64})  # body changed after signing
    refused(tampered, 401, "bad-signature")
    for venue in ("V'; DROP TABLE devices;--", "../../admin", "V\u202eNEU"):
        answer = dev.send(p.PATH_ENROLL, {**body, "venue_id": venue})
        assert answer.status_code == 422 and answer.json()["reason"] == "invalid-field"
    assert js.loads(run_kiosk("upstream", "stats", "--db", upstream.db).stdout)["devices"] == 0
    assert dev.send(p.PATH_ENROLL, body).status_code == 200  # the token was never spent by the attempts
