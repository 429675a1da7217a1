"""All four formats through the three ways in: the camera (`kiosk run` on real QR images), staff typing
(`kiosk checkin`) and `kiosk inspect`."""

from __future__ import annotations

import base64
import json
import sqlite3
import time

import pytest
from PIL import Image

from conftest import TEST_PATTERN, run_kiosk
from credential_factory import CCCD, Issuer
from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
from kiosk.events import read_events
from kiosk.core.privacy import unseal_subject
from scanner.render import render_code, scene

TOKEN = "DEMO-HQR-00000000C0DE"


@pytest.fixture
def setup(tmp_path, state_dir, authority_keys):
    issuer = Issuer.new()
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "vn.pem").write_bytes(issuer.pem())
    signing, verify = new_signing_keypair()
    provisioning = make_code(signing, ProvisioningCode("V-NEW", "Bến xe Miền Tây", "exit", "https://up.example.vn",
                                                       "enroll-0123456789abcdef", int(time.time())))
    payloads = {"cccd": CCCD, "personal": TOKEN, "hc1": issuer.hc1().decode(), "provisioning": provisioning}
    config = tmp_path / "kiosk.toml"
    config.write_text(f"""
[device]
id = "paths-device"
venue_id = "VENUE-1"
state_dir = "{state_dir}"
[camera]
backend = "replay"
replay_path = "{tmp_path / 'frames'}"
replay_loop = false
fps = 30
[clock]
assume_synced = true
[formats]
hc1_trust = "{tmp_path / 'trust'}"
[[formats.personal]]
name = "demo-health-qr"
pattern = '{TEST_PATTERN}'
[privacy]
authority_public_key = "{base64.b64encode(authority_keys[1]).decode()}"
[provisioning]
authority_key = "{base64.b64encode(verify).decode()}"
""", encoding="utf-8")
    return config, payloads, issuer


def test_kiosk_run_reads_every_format_from_camera_images(setup, tmp_path, state_dir, authority_keys):
    config, payloads, _ = setup
    frames = tmp_path / "frames"
    frames.mkdir()
    for n, (kind, payload) in enumerate(payloads.items()):
        Image.fromarray(scene(800, 600, render_code(payload.encode(), module_px=4), seed=n)).save(frames / f"{n}a-{kind}.png")
        Image.fromarray(scene(800, 600, None, seed=n)).save(frames / f"{n}b-empty.png")
    events = tmp_path / "events.jsonl"
    result = run_kiosk("--config", str(config), "run", "--headless", "--events", str(events), "--seconds", "60")
    assert result.returncode == 0, result.stderr
    seen = [(e["event"], e["kind"]) for e in read_events(events)]
    assert seen == [("accepted", "cccd"), ("accepted", "personal"), ("accepted", "hc1"), ("provisioning", "provisioning")]
    text = events.read_text(encoding="utf-8") + result.stderr
    for secret in ("001090123456", "NGUY", "Nguy", TOKEN, "enroll-0123456789abcdef"):
        assert secret not in text
    db = sqlite3.connect(state_dir / "kiosk.db")
    subjects = sorted(unseal_subject(bytes(r[0]), authority_keys[0]) for r in db.execute("SELECT sealed_subject FROM checkins"))
    assert subjects == sorted(["001090123456", TOKEN, "NGUYEN<<VAN<AN|1990-01-01"])


def test_run_loop_purges_old_uploaded_rows(setup, tmp_path, state_dir):
    config, payloads, _ = setup
    assert run_kiosk("--config", str(config), "checkin", "--payload", payloads["cccd"]).returncode == 0
    db = sqlite3.connect(state_dir / "kiosk.db")
    with db:
        db.execute("UPDATE checkins SET utc_ms = utc_ms - 30 * 86400000")
        db.execute("UPDATE outbox SET state = 'acked'")
    db.close()
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(scene(320, 240, None)).save(frames / "empty.png")
    result = run_kiosk("--config", str(config), "run", "--headless", "--seconds", "30")
    assert result.returncode == 0, result.stderr
    assert sqlite3.connect(state_dir / "kiosk.db").execute("SELECT count(*) FROM checkins").fetchone()[0] == 0
    assert "1 old uploaded check-ins deleted" in result.stderr


