"""Provisioning in one step: a signed code in front of the camera puts a new kiosk in service
(the code format itself is tested in test_provisioning.py)."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_kiosk
from kiosk.config import load_config
from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
from kiosk.events import PROVISIONING
from kiosk.pipeline import Pipeline
from kiosk.provisioning import PENDING_FILE, ProvisioningFlow, apply_provisioning, load_pending
from kiosk.status import gather
from kiosk.store import Store
from scanner.render import render_code, scene

AUTHORITY = new_signing_keypair()


class Unreachable(Exception):
    reason = "unreachable"


class Refused(Exception):
    reason = "token-used"


def code_for(venue: str, direction: str = "entry", name: str = "Chợ Lớn", token: str | None = None,
             upstream: str = "http://127.0.0.1:9") -> str:
    return make_code(AUTHORITY[0], ProvisioningCode(venue, name, direction, upstream,
                                                   token or secrets.token_urlsafe(24), int(time.time())))


@pytest.fixture
def blank_config_file(tmp_path, state_dir, authority_keys):
    """A freshly installed kiosk: no venue yet, the authority's provisioning key configured."""
    path = tmp_path / "kiosk.toml"
    path.write_text(f"""
[device]
id = "new-kiosk"
state_dir = "{state_dir}"
[camera]
backend = "replay"
replay_path = "{tmp_path / 'frames'}"
replay_loop = false
fps = 30
[clock]
assume_synced = true
[privacy]
authority_public_key = "{base64.b64encode(authority_keys[1]).decode()}"
[provisioning]
authority_key = "{base64.b64encode(AUTHORITY[1]).decode()}"
[[formats.personal]]
name = "demo-health-qr"
pattern = 'DEMO-HQR-[0-9A-F]{{12}}'
""", encoding="utf-8")
    return path


