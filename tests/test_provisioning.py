"""Provisioning QR codes: made by the authority's tool, accepted only from the configured key, fresh."""

from __future__ import annotations

import base64
import json
import time

import pytest

from conftest import run_kiosk
from kiosk.credentials.base import FormatContext
from kiosk.credentials.provisioning import (ProvisioningCode, ProvisioningError, ProvisioningFormat, make_code,
                                            new_signing_keypair)

NOW_S = 1_800_000_000
CTX = FormatContext(now_utc_ms=NOW_S * 1000)
SIGNING, VERIFY = new_signing_keypair()


def code(**changes) -> ProvisioningCode:
    fields = dict(venue_id="CHO-BEN-THANH", venue_name="Chợ Bến Thành – cổng 2", direction="exit",
                  upstream_url="https://upstream.example.vn/api", enrollment_token="tok_0123456789abcdefXYZ",
                  issued_at=NOW_S - 3600)
    fields.update(changes)
    return ProvisioningCode(**fields)


def verify(text: str, key: bytes | None = VERIFY, max_age: float = 259200):
    fmt = ProvisioningFormat(key, max_age)
    assert fmt.detect(text.encode())
    return fmt.parse(text.encode(), CTX)


def test_signed_code_carries_everything_and_keeps_the_token_out_of_facts():
    cred = verify(make_code(SIGNING, code()))
    assert (cred.kind, cred.verdict, cred.reason) == ("provisioning", "accepted", "ok")
    assert cred.content == code()
    assert cred.facts == {"venue_id": "CHO-BEN-THANH", "venue_name": "Chợ Bến Thành – cổng 2", "direction": "exit",
                          "upstream_url": "https://upstream.example.vn/api", "issued_at": NOW_S - 3600}
    assert "tok_" not in repr(cred) and "tok_" not in json.dumps(cred.facts)
    assert cred.subject == ""  # not a visitor


def test_other_signer_tampering_and_missing_key_are_refused():
    other, _ = new_signing_keypair()
    assert verify(make_code(other, code())).reason == "untrusted-signer"
    good = make_code(SIGNING, code())
    body, sig = good.split(".")
    forged_body = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(body[len("KIOSK-PROV1:"):] + "==").replace(b"CHO-BEN-THANH", b"CHO-BEN-THANX")).rstrip(b"=")
    assert verify("KIOSK-PROV1:" + forged_body.decode() + "." + sig).reason == "untrusted-signer"
    refused = verify(good, key=None)
    assert refused.reason == "untrusted-signer" and refused.facts == {"authority_key_configured": False}


def test_stale_and_future_codes_are_refused():
    assert verify(make_code(SIGNING, code(issued_at=NOW_S - 259201))).reason == "expired"
    assert verify(make_code(SIGNING, code(issued_at=NOW_S - 100)), max_age=60).reason == "expired"
    assert verify(make_code(SIGNING, code(issued_at=NOW_S + 3600))).reason == "not-yet-valid"
    assert verify(make_code(SIGNING, code(issued_at=NOW_S + 60))).accepted  # a little clock skew is fine


@pytest.mark.parametrize("changes, field", [
    ({"venue_id": "bad id"}, "venue_id"),
    ({"venue_name": ""}, "venue_name"),
    ({"venue_name": "x\x1b[31m"}, "venue_name"),
    ({"direction": "sideways"}, "direction"),
    ({"upstream_url": "http://upstream.example.vn"}, "upstream_url"),   # plain http only on loopback
    ({"upstream_url": "https://user:pw@upstream.example.vn"}, "upstream_url"),
    ({"upstream_url": "ftp://x"}, "upstream_url"),
    ({"enrollment_token": "short"}, "enrollment_token"),
    ({"issued_at": -5}, "issued_at"),
])
def test_the_authority_tool_refuses_to_sign_bad_fields(changes, field):
    with pytest.raises(ProvisioningError, match=field):
        make_code(SIGNING, code(**changes))


def test_loopback_upstream_is_allowed_for_development():
    assert verify(make_code(SIGNING, code(upstream_url="http://127.0.0.1:8443"))).accepted


def test_signed_but_malformed_body_is_refused():
    """Even a correctly signed body must be exactly the v1 fields (a future format is not guessed at)."""
    from nacl.signing import SigningKey

    def signed(body: bytes) -> str:
        message = b"KIOSK-PROV1:" + base64.urlsafe_b64encode(body).rstrip(b"=")
        return (message + b"." + base64.urlsafe_b64encode(SigningKey(SIGNING).sign(message).signature).rstrip(b"=")).decode()

    assert verify(signed(b"\xff\xfe")).facts == {"layer": "body"}
    assert verify(signed(b"[1,2]")).facts == {"layer": "body", "field": "fields"}
    assert verify(signed(json.dumps({"v": 2}).encode())).reason == "malformed"
    assert verify("KIOSK-PROV1:abc").facts == {"layer": "signature", "authority_key_configured": True}
    assert verify("KIOSK-PROV1:a!b.c").reason == "malformed"


@pytest.mark.system
def test_command_line_tools_make_keys_and_codes_the_kiosk_accepts(tmp_path):
    keys = tmp_path / "authority"
    made = run_kiosk("authority-keys", str(keys))
    assert made.returncode == 0, made.stderr
    assert oct((keys / "provisioning.key").stat().st_mode & 0o777) == "0o600"
    assert oct((keys / "sealing.key").stat().st_mode & 0o777) == "0o600"
    assert 'authority_public_key = "' in made.stdout and 'authority_key = "' in made.stdout
    again = run_kiosk("authority-keys", str(keys))
    assert again.returncode == 2 and "never overwritten" in again.stderr

    png = tmp_path / "code.png"
    result = run_kiosk("provisioning-code", "make", "--key", str(keys / "provisioning.key"), "--venue-id", "V-7",
                       "--venue-name", "Bến xe Miền Đông", "--upstream", "https://up.example.vn",
                       "--token", "enroll-0123456789abcdef", "--png", str(png))
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert text.startswith("KIOSK-PROV1:") and png.stat().st_size > 0

    config = tmp_path / "k.toml"
    config.write_text(f'[provisioning]\nauthority_key = "{keys / "provisioning.pub"}"\n')
    inspected = run_kiosk("--config", str(config), "inspect", text)
    assert inspected.returncode == 0, inspected.stderr
    out = json.loads(inspected.stdout)
    assert out["kind"] == "provisioning" and out["verdict"] == "accepted" and out["venue_id"] == "V-7"
    assert "enroll-" not in inspected.stdout

    bad = run_kiosk("provisioning-code", "make", "--key", str(keys / "provisioning.key"), "--venue-id", "V 7",
                    "--venue-name", "x", "--upstream", "https://up", "--token", "enroll-0123456789abcdef")
    assert bad.returncode == 2 and "venue_id" in bad.stderr
    assert time.time() - json.loads(inspected.stdout)["issued_at"] < 120
