"""Provisioning in one step: a signed code in front of the camera puts a new kiosk in service
(the code format itself is tested in test_provisioning.py)."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_kiosk
from kiosk.core.config import SettingsWatch, load_config, save_overrides
from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
from kiosk.events import PROVISIONING
from kiosk.pipeline import Pipeline
from kiosk.provisioning import ProvisioningFlow
from kiosk.status import gather
from kiosk.core.store import Store
from scanner.render import render_code, scene
from sync.enroll import INTENT_FILE, IntentDamaged, load_intent

AUTHORITY = new_signing_keypair()


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


@pytest.mark.system
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


def _follow(pipeline: Pipeline, watch: SettingsWatch) -> None:
    """What the scanner loop does on every turn: take up the settings saved by anyone."""
    pipeline.config = watch.poll() or pipeline.config


@pytest.fixture
def quick_retries(monkeypatch):
    import kiosk.provisioning as prov

    monkeypatch.setattr(prov, "RETRY_BASE_S", 0.05)
    monkeypatch.setattr(prov, "RETRY_CAP_S", 0.2)


@pytest.mark.system
def test_unreachable_upstream_keeps_the_intent_and_a_restart_completes_it(blank_config_file, state_dir, tmp_path,
                                                                          quick_retries):
    from upstream_helpers import free_port, start_upstream, token

    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    pipeline = _blank_pipeline(blank_config_file)
    upstream_db = str(tmp_path / "upstream.db")
    start_upstream(upstream_db).stop()  # creates the upstream's database, to issue a token from
    flow = ProvisioningFlow(pipeline, auto=True)
    pipeline.sinks.append(flow)
    pipeline.handle_payload(code_for("BUS-STATION-2", token=token(upstream_db, "BUS-STATION-2"), upstream=url).encode())
    intent = state_dir / INTENT_FILE
    assert stat.S_IMODE(intent.stat().st_mode) == 0o600  # it holds the one-time token
    assert load_intent(state_dir).venue_id == "BUS-STATION-2"
    deadline = time.monotonic() + 10
    while Store.open(state_dir).statuses().get("enrollment", {}).get("state") != "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    flow.close()
    flow.thread.join(10)
    pipeline.close()
    config = load_config(blank_config_file)
    assert config.device.venue_id == "BUS-STATION-2"
    attention = gather(config, clock_synced=True).attention
    assert any("BUS-STATION-2 is saved and not completed yet" in a for a in attention), attention

    # A restart (the upstream now answering at that address) finds the intent and completes it.
    upstream = start_upstream(upstream_db, f"127.0.0.1:{port}")
    try:
        pipeline = Pipeline(config)
        flow = ProvisioningFlow(pipeline)
        flow.thread.join(30)
        assert not intent.exists()
        assert Store.open(state_dir).statuses()["enrollment"]["state"] == "enrolled"
        assert load_config(blank_config_file).sync.upstream_url == url
        pipeline.close()
    finally:
        upstream.stop()


def test_a_kiosk_in_service_moves_only_when_the_code_is_shown_twice(config, state_dir):
    now = [1000.0]
    pipeline = Pipeline(config.replace(provisioning={"authority_key": base64.b64encode(AUTHORITY[1]).decode()}))
    watch = SettingsWatch(pipeline.config)
    flow = ProvisioningFlow(pipeline, monotonic=lambda: now[0])
    other = code_for("OTHER-VENUE")
    flow(_provisioning_outcome(pipeline, other))
    _follow(pipeline, watch)
    assert pipeline.config.device.venue_id == "VENUE-1" and flow.thread is None
    assert Store.open(state_dir).statuses()["enrollment"]["state"] == "confirm"

    now[0] += 120  # too late: the second showing only asks again
    flow(_provisioning_outcome(pipeline, other))
    _follow(pipeline, watch)
    assert pipeline.config.device.venue_id == "VENUE-1"
    now[0] += 10
    flow(_provisioning_outcome(pipeline, other))
    flow.close()
    _follow(pipeline, watch)
    assert pipeline.config.device.venue_id == "OTHER-VENUE"
    assert load_config(state_dir.parent / "kiosk.toml").device.venue_id == "OTHER-VENUE"
    pipeline.close()


def test_forged_and_expired_codes_change_nothing(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    forged = make_code(new_signing_keypair()[0], ProvisioningCode("EVIL", "Evil", "entry", "https://evil.example",
                                                                 "x" * 24, int(time.time())))
    old = make_code(AUTHORITY[0], ProvisioningCode("OLD", "Old", "entry", "https://u.example", "y" * 24,
                                                   int(time.time()) - 400 * 86400))
    flow = ProvisioningFlow(pipeline)
    pipeline.sinks.append(flow)
    for payload in (forged, old):
        outcome = pipeline.handle_payload(payload.encode())
        assert outcome.event == "rejected"
    assert flow.thread is None and pipeline.config.device.venue_id == ""
    assert not (state_dir / "settings.toml").exists() and not (state_dir / INTENT_FILE).exists()
    # The screen's confirmation hook says why, and changes nothing either.
    assert flow.confirm(pipeline.handle_payload(forged.encode()).credential) == "not a verified provisioning code"
    assert not (state_dir / "settings.toml").exists()
    pipeline.close()


def test_the_screen_hook_saves_at_once_and_enrolls_in_the_background(blank_config_file, state_dir, quick_retries):
    pipeline = _blank_pipeline(blank_config_file)
    watch = SettingsWatch(pipeline.config)
    flow = ProvisioningFlow(pipeline, auto=False)
    outcome = _provisioning_outcome(pipeline, code_for("GATE-4", "exit"))  # upstream: nobody listens
    flow(outcome)  # auto=False: the sink leaves it to the screen
    _follow(pipeline, watch)
    assert pipeline.config.device.venue_id == ""
    started = time.monotonic()
    assert flow.confirm(outcome.credential) is None
    assert time.monotonic() - started < 1.0  # no network in the caller's thread
    _follow(pipeline, watch)
    assert (pipeline.config.device.venue_id, pipeline.config.device.direction) == ("GATE-4", "exit")
    assert pipeline.handle_payload(b"DEMO-HQR-0000000000B7").event == "accepted"
    flow.close()
    pipeline.close()


@pytest.mark.parametrize("damage", [b"", b'{"upstream_url": "http://127.0.0.1:9", "tok', b"\xff\xfe", b"[]",
                                    b'{"upstream_url": "ftp://x", "token": "t", "venue_id": "V"}'])
def test_a_torn_or_empty_intent_is_reported_never_used(blank_config_file, state_dir, damage, caplog):
    pipeline = _blank_pipeline(blank_config_file)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / INTENT_FILE).write_bytes(damage)
    with pytest.raises(IntentDamaged):
        load_intent(state_dir)
    flow = ProvisioningFlow(pipeline)
    assert flow.thread is None
    assert any("saved enrollment is" in r.getMessage() for r in caplog.records)
    save_overrides(state_dir, {"device": {"venue_id": "V-1"}})
    Store.open(state_dir).close()
    attention = gather(load_config(blank_config_file), clock_synced=True).attention
    assert any("the saved enrollment is" in a and "provision this kiosk again" in a for a in attention), attention
    pipeline.close()


def test_hostile_venue_names_round_trip(blank_config_file, state_dir):
    pipeline = _blank_pipeline(blank_config_file)
    name = 'Chợ "Lớn" \\ [device] = x'
    flow = ProvisioningFlow(pipeline, auto=False)
    assert flow.confirm(_provisioning_outcome(pipeline, code_for("CHO-LON-8", name=name)).credential) is None
    flow.close()
    assert load_config(blank_config_file).device.venue_name == name
    pipeline.close()


def test_the_screen_confirmation_provisions_a_new_kiosk(blank_config_file, state_dir):
    """Pipeline, screen and provisioning together: scan, the screen asks, a person confirms (Enter)."""
    import pygame

    from kiosk.screen.app import ScreenApp

    pygame.display.init()
    pipeline = _blank_pipeline(blank_config_file)
    watch = SettingsWatch(pipeline.config)
    try:
        flow = ProvisioningFlow(pipeline, auto=False)
        app = ScreenApp(pygame.Surface((800, 480)), pipeline.config, now=lambda: 100.0, on_provisioning=flow.confirm)
        pipeline.sinks += [flow, app.post_outcome]
        pipeline.handle_payload(code_for("GATE-9", "exit", name="Bến xe Miền Tây").encode())
        app.step([])
        assert load_config(blank_config_file).device.venue_id == ""  # the screen asks first
        app.step([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, unicode="\r")])
        flow.close()
        assert app.result.title == "provisioning.applied"
        assert (app.config.device.venue_id, app.config.device.venue_name) == ("GATE-9", "Bến xe Miền Tây")
        _follow(pipeline, watch)
        assert (pipeline.config.device.venue_id, pipeline.config.device.direction) == ("GATE-9", "exit")
        assert pipeline.handle_payload(b"DEMO-HQR-0000000000C3").event == "accepted"
    finally:
        pipeline.close()
        pygame.display.quit()


@pytest.mark.system
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
        pipeline.config = load_config(config_file)  # as the scanner loop's settings watch would
        checkin = pipeline.handle_payload(b"DEMO-HQR-0000000000D4")
        assert checkin.event == "accepted"
        assert Store.open(state_dir).statuses()["enrollment"]["state"] == "enrolled"
        pipeline.close()
        sent = run_kiosk("--config", str(config_file), "sync", "--once")
        assert sent.returncode == 0, sent.stderr
        assert upstream_ids(upstream.db) == [checkin.checkin_id]
        # A token issued for another venue is refused by the upstream: reported, not retried.
        again = ProvisioningFlow(Pipeline(load_config(config_file)), auto=False)
        assert again.confirm(_provisioning_outcome(again.pipeline, code_for(
            "VENUE-9", "exit", token=token(upstream.db, "OTHER"), upstream=upstream.url)).credential) is None
        again.thread.join(30)
        assert Store.open(state_dir).statuses()["enrollment"]["state"] == "refused"
        again.pipeline.close()
    finally:
        upstream.stop()
