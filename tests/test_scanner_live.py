"""The live decoder: an idle camera costs almost nothing, yet every code held up is read (real rendered
frames, the real zxing-cpp and zbar)."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.corpus import TOKEN
from scanner.decode import FrameError, zxing_read
from scanner.live import RECHECK_EVERY, LiveDecoder
from scanner.render import Shot, render_shot

EMPTY = render_shot(None, Shot(640, 480, medium="paper", px_per_module=3.0, rotation=12.0, tilt=20.0, seed=7))
CRISP = render_shot(TOKEN, Shot(640, 480, medium="paper", px_per_module=4.0, seed=3))
# A phone at 2.5 pixels per module: the first zxing-cpp pass does not read it; the enlarged stages do.
HARD = render_shot(TOKEN, Shot(640, 480, medium="phone", px_per_module=2.5, seed=1))


def filmed(still: np.ndarray, frames: int, seed: int = 0) -> list[np.ndarray]:
    """A still scene as a camera gives it: fresh sensor noise on every frame."""
    rng = np.random.default_rng(seed)
    return [(still + rng.normal(0, 3, still.shape)).clip(0, 255).astype(np.uint8) for _ in range(frames)]


def test_the_hard_frame_really_needs_the_later_stages():
    assert zxing_read(HARD) == []


def test_a_still_empty_scene_is_decoded_once_then_only_glanced_at():
    decoder = LiveDecoder()
    for frame in filmed(EMPTY, 150):
        assert decoder.decode(frame) == []
    # The first frame gets every stage; then a zxing-cpp pass once every RECHECK_EVERY frames.
    assert decoder.passes["thorough"] == 1
    assert decoder.passes["cheap"] <= 150 // RECHECK_EVERY
    assert decoder.passes["skipped"] >= 150 - 1 - 150 // RECHECK_EVERY


def test_a_code_held_up_in_an_idle_scene_is_read_on_its_first_frame():
    decoder = LiveDecoder()
    for frame in filmed(EMPTY, 30):
        decoder.decode(frame)
    assert decoder.decode(filmed(CRISP, 1)[0]) == [TOKEN]


def test_a_hard_code_held_still_is_read_once_the_scene_settles():
    decoder = LiveDecoder()
    for frame in filmed(EMPTY, 30):
        decoder.decode(frame)
    seen = [decoder.decode(frame) for frame in filmed(HARD, 3, seed=1)]
    assert [TOKEN] in seen[:2]


def test_a_code_in_view_stays_reported_on_frames_not_decoded_again():
    decoder = LiveDecoder()
    results = [decoder.decode(frame) for frame in filmed(CRISP, 20)]
    assert all(r == [TOKEN] for r in results)
    assert decoder.passes["skipped"] > 10


def test_a_code_taken_away_is_gone_at_the_next_frame():
    decoder = LiveDecoder()
    for frame in filmed(CRISP, 5):
        decoder.decode(frame)
    assert decoder.decode(filmed(EMPTY, 1)[0]) == []


@pytest.mark.parametrize("frame", [np.zeros((10, 10), np.uint8), np.zeros((480, 640), np.float32), "not a frame"])
def test_a_broken_frame_is_refused_with_a_reason_and_the_stream_goes_on(frame):
    decoder = LiveDecoder()
    with pytest.raises(FrameError):
        decoder.decode(frame)
    assert decoder.decode(CRISP) == [TOKEN]
