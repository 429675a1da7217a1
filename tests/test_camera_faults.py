"""The scanner loop through camera faults: missing at start, dying at once, a decoder slower than the camera."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from kiosk.pipeline import Pipeline
from kiosk.service import run_scanner
from scanner.camera.uvc import UvcCamera
from scanner.grabber import FrameGrabber
from scanner.render import Shot, render_shot
from test_camera_uvc import write_video

TOKEN = b"DEMO-HQR-00000000BEEF"


@pytest.fixture
def recorded(monkeypatch):
    """The loop's camera status reports, in order, and a deterministic backoff (0.05 s doubling)."""
    monkeypatch.setattr("kiosk.service.backoff_delays", lambda: (lambda attempt: 0.05 * 2 ** attempt))
    reports: list[tuple[str, dict]] = []

    def attach(pipeline: Pipeline) -> Pipeline:
        original = pipeline.store.set_status
        pipeline.store.set_status = lambda c, s, d=None: (c == "camera" and reports.append((s, d)), original(c, s, d))
        return pipeline

    return reports, attach


@pytest.mark.system
def test_a_camera_missing_at_start_is_retried_with_growing_waits_until_it_appears(tmp_path, config, recorded):
    reports, attach = recorded
    folder = tmp_path / "capture"
    config = config.replace(camera={"backend": "replay", "replay_path": str(folder), "replay_loop": False, "fps": 50.0})
    pipeline = attach(Pipeline(config))

    def plug_in_later() -> None:
        time.sleep(1.0)
        staging = tmp_path / "staging"
        staging.mkdir()
        Image.fromarray(render_shot(TOKEN, Shot(640, 480, px_per_module=5, seed=2))).save(staging / "visitor.png")
        staging.rename(folder)

    helper = threading.Thread(target=plug_in_later)
    helper.start()
    stats = run_scanner(pipeline, threading.Event(), seconds=30)
    helper.join()
    status = pipeline.store.statuses()["camera"]
    pipeline.close()
    lost = [d for s, d in reports if s == "lost"]
    assert 2 <= len(lost) <= 6, "retries should back off, not spin"
    assert all("does not exist" in d["error"] for d in lost)
    assert [d["retry_in_s"] for d in lost] == sorted(d["retry_in_s"] for d in lost) and lost[-1]["retry_in_s"] > lost[0]["retry_in_s"]
    assert [s for s, _ in reports][-1] == "ok" and status["state"] == "ok" and status["detail"]["backend"] == "replay"
    assert stats.outcomes == {"accepted": 1} and stats.camera_failures == len(lost)


def test_a_camera_that_dies_right_after_opening_cannot_make_a_tight_loop(tmp_path, config, recorded):
    """Each open gives one frame then 'unplugs': the backoff keeps growing instead of starting over."""
    reports, attach = recorded
    video = write_video(tmp_path / "one.avi", [render_shot(TOKEN, Shot(640, 480, px_per_module=5, seed=1))])
    opens = []

    def flaky_webcam() -> UvcCamera:
        camera = UvcCamera(str(video))
        camera.open()
        opens.append(time.monotonic())
        return camera

    pipeline = attach(Pipeline(config))
    stats = run_scanner(pipeline, threading.Event(), seconds=2.0, camera_factory=flaky_webcam)
    pipeline.close()
    lost = [d for s, d in reports if s == "lost"]
    assert [d["failures"] for d in lost] == list(range(1, len(lost) + 1)), "the failure count must not reset"
    assert all("stopped giving frames" in d["error"] for d in lost)
    assert len(opens) <= 7  # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s of backoff fill the 2 s
    assert stats.outcomes.get("accepted") == 1 and stats.outcomes.get("duplicate", 0) == 0


@pytest.mark.system
def test_a_slow_reader_gets_the_newest_frame_and_the_rest_are_dropped_not_queued(tmp_path):
    """100 frames, each a different grey; the reader takes one every 30 ms while OpenCV reads the file at full speed."""
    levels = [10 + 2 * i for i in range(100)]
    video = write_video(tmp_path / "count.avi", [np.full((48, 64), v, np.uint8) for v in levels], fps=1000)
    reference = UvcCamera(str(video))  # what each frame decodes to (JPEG shifts the grey a little)
    reference.open()
    decoded = np.array([reference.read(timeout=1.0).mean() for _ in levels])
    reference.close()
    camera = UvcCamera(str(video))
    camera.open()
    grabber = FrameGrabber(camera, read_timeout_s=1.0)
    grabber.start()
    taken = []
    try:
        while True:
            time.sleep(0.03)
            frame = grabber.next_frame(timeout=1.0)
            if frame is None:
                continue
            taken.append(int(np.abs(decoded - frame.mean()).argmin()))
    except Exception as end:  # noqa: BLE001 - the file ends like an unplugged webcam
        assert "stopped giving frames" in str(end)
    finally:
        grabber.stop()
        camera.close()
    assert taken == sorted(set(taken)), "frames must come newest-first, never an older one after a newer"
    assert taken[-1] == 99, "the newest frame is the one handed over"
    assert grabber.captured == 100 and grabber.dropped == 100 - len(taken) and len(taken) < 50


@pytest.mark.system
def test_the_loop_drops_frames_when_on_frame_is_slow_and_shows_it_in_the_status(config):
    """A 100 fps camera, a screen callback taking 40 ms: frames are dropped; the status shows rates."""
    config = config.replace(camera={"backend": "synthetic", "fps": 100.0, "synthetic_script": "demo"})
    pipeline = Pipeline(config)
    stats = run_scanner(pipeline, threading.Event(), seconds=1.5, on_frame=lambda frame: time.sleep(0.04))
    status = pipeline.store.statuses()["camera"]
    pipeline.close()
    assert stats.dropped > stats.frames > 0
    assert status["state"] == "ok"
    assert {"backend", "fps", "dropped_fps", "frames", "decode_ms_p50"} <= set(status["detail"])
    assert status["detail"]["backend"] == "synthetic"


def test_a_driver_raising_something_unexpected_is_a_lost_camera_not_a_crash(config, recorded):
    reports, attach = recorded
    calls = []

    def broken_driver():
        calls.append(1)
        raise OSError(19, "No such device")  # what a V4L2 ioctl on an unplugged device can raise

    pipeline = attach(Pipeline(config))
    stats = run_scanner(pipeline, threading.Event(), seconds=0.5, camera_factory=broken_driver)
    pipeline.close()
    assert stats.frames == 0 and len(calls) >= 2
    assert reports[0][0] == "lost" and "No such device" in reports[0][1]["error"]


@pytest.mark.parametrize("state, problem", [("ok", False), ("stalled", True), ("lost", True)])
def test_the_screen_shows_a_stalled_or_lost_camera_as_a_problem(state_dir, state, problem):
    from kiosk.screen.statusbar import StatusPoller
    from kiosk.core.store import Store

    store = Store.open(state_dir)
    store.set_status("camera", state, {"backend": "picamera2", "error": "no frame for 2.4 s"})
    store.close()
    assert StatusPoller(state_dir, assume_synced=True).poll_once().camera_lost is problem
