"""The screen's behaviour: outcomes to states, timing, partial redraws, touch and keys, maintenance, provisioning."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

from kiosk.core.config import ConfigError, load_config
from kiosk.credentials import Credential
from kiosk.events import Outcome
from kiosk.screen.app import SYNC_WAKE_FILE, ScreenApp
from kiosk.screen.fonts import Fonts
from kiosk.screen.maintenance import IDLE_CLOSE_S, LONG_PRESS_S, MAX_PIN_FAILURES
from kiosk.screen.samples import sample_frame, sample_snapshot
from kiosk.screen.states import view_for_outcome


class RecordingSounds:
    """Sounds that remember what was played (the real player is tested in test_screen_sounds)."""

    def __init__(self) -> None:
        self.played: list[str] = []

    def play(self, state: str) -> bool:
        self.played.append(state)
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def fonts():
    pygame.display.init()
    yield Fonts()
    pygame.display.quit()


@pytest.fixture
def kiosk(fonts, config, state_dir):
    """A ScreenApp on an 800x480 surface with a fake clock, a settable status and recorded sounds."""
    surface = pygame.Surface((800, 480))
    clock = Clock()
    status = {"snapshot": sample_snapshot(time.time_ns() // 10**6)}
    app = ScreenApp(surface, config.replace(screen={"pin": "2468"}), fonts=fonts, sounds=RecordingSounds(),
                    status=lambda: status["snapshot"], now=clock)
    app.test_clock, app.test_status = clock, status
    app.step([])
    return app


def outcome(event: str, reason: str = "ok", kind: str = "cccd", name: str = "", **facts) -> Outcome:
    credential = Credential(kind, "accepted" if event == "accepted" else "rejected", reason, subject="secret-subject",
                            display_name=name, facts=facts)
    return Outcome(event, reason, kind, "entry", time.time_ns() // 10**6, credential=credential)


def shown(app: ScreenApp) -> str:
    scene, view = app._scene(app.now(), app.status())
    return view.state if view is not None and scene != "ready" else scene


def click(app: ScreenApp, pos: tuple[int, int], hold: float = 0.1) -> list[pygame.Rect]:
    app.step([pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=pos)])
    app.test_clock.t += hold
    return app.step([pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=pos)])


def press_button(app: ScreenApp, name: str) -> None:
    click(app, app._buttons[name].center)


def key(app: ScreenApp, k: int, char: str = "") -> None:
    app.step([pygame.event.Event(pygame.KEYDOWN, key=k, unicode=char)])


# ---- outcomes to states -----------------------------------------------------------------------
@pytest.mark.parametrize("event, reason, kind, state", [
    ("accepted", "ok", "cccd", "accepted"),
    ("accepted", "ok", "personal", "accepted"),
    ("accepted", "ok", "hc1", "certificate-valid"),
    ("duplicate", "already-checked-in", "cccd", "duplicate"),
    ("rejected", "not-recognised", "unknown", "unrecognized"),
    ("rejected", "malformed", "hc1", "unrecognized"),
    ("rejected", "too-large", "unknown", "unrecognized"),
    ("rejected", "expired", "hc1", "expired"),
    ("rejected", "not-yet-valid", "hc1", "expired"),
    ("rejected", "untrusted-signer", "hc1", "untrusted"),
    ("rejected", "invalid-signature", "hc1", "untrusted"),
    ("rejected", "wrong-key-usage", "hc1", "untrusted"),
    ("rejected", "invalid-schema", "hc1", "untrusted"),
    ("rejected", "invalid-cccd", "cccd", "rejected"),
    ("rejected", "untrusted-signer", "provisioning", "untrusted"),  # a forged setup code
    ("rejected", "expired", "provisioning", "untrusted"),
    ("rejected", "revoked-by-authority", "hc1", "rejected"),  # a reason code this screen does not know yet
    ("error", "storage-unavailable", "cccd", "storage-full"),
    ("error", "not-provisioned", "cccd", "not-provisioned"),
    ("error", "no-authority-key", "cccd", "not-provisioned"),
    ("error", "database-on-fire", "cccd", "error"),
    ("teleported", "??", "cccd", "rejected"),  # an event this screen does not know yet
    ("provisioning", "ok", "provisioning", "provisioning"),
])
def test_each_outcome_gets_its_state(event, reason, kind, state):
    view = view_for_outcome(outcome(event, reason, kind), 4.0, 7.0)
    assert view.state == state
    if event not in ("accepted", "duplicate", "provisioning"):
        assert view.code == reason or event == "teleported"  # for the maintenance page
        assert all(key != "rejected.code" for key, _ in view.lines)  # never a raw code on a visitor's screen
        assert any(key.startswith("reason.") or key.endswith(".detail") for key, _ in view.lines)
    if kind == "provisioning" and event == "rejected":
        assert view.title == "provisioning.refused"  # not "certificate": it is the manager's setup code


def test_result_shows_then_returns_to_ready_and_plays_its_sound(kiosk):
    kiosk.post_outcome(outcome("accepted", name="Nguyễn V. A."))
    assert kiosk.step([]) == [kiosk.surface.get_rect()]
    assert shown(kiosk) == "accepted" and kiosk.sounds.played[-1] == "accepted"
    kiosk.test_clock.t += kiosk.config.screen.result_seconds - 0.1
    dirty = kiosk.step([])
    assert dirty == [kiosk.layout.progress] and shown(kiosk) == "accepted"  # only the countdown strip moved
    kiosk.test_clock.t += 0.2
    kiosk.step([])
    assert shown(kiosk) == "ready"
    kiosk.post_outcome(outcome("rejected", "not-recognised", "unknown"))
    kiosk.step([])
    kiosk.test_clock.t += kiosk.config.screen.result_seconds + 0.1
    kiosk.step([])
    assert shown(kiosk) == "unrecognized"  # refusals stay longer: more to read
    kiosk.test_clock.t += kiosk.config.screen.problem_seconds
    kiosk.step([])
    assert shown(kiosk) == "ready"


def test_the_masked_name_stays_in_memory_only(kiosk, caplog):
    caplog.set_level("DEBUG")
    kiosk.post_outcome(outcome("accepted", name="Nguyễn V. A."))
    kiosk.step([])
    assert kiosk.result.name == "Nguyễn V. A."
    assert "Nguyễn" not in caplog.text and "secret-subject" not in caplog.text
    kiosk.test_clock.t += 60
    kiosk.step([])
    assert kiosk.result is None


def test_only_what_changed_is_redrawn(kiosk):
    assert kiosk.step([]) == []  # nothing new: nothing drawn
    kiosk.post_frame(sample_frame())
    preview = kiosk.layout.ready(False)[0]
    assert kiosk.step([]) == [preview]
    assert kiosk.step([]) == []
    snapshot = kiosk.test_status["snapshot"]
    kiosk.test_status["snapshot"] = sample_snapshot(snapshot.taken_utc_ms, outbox={"pending": 40, "inflight": 2})
    assert kiosk.step([]) == [kiosk.layout.status]
    key(kiosk, pygame.K_l)
    assert kiosk.lang == "en" and kiosk.step([]) == []  # the language change redrew everything in its own step


def test_the_preview_shows_the_camera_mirrored_and_cheaply(kiosk):
    frame = np.zeros((480, 640), np.uint8)
    frame[:, :320] = 255  # bright on the camera's left half
    kiosk.post_frame(frame)
    kiosk.step([])
    preview = kiosk.layout.ready(False)[0]
    pixels = pygame.surfarray.array3d(kiosk.surface).transpose(1, 0, 2)
    row = pixels[preview.centery, preview.left + 5:preview.right - 5, 0]
    assert row[: len(row) // 3].mean() < 60 and row[-len(row) // 3:].mean() > 200  # mirrored, like a mirror
    kiosk.post_frame(np.zeros((10, 10), np.float32))  # not a camera frame: ignored, no crash
    kiosk.post_frame("garbage")
    assert kiosk.step([]) == []


def test_camera_loss_takes_over_and_recovery_returns(kiosk):
    now = time.time_ns() // 10**6
    lost = sample_snapshot(now)
    lost = type(lost)(**{**lost.__dict__, "statuses": {**lost.statuses, "camera": {"state": "lost", "detail": {"error": "unplugged"}}}})
    kiosk.test_status["snapshot"] = lost
    kiosk.step([])
    assert shown(kiosk) == "camera-lost" and kiosk.sounds.played[-1] == "camera-lost"
    assert any("camera" in text for _, text in kiosk.recent_errors(lost))
    kiosk.test_status["snapshot"] = sample_snapshot(now)
    kiosk.step([])
    assert shown(kiosk) == "ready" and kiosk.sounds.played[-1] == "ready"


def test_storage_failure_is_shown_then_kept_as_a_banner_until_a_save_works(kiosk):
    kiosk.post_outcome(outcome("error", "storage-unavailable"))
    kiosk.step([])
    assert shown(kiosk) == "storage-full"
    kiosk.test_clock.t += 30
    kiosk.step([])
    assert kiosk._scene(kiosk.now(), kiosk.status()) == ("ready", kiosk._banner(kiosk.status()))
    assert kiosk._banner(kiosk.status()).state == "storage-full"
    kiosk.post_outcome(outcome("accepted"))
    kiosk.step([])
    kiosk.test_clock.t += 30
    kiosk.step([])
    assert kiosk._banner(kiosk.status()) is None
    low = sample_snapshot(0, disk_free_bytes=1024)
    kiosk.test_status["snapshot"] = low
    assert kiosk._banner(low).state == "storage-full"  # nearly full disk: warned before SQLite fails


def test_clock_not_set_keeps_scanning_with_a_banner(kiosk):
    kiosk.test_status["snapshot"] = sample_snapshot(0, clock_synced=False)
    kiosk.step([])
    scene, banner = kiosk._scene(kiosk.now(), kiosk.status())
    assert scene == "ready" and banner.state == "clock-unset" and kiosk.sounds.played[-1] == "clock-unset"


def test_visitor_language_switch_lasts_a_minute(kiosk):
    assert kiosk.lang == "vi"
    press_button(kiosk, "lang")
    assert kiosk.lang == "en"
    kiosk.test_clock.t += 59
    kiosk.step([])
    assert kiosk.lang == "en"
    kiosk.test_clock.t += 2
    kiosk.step([])
    assert kiosk.lang == "vi"


# ---- maintenance ------------------------------------------------------------------------------
def open_with_long_press(app: ScreenApp) -> None:
    corner = app.layout.corner().center
    app.step([pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=corner)])
    app.test_clock.t += LONG_PRESS_S + 0.1
    app.step([])


def enter_pin(app: ScreenApp, pin: str) -> None:
    for digit in pin:
        press_button(app, digit)
    press_button(app, "ok")


def test_long_press_in_the_corner_opens_the_pin_screen_short_press_does_not(kiosk):
    click(kiosk, kiosk.layout.corner().center, hold=1.0)
    assert not kiosk.maintenance.active
    open_with_long_press(kiosk)
    assert kiosk.maintenance.active and kiosk.maintenance.stage == "pin"
    assert {str(d) for d in range(10)} <= set(kiosk._buttons)


def test_wrong_pins_are_refused_and_lock_out(kiosk):
    key(kiosk, pygame.K_F2)
    enter_pin(kiosk, "1111")
    assert kiosk.maintenance.stage == "pin" and kiosk.maintenance.message[0] == "maintenance.pin_wrong"
    for _ in range(MAX_PIN_FAILURES - 1):
        enter_pin(kiosk, "0000")
    enter_pin(kiosk, "2468")  # right PIN, but locked out now
    assert kiosk.maintenance.stage == "pin" and kiosk.maintenance.message[0] == "maintenance.pin_locked"
    kiosk.test_clock.t += 61
    enter_pin(kiosk, "2468")
    assert kiosk.maintenance.stage == "menu"


def test_without_a_configured_pin_maintenance_stays_locked(fonts, config):
    app = ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts, sounds=RecordingSounds(), now=Clock())
    app.step([])
    app.open_maintenance()
    app.step([])
    assert set(app._buttons) == {"close", "lang"}
    app.maintenance.click("ok", app.now())
    assert app.maintenance.stage == "pin" and app.maintenance.message[0] == "maintenance.no_pin"


def test_maintenance_switches_direction_and_language_and_keeps_them(kiosk, config_file, state_dir):
    key(kiosk, pygame.K_m)
    for digit in "2468":
        key(kiosk, pygame.K_0 + int(digit), digit)
    key(kiosk, pygame.K_RETURN)
    assert kiosk.maintenance.stage == "menu"
    press_button(kiosk, "direction")
    press_button(kiosk, "language")
    assert kiosk.config.device.direction == "exit" and kiosk.lang == "en"
    assert kiosk.settings.config.device.direction == "exit"  # taken up from the one settings file
    reloaded = load_config(config_file)
    assert reloaded.device.direction == "exit" and reloaded.screen.language == "en"  # survives a restart
    press_button(kiosk, "sync")
    assert (state_dir / SYNC_WAKE_FILE).exists() and kiosk.maintenance.message[0] == "maintenance.sync_requested"
    press_button(kiosk, "close")
    assert not kiosk.maintenance.active


def test_camera_test_counts_frames_and_maintenance_closes_when_forgotten(kiosk):
    kiosk.maintenance.unlock(kiosk.now())
    kiosk.step([])
    press_button(kiosk, "camera")
    for _ in range(5):
        kiosk.post_frame(sample_frame())
    kiosk.test_clock.t += 1.0
    dirty = kiosk.step([])
    assert kiosk.maintenance.stage == "camera" and dirty
    assert kiosk.frames_seen - kiosk.maintenance.camera_since[1] == 5
    kiosk.post_frame(sample_frame())
    assert kiosk.maintenance.camera_rect(kiosk.layout) in kiosk.step([])  # the live picture keeps moving
    kiosk.test_clock.t += IDLE_CLOSE_S + 1
    kiosk.step([])
    assert not kiosk.maintenance.active and shown(kiosk) == "ready"


def test_a_setting_that_cannot_be_saved_is_reported_not_raised(kiosk, state_dir):
    kiosk.maintenance.unlock(kiosk.now())
    kiosk.step([])
    (state_dir / "settings.toml").mkdir()  # the file cannot be written
    press_button(kiosk, "direction")
    assert kiosk.maintenance.message[0] == "maintenance.save_failed"
    assert kiosk.config.device.direction == "entry"


def test_screen_settings_are_checked_like_every_setting(tmp_path):
    path = tmp_path / "k.toml"
    for text, word in (("[screen]\npin = '12ab'\n", "screen.pin"), ("[screen]\nlanguage = 'fr'\n", "screen.language"),
                       ("[screen]\nresult_seconds = 0\n", "screen.result_seconds")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=word):
            load_config(path)


# ---- provisioning -----------------------------------------------------------------------------
def provisioning_outcome() -> Outcome:
    return outcome("provisioning", "ok", "provisioning", venue_id="V-77", venue_name="Bến xe Miền Đông",
                   direction="exit", upstream="https://up.example")


def test_provisioning_asks_first_then_calls_the_hook(fonts, config):
    applied = []
    app = ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts, sounds=RecordingSounds(), now=Clock(),
                    on_provisioning=lambda credential: applied.append(credential.facts["venue_id"]))
    app.test_clock = app.now
    app.post_outcome(provisioning_outcome())
    app.step([])
    assert shown(app) == "provisioning" and {"confirm", "cancel"} <= set(app._buttons)
    app.post_outcome(outcome("accepted"))  # a visitor scanning meanwhile does not hide the question
    app.step([])
    assert shown(app) == "provisioning" and not applied
    press_button(app, "confirm")
    assert applied == ["V-77"] and app.result.title == "provisioning.applied"


def test_provisioning_can_be_cancelled_fails_visibly_and_times_out(fonts, config):
    clock = Clock()

    def refuse(credential: Credential) -> str:
        raise RuntimeError("enrollment refused by upstream")

    app = ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts, sounds=RecordingSounds(), now=clock,
                    on_provisioning=refuse)
    app.test_clock = clock
    app.post_outcome(provisioning_outcome())
    app.step([])
    key(app, pygame.K_ESCAPE)
    assert app.provisioning is None and app.result.title == "provisioning.cancelled"
    app.post_outcome(provisioning_outcome())
    app.step([])
    key(app, pygame.K_RETURN)
    assert app.result.state == "error" and "enrollment refused" in app.result.code
    clock.t += 60
    app.post_outcome(provisioning_outcome())
    app.step([])
    clock.t += 121
    app.step([])
    assert app.provisioning is None and app.result.title == "provisioning.cancelled"


# ---- never in the way -------------------------------------------------------------------------
@pytest.mark.system
def test_scanner_and_screen_never_wait_on_each_other(fonts, config):
    """A stalled screen does not stop scanning, and a stalled pipeline does not stop drawing."""
    from kiosk.pipeline import Pipeline
    from kiosk.service import run_scanner

    pipeline = Pipeline(config)
    app = ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts)
    pipeline.sinks.append(app.post_outcome)
    release = threading.Event()
    stuck = {"count": 0}

    def slow_sink(outcome: Outcome) -> None:  # the pipeline stalls on its second outcome
        stuck["count"] += 1
        if stuck["count"] == 2:
            release.wait(20)

    pipeline.sinks.append(slow_sink)
    stop = threading.Event()
    stats = {}
    scanner = threading.Thread(target=lambda: stats.update(
        run=run_scanner(pipeline, stop, seconds=30, on_frame=app.post_frame)))
    scanner.start()
    try:
        deadline = time.monotonic() + 20
        while stuck["count"] < 2 and time.monotonic() < deadline:  # the screen is not stepping at all here
            time.sleep(0.05)
        assert stuck["count"] == 2, "the scanner made progress while nothing was drawn"
        frames_when_stuck = app.frames_seen
        drawn = 0
        for _ in range(20):  # the pipeline is stuck now; the screen still draws what it has
            drawn += len(app.step([]))
            time.sleep(0.01)
        assert drawn >= 1 and app.frames_seen == frames_when_stuck and shown(app) in ("accepted", "duplicate")
    finally:
        release.set()
        stop.set()
        scanner.join(20)
        pipeline.close()
    assert stats["run"].frames > 0


def test_a_real_signed_setup_code_through_the_pipeline_asks_for_confirmation(fonts, config):
    """The credentials issue's provisioning format, the pipeline and the screen, end to end."""
    import base64

    from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
    from kiosk.pipeline import Pipeline
    from kiosk.screen import render

    signing, verify = new_signing_keypair()
    config = config.replace(provisioning={"authority_key": base64.b64encode(verify).decode()})
    pipeline = Pipeline(config)
    applied = []
    app = ScreenApp(pygame.Surface((800, 480)), config, fonts=fonts, sounds=RecordingSounds(), now=Clock(),
                    on_provisioning=lambda credential: applied.append(credential.content.venue_id))
    app.test_clock = app.now
    pipeline.sinks.append(app.post_outcome)
    try:
        code = ProvisioningCode("CHO-BEN-THANH", "Chợ Bến Thành – cổng 2", "exit", "https://upstream.example.vn/api",
                                "tok_0123456789abcdefXYZ", int(time.time()) - 60)
        pipeline.handle_payload(make_code(signing, code).encode())
        app.step([])
        assert shown(app) == "provisioning"
        facts = render.provisioning_facts(app.provisioning, "en")
        assert facts == ["Venue: Chợ Bến Thành – cổng 2", "Venue ID: CHO-BEN-THANH", "Direction: Exit",
                         "Server: https://upstream.example.vn/api"]
        assert not any("tok_" in fact for fact in facts)  # the enrollment token is never shown
        press_button(app, "confirm")
        assert applied == ["CHO-BEN-THANH"]
        other, _ = new_signing_keypair()
        pipeline.handle_payload(make_code(other, code).encode())  # signed by someone else
        app.step([])
        assert shown(app) == "untrusted" and app.result.title == "provisioning.refused"
    finally:
        pipeline.close()
