"""Replaying field captures: folders of images (some broken) and video files, looped or once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.camera import CameraMissing
from scanner.camera.replay import ReplayCamera
from scanner.decode import decode_frame
from scanner.render import Shot, render_shot
from test_camera_uvc import write_video

A, B = b"DEMO-HQR-0000000000A1", "Nguyễn Thị Ổi".encode()


def shot(payload: bytes, seed: int) -> np.ndarray:
    return render_shot(payload, Shot(640, 480, medium="phone", px_per_module=5, seed=seed))


def frames_until_end(camera: ReplayCamera, limit: int = 50) -> list[np.ndarray]:
    frames = []
    with pytest.raises(StopIteration):
        for _ in range(limit):
            frames.append(camera.read(timeout=1.0))
    return frames


@pytest.fixture
def capture_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "capture"
    folder.mkdir()
    Image.fromarray(shot(A, 1)).save(folder / "01-visitor.png")
    (folder / "02-garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 50)
    jpeg = folder / "03-truncated.jpg"
    Image.fromarray(shot(A, 2)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[:2000])
    Image.new("L", (5000, 4000), 200).save(folder / "04-too-large.png")  # 20 Mpx: no camera frame is that big
    Image.fromarray(shot(B, 3)).convert("RGB").save(folder / "05-visitor.jpg", quality=92)
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_once_plays_the_readable_images_in_order_and_logs_the_rest(capture_folder, caplog):
    caplog.set_level(logging.WARNING, logger="scanner.replay")
    with ReplayCamera(capture_folder, fps=200, loop=False) as camera:
        frames = frames_until_end(camera)
    assert [decode_frame(f) for f in frames] == [[A], [B]]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3
    assert all(m.startswith("replay: skipping unreadable image 0") for m in skipped)
    assert "04-too-large.png (5000x4000 is larger than a camera frame)" in skipped[2]


def test_loop_starts_again(capture_folder):
    with ReplayCamera(capture_folder, fps=200, loop=True) as camera:
        seen = [decode_frame(camera.read(timeout=1.0)) for _ in range(5)]
    assert seen == [[A], [B], [A], [B], [A]]


def test_a_folder_with_nothing_readable_left_is_missing(tmp_path):
    (tmp_path / "a.png").write_bytes(b"broken")
    (tmp_path / "b.jpg").write_bytes(b"")
    with ReplayCamera(tmp_path, fps=200) as camera, pytest.raises(CameraMissing, match="no readable image"):
        camera.read(timeout=1.0)


@pytest.mark.parametrize("where", ["", "does/not/exist", "empty"])
def test_nothing_to_replay_is_missing(tmp_path, where):
    if where == "empty":
        (tmp_path / "empty").mkdir()
    path = "" if not where else tmp_path / where
    with pytest.raises(CameraMissing):
        ReplayCamera(path).open()


def test_a_video_file_once_and_looped(tmp_path):
    video = write_video(tmp_path / "visit.avi", [shot(A, 4)] * 3 + [shot(B, 5)] * 3)
    with ReplayCamera(video, fps=200, loop=False) as camera:
        assert [decode_frame(f) for f in frames_until_end(camera)] == [[A]] * 3 + [[B]] * 3
    with ReplayCamera(video, fps=200, loop=True) as camera:
        assert [decode_frame(camera.read(timeout=1.0)) for _ in range(8)] == [[A]] * 3 + [[B]] * 3 + [[A]] * 2


def test_a_truncated_video_plays_what_it_can(tmp_path, caplog):
    video = write_video(tmp_path / "cut.avi", [shot(A, 6)] * 10)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    caplog.set_level(logging.INFO, logger="scanner.replay")
    with ReplayCamera(video, fps=200, loop=False) as camera:
        frames = frames_until_end(camera)
    assert 1 <= len(frames) < 10 and decode_frame(frames[0]) == [A]
    assert any("ended after" in r.getMessage() for r in caplog.records)


def test_a_video_that_does_not_decode_is_missing(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(CameraMissing):
        camera = ReplayCamera(junk, loop=True)
        camera.open()
        camera.read(timeout=1.0)


def test_kiosk_run_on_a_replay_checks_in_every_recorded_visitor(capture_folder, config):
    """A recording is read frame by frame (nothing dropped), so a replay gives the same check-ins every time."""
    from kiosk.pipeline import Pipeline
    from kiosk.service import run_scanner
    import threading

    config = config.replace(camera={"backend": "replay", "replay_path": str(capture_folder),
                                    "replay_loop": False, "fps": 100.0})
    pipeline = Pipeline(config)
    stats = run_scanner(pipeline, threading.Event(), seconds=30)
    pipeline.close()
    assert stats.frames == 2 and stats.dropped == 0
    assert stats.outcomes == {"accepted": 1, "rejected": 1}  # A is a demo health QR; B is no known format
