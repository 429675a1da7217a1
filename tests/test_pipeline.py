"""The spine's path: payload → credential → duplicate check → durable check-in → outcome event."""

import numpy as np
import pytest

from kiosk.core.clock import Instant
from kiosk.pipeline import Pipeline
from scanner.camera.synthetic import demo_token
from scanner.render import render_code, scene


class FixedClock:
    """A clock a test moves by hand: same boot, monotonic and wall time advance together."""

    def __init__(self, synced: bool = True):
        self.utc_ms, self.mono_ns, self.synced = 1_700_000_000_000, 5_000_000_000, synced

    def advance(self, seconds: float) -> None:
        self.utc_ms += int(seconds * 1000)
        self.mono_ns += int(seconds * 1e9)

    def now(self) -> Instant:
        return Instant(self.utc_ms, self.mono_ns, "boot-a", self.synced)


@pytest.fixture
def pipeline(config):
    events = []
    clock = FixedClock()
    p = Pipeline(config, sinks=[events.append], clock=clock)
    p.events, p.test_clock = events, clock
    yield p
    p.close()


def test_accepted_checkin_is_committed_with_every_field(pipeline, config):
    outcome = pipeline.handle_payload(demo_token(1))
    assert outcome.event == "accepted" and outcome.kind == "personal"
    row = pipeline.store.checkin(outcome.checkin_id)
    assert row["venue_id"] == "VENUE-1" and row["device_id"] == "test-device"
    assert row["direction"] == "entry" and row["clock_synced"] == 1
    assert (row["utc_ms"], row["monotonic_ns"], row["boot_id"]) == (1_700_000_000_000, 5_000_000_000, "boot-a")
    assert len(row["id"]) == 36 and row["visitor_ref"] != demo_token(1).decode()
    assert demo_token(1) not in (config.state_dir / "kiosk.db").read_bytes()
    assert pipeline.store.outbox_counts()["pending"] == 1
    assert pipeline.events == [outcome]


def test_same_visitor_within_window_is_already_checked_in_and_adds_no_row(pipeline):
    first = pipeline.handle_payload(demo_token(7))
    pipeline.test_clock.advance(299)
    again = pipeline.handle_payload(demo_token(7))
    assert (first.event, again.event, again.reason) == ("accepted", "duplicate", "already-checked-in")
    assert again.checkin_id is None
    assert pipeline.store.count_checkins() == 1
    pipeline.test_clock.advance(2)  # past the 300 s window
    assert pipeline.handle_payload(demo_token(7)).event == "accepted"
    assert pipeline.store.count_checkins() == 2


def test_window_uses_wall_clock_across_reboots(pipeline):
    pipeline.handle_payload(demo_token(8))
    pipeline.test_clock.mono_ns = 1  # rebooted: monotonic time restarts, boot id changes
    pipeline.test_clock.now = lambda: Instant(pipeline.test_clock.utc_ms + 60_000, 1, "boot-b", True)
    assert pipeline.handle_payload(demo_token(8)).event == "duplicate"


def test_exit_device_records_check_out_not_duplicate(config, tmp_path):
    entry = Pipeline(config, clock=FixedClock())
    exit_ = Pipeline(config.replace(device={"direction": "exit"}), clock=FixedClock())
    assert entry.handle_payload(demo_token(3)).event == "accepted"
    out = exit_.handle_payload(demo_token(3))
    assert out.event == "accepted" and out.direction == "exit"
    assert exit_.store.checkin(out.checkin_id)["direction"] == "exit"
    entry.close(), exit_.close()


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (bytes(range(256)) * 12, "too-large"),          # 3 KB of binary
    (b"\x00\xff\xfeDEMO-HQR-000000000001", "not-recognised"),
    (b"DEMO-HQR-000000000001\n", "not-recognised"),  # patterns match the whole payload
    (b"'; DROP TABLE checkins; --", "not-recognised"),
    (b"\xc3\x28", "not-recognised"),                 # invalid UTF-8
])
def test_bad_payloads_are_rejected_with_a_reason_and_nothing_stored(pipeline, payload, reason):
    outcome = pipeline.handle_payload(payload)
    assert (outcome.event, outcome.reason) == ("rejected", reason)
    assert pipeline.store.count_checkins() == 0
    assert pipeline.events[-1].to_json()["reason"] == reason


def test_unprovisioned_device_refuses_checkins(config):
    p = Pipeline(config.replace(device={"venue_id": ""}), clock=FixedClock())
    outcome = p.handle_payload(demo_token(1))
    assert (outcome.event, outcome.reason) == ("error", "not-provisioned")
    assert p.store.count_checkins() == 0
    p.close()


@pytest.mark.parametrize("frame", [
    None, "not a frame", np.zeros((10, 10), np.uint8), np.zeros((480, 640), np.float32),
    np.zeros((480, 640, 2), np.uint8), np.zeros((0, 640), np.uint8), np.zeros((5000, 5000), np.uint8),
])
def test_unreadable_frames_give_a_rejected_outcome_not_a_crash(pipeline, frame):
    outcomes = pipeline.handle_frame(frame)
    assert [(o.event, o.reason) for o in outcomes] == [("rejected", "unreadable-frame")]
    assert pipeline.handle_frame(frame) == []  # the same fault repeated is not re-announced at frame rate


def test_code_held_in_view_is_handled_once(pipeline):
    frame = scene(640, 480, render_code(demo_token(5), module_px=5))
    outcomes = [o for _ in range(10) for o in pipeline.handle_frame(frame)]
    assert [o.event for o in outcomes] == ["accepted"]
    rgb = np.dstack([frame] * 3)  # a colour frame is reduced to luminance, not refused
    assert pipeline.handle_frame(rgb) == []


def test_broken_event_consumer_does_not_stop_checkins(config):
    def explode(outcome):
        raise RuntimeError("relay unplugged")

    p = Pipeline(config, sinks=[explode], clock=FixedClock())
    assert p.handle_payload(demo_token(1)).event == "accepted"
    assert p.store.count_checkins() == 1
    p.close()
