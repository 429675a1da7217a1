"""The picamera2 adapter against a stand-in that behaves as picamera2 documents (tests/picamera2_standin.py)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

import picamera2_standin
from conftest import wait_until
from scanner.camera import CameraError, CameraMissing, open_camera
from scanner.camera.picam import PiCamera
from scanner.decode import decode_frame
from scanner.render import Shot, render_shot

CODE = "Vũ Ả|Nữ".encode()


@pytest.fixture
def rig(monkeypatch):
    """picamera2 'installed', with one Camera Module 3 attached, filming a visitor's phone."""
    monkeypatch.setitem(sys.modules, "picamera2", picamera2_standin)
    rig = picamera2_standin.reset()
    rig.scene = render_shot(CODE, Shot(640, 480, medium="phone", px_per_module=6, tilt=10, seed=3))
    return rig


def test_reads_the_y_plane_of_the_lores_stream_and_it_decodes(rig):
    with PiCamera(640, 480, fps=30) as camera:
        frame = camera.read(timeout=1.0)
        assert frame.shape == (480, 640) and frame.dtype.name == "uint8"
        assert decode_frame(frame) == [CODE]
        config = rig.opened[0].camera_config
        assert config["lores"]["format"] == "YUV420" and config["lores"]["size"] == (640, 480)
        assert rig.opened[0].controls["FrameDurationLimits"] == (33333, 33333)


def test_row_padding_of_a_yuv420_stream_is_cut_off(rig):
    """600 px wide rows are padded to a 640-byte stride: the decoder must not see the padding."""
    with PiCamera(600, 400) as camera:
        assert rig.opened[0].camera_config["lores"]["stride"] == 640
        frame = camera.read(timeout=1.0)
        assert frame.shape == (400, 600)
        assert not (frame == 255).all(axis=0).any(), "a column of padding bytes leaked into the Y plane"


def test_continuous_autofocus_only_where_the_camera_has_it(rig):
    with PiCamera():
        assert rig.opened[-1].controls["AfMode"] == 2
    rig.autofocus = False  # e.g. Camera Module 2: setting AfMode would raise RuntimeError
    with PiCamera() as camera:
        assert "AfMode" not in rig.opened[-1].controls
        assert camera.read(timeout=1.0) is not None
    rig.autofocus = True
    with PiCamera(autofocus=False):
        assert "AfMode" not in rig.opened[-1].controls


@pytest.mark.parametrize("error", ["IndexError", "RuntimeError"])
def test_no_camera_attached_is_camera_missing_with_a_clear_message(rig, error):
    rig.cameras = []
    rig.no_camera_error = error
    with pytest.raises(CameraMissing, match="no Raspberry Pi camera number 0 detected: check the ribbon cable"):
        PiCamera().open()


def test_picamera2_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    with pytest.raises(CameraMissing, match="apt install python3-picamera2"):
        PiCamera().open()


def test_a_camera_that_would_not_start_is_closed_and_reported(rig):
    camera = PiCamera(width=641, height=480)  # odd width: picamera2 refuses the configuration
    with pytest.raises(CameraError, match="would not start: width and height should be even"):
        camera.open()
    assert not rig.opened[0].is_open


def test_a_timeout_cancels_stops_and_restarts_in_place_then_frames_come_back(rig):
    camera = PiCamera()
    camera.open()
    try:
        rig.unplug()
        assert camera.read(timeout=0.2) is None
        cam = rig.opened[0]
        assert (cam.cancels, cam.stops, cam.starts) == (1, 1, 2) and cam.pending_jobs == 0
        rig.replug()
        assert decode_frame(camera.read(timeout=1.0)) == [CODE]
        assert len(rig.opened) == 1, "the camera must be restarted in place, never reopened (that leaks)"
    finally:
        camera.close()


def test_a_restart_that_fails_is_a_camera_error(rig, monkeypatch):
    camera = PiCamera()
    camera.open()
    rig.unplug()
    monkeypatch.setattr(rig.opened[0], "start", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("Failed to start camera")))
    with pytest.raises(CameraError, match="would not restart: Failed to start camera"):
        camera.read(timeout=0.1)
    camera.close()


def test_auto_picks_the_pi_camera_first(rig, config):
    camera = open_camera(config.replace(camera={"backend": "auto"}).camera)
    try:
        assert camera.name == "picamera2"
    finally:
        camera.close()


def test_auto_without_any_camera_names_what_it_tried(rig, config, monkeypatch):
    rig.cameras = []
    monkeypatch.setattr("scanner.camera.uvc.USB_CAMERAS", "/nonexistent/usb-*-video-index0")
    with pytest.raises(CameraMissing) as caught:
        open_camera(config.replace(camera={"backend": "auto"}).camera)
    assert "picamera2: no Raspberry Pi camera" in str(caught.value)
    assert "uvc: no USB camera plugged in" in str(caught.value)


def test_the_scanner_loop_rides_out_an_unplugged_ribbon_cable(rig, config):
    """Unplugged mid-stream: 'stalled', then 'lost' and reopened with backoff; plugged back: 'ok' again."""
    from kiosk.pipeline import Pipeline
    from kiosk.service import run_scanner

    config = config.replace(camera={"backend": "picamera2", "read_timeout_s": 0.2})
    pipeline = Pipeline(config)
    states: list[str] = []
    original = pipeline.store.set_status
    pipeline.store.set_status = lambda c, s, d=None: (states.append(s), original(c, s, d))
    stop = threading.Event()
    failed: list[BaseException] = []

    def cable() -> None:
        try:
            wait_until(lambda: states[-1:] == ["ok"], 20.0, "the camera to be ok")
            time.sleep(0.5)
            rig.unplug()
            wait_until(lambda: "lost" in states, 20.0, "the unplugged camera to be lost")
            rig.replug()
            wait_until(lambda: states[-1] == "ok", 20.0, "the replugged camera to be ok")
        except AssertionError as exc:  # raised in the test's thread below, not lost in this one
            failed.append(exc)
        finally:
            stop.set()

    helper = threading.Thread(target=cable)
    helper.start()
    stats = run_scanner(pipeline, stop, seconds=60)
    helper.join()
    if failed:
        raise failed[0]
    status = pipeline.store.statuses()["camera"]
    pipeline.close()
    assert states[0] == "ok" and "stalled" in states and "lost" in states and states[-1] == "ok"
    assert status["detail"]["backend"] == "picamera2" and status["detail"]["fps"] > 0
    assert stats.outcomes.get("rejected", 0) >= 1  # the visitor's code was read (it is no known format)