def test_kiosk_checkin_takes_every_format(setup, tmp_path):
    config, payloads, issuer = setup
    for kind in ("cccd", "personal", "hc1"):
        result = run_kiosk("--config", str(config), "checkin", "--payload", payloads[kind])
        assert result.returncode == 0, (kind, result.stderr)
        assert len(result.stdout.strip()) == 36  # the check-in id
    again = run_kiosk("--config", str(config), "checkin", "--payload", payloads["cccd"])
    assert again.returncode == 1 and "already-checked-in" in again.stderr
    prov = run_kiosk("--config", str(config), "checkin", "--payload", payloads["provisioning"])
    assert prov.returncode == 4 and "V-NEW" in prov.stderr and "enroll-" not in prov.stderr
    sheet = tmp_path / "sheet.txt"
    sheet.write_text("\n".join([Issuer.new().hc1().decode(), "079191000123|012345678|TRẦN THỊ NGỌC|02031991|Nữ|Hà Nội|01012022",
                                "001090123456||X|01011990|Nam|x|1504"]) + "\n", encoding="utf-8")
    lines = [json.loads(x) for x in run_kiosk("--config", str(config), "checkin", "--from-file", str(sheet)).stdout.splitlines()]
    assert [(x["event"], x["kind"], x["reason"]) for x in lines] == [
        ("rejected", "hc1", "untrusted-signer"), ("accepted", "cccd", "ok"), ("rejected", "cccd", "invalid-cccd")]


def test_kiosk_inspect_reports_every_format(setup, tmp_path):
    config, payloads, issuer = setup
    out = {}
    for kind, payload in payloads.items():
        result = run_kiosk("--config", str(config), "inspect", payload)
        assert result.returncode == 0, (kind, result.stdout, result.stderr)
        out[kind] = json.loads(result.stdout)
    assert out["cccd"] == {"kind": "cccd", "verdict": "accepted", "reason": "ok", "display_name": "Nguyễn V. A."}
    assert out["personal"]["kind"] == "personal" and out["personal"]["display_name"] == ""
    assert out["hc1"] == {"kind": "hc1", "verdict": "accepted", "reason": "ok", "display_name": "Nguyễn V. A.",
                          "signature": "valid", "signer_validity": "valid", "key_usage": "valid", "expiry": "valid",
                          "fields": "valid", "schema": "valid", "certificate_type": "v", "issuer": "VN"}
    assert out["provisioning"]["venue_id"] == "V-NEW" and out["provisioning"]["direction"] == "exit"
    assert all("001090123456" not in json.dumps(v) for v in out.values())

    # --at and --trust override config; --file reads a payload file.
    payload_file = tmp_path / "code.txt"
    payload_file.write_text(payloads["hc1"] + "\n")
    other = tmp_path / "other.der"
    other.write_bytes(Issuer.new().der())
    result = run_kiosk("--config", str(config), "inspect", "--trust", str(other), "--file", str(payload_file))
    assert result.returncode == 1 and json.loads(result.stdout)["signature"] == "untrusted"
    result = run_kiosk("--config", str(config), "inspect", "--at", "2099-01-01T00:00:00Z", "--file", str(payload_file))
    assert json.loads(result.stdout)["expiry"] == "expired"
    result = run_kiosk("--config", str(config), "inspect", "--at", "2000-01-01", payloads["hc1"])
    assert json.loads(result.stdout)["expiry"] == "not-yet-valid"
    result = run_kiosk("--config", str(config), "inspect", "HC1:%%%%")
    assert json.loads(result.stdout) == {"kind": "hc1", "verdict": "rejected", "reason": "malformed", "display_name": "",
                                         "layer": "base45", "signature": None, "signer_validity": None,
                                         "key_usage": None, "expiry": None, "fields": None, "schema": None}
    for args, words in ((["--at", "yesterday", "x"], "--at"), (["--trust", str(tmp_path / "none"), "x"], "no such file"),
                        (["--file", str(tmp_path / "none")], "cannot read")):
        bad = run_kiosk("--config", str(config), "inspect", *args)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr
    assert run_kiosk("--config", str(config), "inspect").returncode == 2  # a payload or --file is required


def test_bad_trust_setting_stops_the_service_with_a_clear_message(setup, tmp_path):
    config, payloads, _ = setup
    text = config.read_text().replace(str(tmp_path / "trust"), str(tmp_path / "missing-trust"))
    config.write_text(text)
    result = run_kiosk("--config", str(config), "checkin", "--payload", payloads["cccd"])
    assert result.returncode == 2 and "formats.hc1_trust" in result.stderr and "Traceback" not in result.stderr
