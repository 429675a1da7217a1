"""A short, distinct tone for every state, for visitors who cannot see the screen (or do not look).

Tones are generated with numpy (no sound files to ship): a rising pair means "in", a falling or low
buzz means "no", an alarm-like pattern means "call staff". When there is no audio device (no sound
card, no permission, SDL_AUDIODRIVER pointing nowhere) the player goes silent; it never raises.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("kiosk.screen.sounds")

RATE = 44100

# state -> notes: (frequency Hz, duration ms, silence after ms, timbre); timbre "buzz" adds odd harmonics.
PATTERNS: dict[str, list[tuple[float, int, int, str]]] = {
    "ready": [(1760, 25, 0, "sine")],                                       # a faint tick: scanning again
    "accepted": [(880, 90, 20, "sine"), (1319, 140, 0, "sine")],            # rising fifth: you're in
    "certificate-valid": [(880, 70, 15, "sine"), (1109, 70, 15, "sine"), (1319, 150, 0, "sine")],
    "duplicate": [(988, 70, 70, "sine"), (988, 70, 0, "sine")],             # two equal beeps: again
    "unrecognized": [(440, 150, 30, "buzz"), (330, 220, 0, "buzz")],        # falling: not this
    "rejected": [(300, 380, 0, "buzz")],                                    # one low buzz
    "expired": [(660, 110, 25, "sine"), (554, 110, 25, "sine"), (440, 200, 0, "sine")],
    "untrusted": [(349, 120, 40, "buzz"), (262, 120, 40, "buzz"), (349, 120, 40, "buzz"), (262, 160, 0, "buzz")],
    "camera-lost": [(1000, 60, 60, "sine")] * 3 + [(700, 250, 0, "sine")],
    "storage-full": [(220, 500, 60, "buzz"), (220, 160, 0, "buzz")],
    "clock-unset": [(523, 120, 60, "sine"), (392, 160, 0, "sine")],
    "not-provisioned": [(392, 120, 40, "sine"), (523, 120, 40, "sine"), (392, 160, 0, "sine")],
    "error": [(250, 160, 80, "buzz"), (250, 160, 0, "buzz")],
    "provisioning": [(1047, 120, 20, "sine"), (1568, 300, 0, "sine")],
    "maintenance": [(2000, 18, 0, "sine")],                                 # a key click
    "manual-entry": [(1500, 30, 30, "sine"), (2000, 18, 0, "sine")],        # the keypad opens
    "starting": [(660, 60, 0, "sine")],                                     # never played: silence at start-up
    "out-of-service": [(330, 220, 90, "sine"), (262, 320, 0, "sine")],      # two low notes: see staff
}


def tone(notes: list[tuple[float, int, int, str]], rate: int = RATE) -> np.ndarray:
    """The notes as float samples in [-1, 1], with 5 ms fades so no note clicks."""
    parts = []
    for freq, ms, gap_ms, timbre in notes:
        t = np.arange(int(rate * ms / 1000)) / rate
        wave = np.sin(2 * np.pi * freq * t)
        if timbre == "buzz":
            wave = wave + np.sin(2 * np.pi * 3 * freq * t) / 3 + np.sin(2 * np.pi * 5 * freq * t) / 5
            wave /= np.abs(wave).max() or 1.0
        fade = min(len(t) // 2, int(rate * 0.005))
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            wave[:fade] *= ramp
            wave[-fade:] *= ramp[::-1]
        parts += [wave, np.zeros(int(rate * gap_ms / 1000))]
    return np.concatenate(parts) * 0.8


def samples_for(state: str, rate: int, channels: int, bits: int) -> np.ndarray:
    """The tone for ``state`` in the mixer's own format (as pygame.sndarray expects it)."""
    wave = tone(PATTERNS[state], rate)
    if bits < 0 or bits == 32:  # signed integer (or float32 when bits == 32)
        data = wave.astype(np.float32) if bits == 32 else (wave * (2 ** (abs(bits) - 1) - 1)).astype(f"int{abs(bits)}")
    else:  # unsigned 8 or 16 bit
        data = ((wave + 1) / 2 * (2 ** bits - 1)).astype(f"uint{bits}")
    return np.ascontiguousarray(np.repeat(data[:, None], channels, axis=1) if channels > 1 else data)


class Sounds:
    """Plays a state's tone; silent (``available`` False) when no audio device can be opened."""

    def __init__(self, enabled: bool = True, volume: float = 0.7):
        self.available = False
        self.problem = "sound disabled in config" if not enabled else ""
        self._sounds: dict[str, object] = {}
        if enabled:
            self._open(volume)

    def _open(self, volume: float) -> None:
        try:
            import pygame

            if not pygame.mixer.get_init():
                pygame.mixer.pre_init(RATE, -16, 1, 512)
                pygame.mixer.init()
            rate, bits, channels = pygame.mixer.get_init()
            for state in PATTERNS:
                sound = pygame.sndarray.make_sound(samples_for(state, rate, channels, bits))
                sound.set_volume(volume)
                self._sounds[state] = sound
            self.available = True
        except Exception as exc:  # noqa: BLE001 - no audio must never stop the kiosk
            self.problem = f"no audio device ({exc}); continuing silently"
            log.warning("sound: %s", self.problem)
            self._sounds.clear()

    def play(self, state: str) -> bool:
        """Start the tone for ``state`` without waiting; False when silent."""
        sound = self._sounds.get(state)
        if sound is None:
            return False
        try:
            sound.play()
            return True
        except Exception as exc:  # noqa: BLE001
            log.warning("sound: cannot play (%s)", exc)
            return False
