"""The USB webcam backend through OpenCV's real VideoCapture, fed a generated video file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner.camera import CameraError, CameraMissing
from scanner.camera.uvc import UvcCamera, find_usb_camera
from scanner.decode import decode_frame
from scanner.render import Shot, render_shot

CODE = "001090123456|012345678|NGUYỄN VĂN A|01011990|Nam|Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh|15042021".encode()


def write_video(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> Path:
    """Grey frames as an MJPEG AVI (the format most UVC webcams send), written by OpenCV itself."""
    height, width = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    frames = [render_shot(CODE, Shot(640, 480, medium="paper", px_per_module=5, rotation=r, seed=r + 6)) for r in range(-6, 6)]
    return write_video(tmp_path / "webcam.avi", frames)


def test_frames_come_back_grey_and_decode(video):
    with UvcCamera(str(video)) as camera:
        frame = camera.read(timeout=2.0)
        assert frame.ndim == 2 and frame.shape == (480, 640) and frame.dtype == np.uint8
        assert decode_frame(frame) == [CODE]


def test_the_end_of_the_stream_is_a_camera_error_like_an_unplugged_webcam(video):
    with UvcCamera(str(video)) as camera:
        for _ in range(12):
            assert camera.read(timeout=2.0) is not None
        with pytest.raises(CameraError, match="stopped giving frames"):
            camera.read(timeout=2.0)


def test_a_device_node_that_does_not_exist_is_missing(tmp_path):
    with pytest.raises(CameraMissing, match="no USB camera at /dev/video77"):
        UvcCamera("/dev/video77").open()


def test_something_opencv_cannot_open_is_missing(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(CameraMissing, match="cannot open camera"):
        UvcCamera(str(junk)).open()


def test_no_usb_camera_plugged_in(monkeypatch, tmp_path):
    monkeypatch.setattr("scanner.camera.uvc.USB_CAMERAS", str(tmp_path / "usb-*-video-index0"))
    with pytest.raises(CameraMissing, match="no USB camera plugged in"):
        find_usb_camera()
    (tmp_path / "usb-Logitech_C270-video-index0").touch()
    assert find_usb_camera().endswith("usb-Logitech_C270-video-index0")


def test_a_closed_camera_refuses_to_read(video):
    camera = UvcCamera(str(video))
    camera.open()
    camera.close()
    camera.close()  # twice is fine
    with pytest.raises(CameraError):
        camera.read(timeout=1.0)
