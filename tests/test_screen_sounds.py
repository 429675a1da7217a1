"""A distinct short tone per state; silence, never a crash, without an audio device."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, kiosk_env
from kiosk.screen.sounds import PATTERNS, RATE, samples_for, tone
from kiosk.screen.states import LOOKS


def test_every_state_has_its_own_short_tone():
    assert set(PATTERNS) == set(LOOKS)
    waves = {state: tone(PATTERNS[state]) for state in PATTERNS}
    for state, wave in waves.items():
        assert 0.01 < len(wave) / RATE < 1.5, state  # short: feedback, not music
        assert np.abs(wave).max() <= 1.0 and np.abs(wave).max() > 0.5, state
        assert abs(wave[0]) < 0.01 and abs(wave[-1]) < 0.01, f"{state} would click"
    # distinct: different length or different spectrum for every pair
    spectra = {s: np.abs(np.fft.rfft(w, 2**16))[:4000] for s, w in waves.items()}
    states = sorted(waves)
    for i, a in enumerate(states):
        for b in states[i + 1:]:
            same_length = abs(len(waves[a]) - len(waves[b])) < RATE * 0.02
            similar = np.corrcoef(spectra[a], spectra[b])[0, 1] > 0.98
            assert not (same_length and similar), (a, b)


@pytest.mark.parametrize("bits, channels, dtype", [(-16, 1, np.int16), (-16, 2, np.int16), (8, 2, np.uint8),
                                                   (32, 1, np.float32), (16, 1, np.uint16)])
def test_tones_match_the_mixer_format(bits, channels, dtype):
    samples = samples_for("accepted", 22050, channels, bits)
    assert samples.dtype == dtype
    assert samples.shape[1:] == ((channels,) if channels > 1 else ())
    assert samples.flags.c_contiguous


PROBE = """
import os, sys
from kiosk.screen.sounds import Sounds
s = Sounds(enabled=True)
print(s.available, all(s.play(state) for state in ("accepted", "rejected")), bool(s.problem))
"""


def run_probe(audio_driver: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env=kiosk_env(SDL_AUDIODRIVER=audio_driver, PYGAME_HIDE_SUPPORT_PROMPT="1"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.split()


@pytest.mark.system
def test_sound_plays_on_an_audio_device():
    assert run_probe("dummy") == ["True", "True", "False"]


@pytest.mark.system
def test_no_audio_device_means_silence_not_a_crash():
    assert run_probe("no-such-audio-driver") == ["False", "False", "True"]