def film(folder: Path, payloads: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    n = 0
    for payload in payloads:
        code = render_code(payload.encode(), module_px=3)
        for frame in [scene(640, 480, code, seed=n)] * 3 + [scene(640, 480, None, seed=n)] * 8:
            Image.fromarray(frame).save(folder / f"{n:04d}.png")
            n += 1


def test_a_new_kiosk_is_provisioned_by_scanning_a_signed_code(blank_config_file, tmp_path, state_dir):
    visitor = "DEMO-HQR-0000000000A1"
    film(tmp_path / "frames", [visitor, code_for("CHO-LON-7", "exit"), "DEMO-HQR-0000000000A2"])
    events = tmp_path / "events.jsonl"
    run = run_kiosk("--config", str(blank_config_file), "run", "--headless", "--events", str(events))
    assert run.returncode == 0, run.stderr
    outcomes = [json.loads(line) for line in events.read_text().splitlines()]
    assert [o["event"] for o in outcomes] == ["error", PROVISIONING, "accepted"], outcomes
    assert outcomes[0]["reason"] == "not-provisioned"  # before: the provisioning screen, no check-in
    assert "provisioned: venue CHO-LON-7 (exit)" in run.stderr

    # The settings live in the state directory (the root file system may be read-only) ...
    config = load_config(blank_config_file)
    assert (config.device.venue_id, config.device.venue_name, config.device.direction) == ("CHO-LON-7", "Chợ Lớn", "exit")
    # ... and the visitor right after was checked in at the new venue, in the same run.
    store = Store.open(state_dir)
    rows = list(store.db["checkins"].rows)
    assert [(r["venue_id"], r["direction"]) for r in rows] == [("CHO-LON-7", "exit")]
    store.close()
    status = run_kiosk("--config", str(blank_config_file), "status", "--json")
    report = json.loads(status.stdout)
    assert report["device"]["venue_id"] == "CHO-LON-7"
    assert not any("not provisioned" in a for a in report["attention"])


def _provisioning_outcome(pipeline: Pipeline, payload: str):
    outcome = pipeline.handle_payload(payload.encode(), source="camera")
    assert outcome.event == PROVISIONING, outcome
    return outcome


def _blank_pipeline(blank_config_file) -> Pipeline:
    return Pipeline(load_config(blank_config_file))


def test_unreachable_upstream_postpones_enrollment_and_retries(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    calls = []
    reachable = threading.Event()

    def enroll(config, url, token, venue, direction=None):
        calls.append((url, venue, direction, config.device.venue_id))
        if not reachable.is_set():
            raise Unreachable("connection refused")

    outcome = _provisioning_outcome(pipeline, code_for("BUS-STATION-2", token="T" * 24))
    applied = apply_provisioning(pipeline.config, outcome.credential, enroll)
    assert not applied.enrolled and applied.config.device.venue_id == "BUS-STATION-2"
    pending = state_dir / PENDING_FILE
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600  # it holds the one-time token
    assert load_pending(state_dir)["token"] == "T" * 24
    assert any(a.startswith("enrollment with http://127.0.0.1:9 postponed")
               for a in gather(applied.config, clock_synced=True).attention)

    # A restart finds the postponed enrollment and keeps trying until the upstream answers.
    pipeline.config = applied.config
    reachable.set()
    import kiosk.provisioning as prov
    prov_cap, prov.RETRY_CAP_S = prov.RETRY_CAP_S, 0.05
    try:
        flow = ProvisioningFlow(pipeline, enroll=enroll)
        flow.thread.join(30)
    finally:
        prov.RETRY_CAP_S = prov_cap
    assert not pending.exists()
    assert calls[-1] == ("http://127.0.0.1:9", "BUS-STATION-2", "entry", "BUS-STATION-2")
    assert Store.open(state_dir).statuses()["provisioning"]["state"] == "enrolled"
    pipeline.close()


def test_a_refused_token_is_reported_not_retried(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)

    def enroll(*args, **kw):
        raise Refused("token-used: this token was used already")

    outcome = _provisioning_outcome(pipeline, code_for("MARKET-3"))
    applied = apply_provisioning(pipeline.config, outcome.credential, enroll)
    assert not applied.enrolled and not (state_dir / PENDING_FILE).exists()
    attention = gather(applied.config, clock_synced=True).attention
    assert any("enrollment refused by http://127.0.0.1:9: token-used" in a for a in attention)
    pipeline.close()


def test_a_kiosk_in_service_moves_only_when_the_code_is_shown_twice(config, state_dir):
    now = [1000.0]
    enrolled = []
    pipeline = Pipeline(config.replace(provisioning={"authority_key": base64.b64encode(AUTHORITY[1]).decode()}))
    flow = ProvisioningFlow(pipeline, enroll=lambda *a, **k: enrolled.append(a[3]), monotonic=lambda: now[0])
    other = code_for("OTHER-VENUE")
    flow(_provisioning_outcome(pipeline, other))
    assert pipeline.config.device.venue_id == "VENUE-1" and flow.thread is None
    assert Store.open(state_dir).statuses()["provisioning"]["state"] == "confirm"

    now[0] += 120  # too late: the second showing only asks again
    flow(_provisioning_outcome(pipeline, other))
    assert pipeline.config.device.venue_id == "VENUE-1"
    now[0] += 10
    flow(_provisioning_outcome(pipeline, other))
    flow.thread.join(10)
    assert pipeline.config.device.venue_id == "OTHER-VENUE" and enrolled == ["OTHER-VENUE"]
    assert load_config(state_dir.parent / "kiosk.toml").device.venue_id == "OTHER-VENUE"
    pipeline.close()


def test_forged_and_expired_codes_change_nothing(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    forged = make_code(new_signing_keypair()[0], ProvisioningCode("EVIL", "Evil", "entry", "https://evil.example",
                                                                 "x" * 24, int(time.time())))
    old = make_code(AUTHORITY[0], ProvisioningCode("OLD", "Old", "entry", "https://u.example", "y" * 24,
                                                   int(time.time()) - 400 * 86400))
    flow = ProvisioningFlow(pipeline, enroll=lambda *a, **k: None)
    pipeline.sinks.append(flow)
    for payload in (forged, old):
        outcome = pipeline.handle_payload(payload.encode())
        assert outcome.event == "rejected"
    assert flow.thread is None and pipeline.config.device.venue_id == ""
    assert not (state_dir / "settings.toml").exists()
    with pytest.raises(ValueError):
        apply_provisioning(pipeline.config, pipeline.handle_payload(forged.encode()).credential)
    # The screen's confirmation hook says why, and changes nothing either.
    assert flow.confirm(pipeline.handle_payload(forged.encode()).credential) == "not a verified provisioning code"
    assert pipeline.config.device.venue_id == ""
    pipeline.close()


def test_the_screen_hook_applies_at_once_and_enrolls_in_the_background(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    release, enrolled = threading.Event(), []

    def slow_enroll(config, url, token, venue, direction=None):
        release.wait(10)  # a slow upstream must not hold the screen or the scanner
        enrolled.append(venue)

    flow = ProvisioningFlow(pipeline, enroll=slow_enroll, auto=False)
    outcome = _provisioning_outcome(pipeline, code_for("GATE-4", "exit"))
    flow(outcome)  # auto=False: the sink leaves it to the screen
    assert pipeline.config.device.venue_id == ""
    assert flow.confirm(outcome.credential) is None
    assert (pipeline.config.device.venue_id, pipeline.config.device.direction) == ("GATE-4", "exit")
    assert pipeline.handle_payload(b"DEMO-HQR-0000000000B7").event == "accepted"
    assert enrolled == []
    release.set()
    flow.thread.join(10)
    assert enrolled == ["GATE-4"]
    pipeline.close()


def test_hostile_venue_names_round_trip_and_a_torn_pending_file_is_ignored(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    name = 'Chợ "Lớn" \\ [device] = x'
    outcome = _provisioning_outcome(pipeline, code_for("CHO-LON-8", name=name))
    applied = apply_provisioning(pipeline.config, outcome.credential, lambda *a, **k: None)
    assert applied.enrolled
    assert load_config(blank_config_file).device.venue_name == name
    (state_dir / PENDING_FILE).write_text('{"upstream_url": "http://127.0.0.1:9", "tok')  # power cut mid-write
    assert load_pending(state_dir) is None
    flow = ProvisioningFlow(pipeline, enroll=lambda *a, **k: None)
    assert flow.thread is None
    pipeline.close()


def test_the_screen_confirmation_provisions_a_new_kiosk(blank_config_file, state_dir):
    """Pipeline, screen and provisioning together: scan, the screen asks, a person confirms (Enter)."""
    import pygame

    from kiosk.screen.app import ScreenApp

    pygame.display.init()
    pipeline = _blank_pipeline(blank_config_file)
    try:
        enrolled = []
        flow = ProvisioningFlow(pipeline, enroll=lambda config, url, token, venue, direction=None: enrolled.append(venue),
                                auto=False)
        app = ScreenApp(pygame.Surface((800, 480)), pipeline.config, now=lambda: 100.0, on_provisioning=flow.confirm)
        pipeline.sinks += [flow, app.post_outcome]
        pipeline.handle_payload(code_for("GATE-9", "exit", name="Bến xe Miền Tây").encode())
        app.step([])
        assert pipeline.config.device.venue_id == ""  # the screen asks first
        app.step([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, unicode="\r")])
        assert app.result.title == "provisioning.applied"
        assert (pipeline.config.device.venue_id, pipeline.config.device.direction) == ("GATE-9", "exit")
        flow.thread.join(10)
        assert enrolled == ["GATE-9"]
        assert load_config(blank_config_file).device.venue_name == "Bến xe Miền Tây"
        assert pipeline.handle_payload(b"DEMO-HQR-0000000000C3").event == "accepted"
    finally:
        pipeline.close()
        pygame.display.quit()


def test_scan_enroll_upload_against_a_real_upstream(tmp_path, state_dir, authority_keys):
    """The whole step a venue manager takes: the code (with a real one-time token) is scanned, the
    kiosk enrolls with a real upstream, and a visitor scanned next is uploaded by `kiosk sync`."""
    from upstream_helpers import start_upstream, token, upstream_ids

    upstream = start_upstream(str(tmp_path / "upstream.db"))
    try:
        config_file = tmp_path / "kiosk.toml"
        config_file.write_text(f"""
[device]
id = "gate-kiosk"
state_dir = "{state_dir}"
[clock]
assume_synced = true
[privacy]
authority_public_key = "{base64.b64encode(authority_keys[1]).decode()}"
[provisioning]
authority_key = "{base64.b64encode(AUTHORITY[1]).decode()}"
[sync]
wake_check_s = 0.05
[[formats.personal]]
name = "demo-health-qr"
pattern = 'DEMO-HQR-[0-9A-F]{{12}}'
""", encoding="utf-8")
        pipeline = Pipeline(load_config(config_file))
        flow = ProvisioningFlow(pipeline, auto=True)  # the real enrollment (sync.enroll.provision)
        pipeline.sinks.append(flow)
        pipeline.handle_payload(code_for("VENUE-9", token=token(upstream.db, "VENUE-9"), upstream=upstream.url).encode())
        flow.thread.join(30)
        checkin = pipeline.handle_payload(b"DEMO-HQR-0000000000D4")
        assert checkin.event == "accepted"
        assert Store.open(state_dir).statuses()["provisioning"]["state"] == "enrolled"
        pipeline.close()
        sent = run_kiosk("--config", str(config_file), "sync", "--once")
        assert sent.returncode == 0, sent.stderr
        assert upstream_ids(upstream.db) == [checkin.checkin_id]
        # A token issued for another venue is refused by the upstream: reported, not retried.
        again = ProvisioningFlow(Pipeline(load_config(config_file)), auto=False)
        assert again.confirm(_provisioning_outcome(again.pipeline, code_for(
            "VENUE-9", "exit", token=token(upstream.db, "OTHER"), upstream=upstream.url)).credential) is None
        again.thread.join(30)
        assert Store.open(state_dir).statuses()["provisioning"]["state"] == "refused"
        again.pipeline.close()
    finally:
        upstream.stop()
