"""Privacy at rest: a stolen state directory reveals nobody without the health authority's private key."""

from __future__ import annotations

import base64
import sqlite3
import unicodedata
from pathlib import Path

import pytest
from nacl.exceptions import CryptoError

from conftest import run_kiosk
from credential_factory import CCCD, Issuer
from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
from kiosk.pipeline import Pipeline
from kiosk.core.privacy import new_sealing_keypair, unseal_subject, visitor_ref

TOKEN = "DEMO-HQR-00000000ABCD"
ENROLL = "enroll-SECRET-0123456789"


@pytest.fixture
def kiosk(config, tmp_path):
    """A pipeline that knows every format: HC1 signer trusted, provisioning key configured."""
    issuer = Issuer.new()
    trust = tmp_path / "trust.pem"
    trust.write_bytes(issuer.pem())
    signing, verify = new_signing_keypair()
    cfg = config.replace(formats={"hc1_trust": str(trust)},
                         provisioning={"authority_key": base64.b64encode(verify).decode()})
    pipeline = Pipeline(cfg)
    yield pipeline, issuer, signing
    pipeline.close()


def state_bytes(state_dir: Path) -> bytes:
    """Everything a thief gets: every file in the state directory, database, WAL and keys included."""
    return b"".join(p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file())


def clear_forms(*texts: str) -> list[bytes]:
    forms = []
    for text in texts:
        for variant in {text, unicodedata.normalize("NFD", text), text.upper(), text.lower()}:
            forms += [variant.encode("utf-8"), variant.encode("utf-16-le")]
    return forms


def test_stolen_state_directory_yields_no_identity(kiosk, state_dir, authority_keys):
    pipeline, issuer, signing = kiosk
    hc1 = issuer.hc1()
    provisioning = make_code(signing, ProvisioningCode("V-2", "Chợ Lớn", "entry", "https://up.example.vn", ENROLL,
                                                       int(pipeline.clock.now().utc_ms / 1000)))
    outcomes = [pipeline.handle_payload(p.encode() if isinstance(p, str) else p) for p in (CCCD, TOKEN, hc1, provisioning)]
    assert [o.event for o in outcomes] == ["accepted", "accepted", "accepted", "provisioning"]
    assert outcomes[0].credential.display_name == "Nguyễn V. A."  # in memory, for the screen
    pipeline.close()

    stolen = state_bytes(state_dir)
    secrets_ = clear_forms("001090123456", "NGUYỄN VĂN AN", "Nguyễn", "Văn An", "VAN<AN", "NGUYEN<<", "01011990",
                           "1990-01-01", TOKEN, ENROLL, "Phường Bến Nghé")
    assert not [s for s in secrets_ if s in stolen]

    db = sqlite3.connect(state_dir / "kiosk.db")
    sealed = [bytes(r[0]) for r in db.execute("SELECT sealed_subject FROM checkins ORDER BY utc_ms")]
    assert len(sealed) == 3  # the provisioning code made no check-in
    assert [unseal_subject(s, authority_keys[0]) for s in sealed] == \
        ["001090123456", TOKEN, "NGUYEN<<VAN<AN|1990-01-01"]
    wrong_private, _ = new_sealing_keypair()
    for s in sealed:
        with pytest.raises(CryptoError):
            unseal_subject(s, wrong_private)
    secret = (state_dir / "device-secret.key").read_bytes()
    refs = [visitor_ref(secret, kind, subject).encode() for kind, subject in
            (("cccd", "001090123456"), ("personal", TOKEN), ("hc1", "NGUYEN<<VAN<AN|1990-01-01"))]
    assert all(ref in stolen for ref in refs)  # until uploaded and past the repeat window: see below
    db.close()


def test_uploaded_rows_lose_their_hash_then_go_after_retention(kiosk, state_dir):
    pipeline, issuer, _ = kiosk
    for payload in (CCCD.encode(), TOKEN.encode(), issuer.hc1(), b"DEMO-HQR-0000000000FF"):
        assert pipeline.handle_payload(payload).event == "accepted"
    db = pipeline.store.db
    db.execute("UPDATE outbox SET state = 'acked' WHERE checkin_id IN (SELECT id FROM checkins WHERE visitor_ref != ?)",
               [visitor_ref(pipeline.identity()[0], "personal", "DEMO-HQR-0000000000FF")])  # one row still unsent
    assert pipeline.maintain() == {"deleted": 0, "blanked": 0}  # inside the repeat window: still needed
    pipeline.config = pipeline.config.replace(scan={"duplicate_window_s": 0.0})
    assert pipeline.maintain() == {"deleted": 0, "blanked": 3}
    pipeline.close()
    stolen = state_bytes(state_dir)
    for kind, subject in (("cccd", "001090123456"), ("personal", TOKEN), ("hc1", "NGUYEN<<VAN<AN|1990-01-01")):
        assert visitor_ref(pipeline.identity()[0], kind, subject).encode() not in stolen
    assert visitor_ref(pipeline.identity()[0], "personal", "DEMO-HQR-0000000000FF").encode() in stolen  # unsent: kept

    db = pipeline.store.db
    db.execute("UPDATE checkins SET utc_ms = utc_ms - 22 * 86400000")  # three weeks pass
    assert pipeline.maintain() == {"deleted": 3, "blanked": 0}
    assert pipeline.store.count_checkins() == 1 and pipeline.store.outbox_counts()["pending"] == 1
    pipeline.close()


def test_without_authority_key_check_ins_are_refused_but_provisioning_works(config, tmp_path):
    signing, verify = new_signing_keypair()
    cfg = config.replace(privacy={"authority_public_key": ""},
                         provisioning={"authority_key": base64.b64encode(verify).decode()})
    pipeline = Pipeline(cfg)
    refused = pipeline.handle_payload(CCCD.encode())
    assert (refused.event, refused.reason) == ("error", "no-authority-key")
    code = make_code(signing, ProvisioningCode("V-2", "Chợ Lớn", "entry", "https://up.example.vn", ENROLL,
                                               int(pipeline.clock.now().utc_ms / 1000)))
    assert pipeline.handle_payload(code.encode()).event == "provisioning"
    assert pipeline.store.count_checkins() == 0
    pipeline.close()


@pytest.mark.system
def test_checkin_command_without_or_with_a_bad_authority_key(tmp_path, state_dir):
    path = tmp_path / "k.toml"
    path.write_text(f"[device]\nvenue_id = 'V1'\nstate_dir = '{state_dir}'\n")
    result = run_kiosk("--config", str(path), "checkin", "--payload", CCCD)
    assert result.returncode == 3 and "no-authority-key" in result.stderr
    assert "authority_public_key is not set" in result.stderr
    path.write_text(f"[device]\nvenue_id = 'V1'\nstate_dir = '{state_dir}'\n[privacy]\n"
                    f"authority_public_key = '{tmp_path / 'missing.pub'}'\n")
    result = run_kiosk("--config", str(path), "checkin", "--payload", CCCD)
    assert result.returncode == 2 and "privacy.authority_public_key" in result.stderr and "Traceback" not in result.stderr
    path.write_text("[privacy]\nauthority_public_key = 'c2hvcnQ='\n")
    result = run_kiosk("--config", str(path), "checkin", "--payload", CCCD)
    assert result.returncode == 2 and "32-byte key" in result.stderr
