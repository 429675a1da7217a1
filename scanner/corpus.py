"""The generated frame corpus of ``kiosk bench scanner``: what visitors hold up, as a camera sees it.

Every scene is one combination of resolution x medium (paper card or phone screen) x payload (a CCCD
code with Vietnamese text, a personal health token, a dense vaccine certificate) x size in pixels per
module x one named condition (rotation, perspective, blur, noise, glare, low contrast, inversion, or
several at once), with small random jitter in angle and tilt. Empty scenes (cards and phones showing
text, cluttered backgrounds) count false positives. Same seed, same corpus.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from scanner.render import Shot, render_shot

# A made-up CCCD card (format from DESIGN.md section 3): UTF-8, byte mode, version 9.
CCCD = ("079190012345|012345678|NGUYỄN THỊ NGỌC ÁNH|01011990|Nữ|"
        "Số 12 Đường Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh|15042021").encode()
# An opaque personal health QR token (PC-Covid's format was never published).
TOKEN = b"PCCOVID:v1:7Q2KX9ZRM4T8WBN3HJ5V6C1D0FGLPSAE"
# A real EU DCC test certificate (dgc-testdata AT/2DCode/raw/1.json, field PREFIX, also in
# tests/data/dgc-testdata; Apache-2.0, (c) 2021 T-Systems International GmbH and contributors). At error correction Q, as issuers print
# it, this is a version 19 code: 93x93 modules.
HC1 = (
    "HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH-R6IOOK.IR9B+9G4G50PHZF0AT4V22F/8X*G3M9JUPY0BX/KR96R/S09T./0LWT"
    "KD33236J3TA3M*4VV2 73-E3GG396B-43O058YIB73A*G3W19UEBY5:PI0EGSP4*2DN43U*0CEBQ/GXQFY73CIBC:G 7376BXBJB"
    "AJ UNFMJCRN0H3PQN*E33H3OA70M3FMJIJN523.K5QZ4A+2XEN QT QTHC31M3+E32R44$28A9H0D3ZCL4JMYAZ+S-A5$XKX6T2Y"
    "C 35H/ITX8GL2-LH/CJTK96L6SR9MU9RFGJA6Q3QR$P2OIC0JVLA8J3ET3:H3A+2+33U SAAUOT3TPTO4UBZIC0JKQTL*QDKBO.A"
    "I9BVYTOCFOPS4IJCOT0$89NT2V457U8+9W2KQ-7LF9-DF07U$B97JJ1D7WKP/HLIJL8JF8JFHJP7NVDEBU1J*Z222E.GJ457661C"
    "FFTWM-8P2IUE7K*SSW613:9/:TT5IYQBTBU16R4I1A/9VRPJ-TS.7ZEM7MSVOCD4RG2L-TQJROXL2J:52J7F0Q10SMAP3CG3KHF0"
    "DWIH"
)
PAYLOADS: dict[str, tuple[bytes, str]] = {  # name -> (payload, error correction level)
    "cccd": (CCCD, "m"),
    "token": (TOKEN, "m"),
    "hc1": (HC1.encode(), "q"),
}
RESOLUTIONS = ((640, 480), (1280, 720))
MEDIA = ("paper", "phone")
PX_PER_MODULE = (2.0, 2.5, 3.0, 4.0, 6.0)
CONDITIONS: dict[str, dict[str, Any]] = {
    "clean": {},
    "rotated 45°": {"rotation": 45.0},
    "perspective 35°": {"tilt": 35.0},
    "blur σ1.0": {"blur": 1.0},
    "blur σ1.5": {"blur": 1.5},
    "blur σ2.5": {"blur": 2.5},
    "noise σ14": {"noise": 14.0},
    "glare": {"glare": 0.7},
    "low contrast": {"contrast": 0.25},
    "inverted": {"inverted": True},
    "all at once": {"tilt": 25.0, "blur": 1.0, "noise": 8.0, "glare": 0.4, "contrast": 0.6},
}
EMPTY_SCENES = 120


@dataclass(frozen=True)
class Scene:
    """One corpus frame: what it shows (``payload`` None for an empty scene) and under which conditions."""

    payload_name: str
    payload: bytes | None
    error: str
    condition: str
    shot: Shot

    @property
    def resolution(self) -> str:
        return f"{self.shot.width}x{self.shot.height}"

    @property
    def in_target(self) -> bool:
        """The issue's target set: a code of >= 3 px/module, blur sigma <= 1.5."""
        return self.payload is not None and self.shot.px_per_module >= 3 and self.shot.blur <= 1.5

    def render(self) -> np.ndarray:
        return render_shot(self.payload, self.shot, self.error)

    def label(self) -> str:
        s = self.shot
        return (f"{self.resolution}-{s.medium}-{self.payload_name}-{s.px_per_module:g}px-"
                f"{self.condition.replace(' ', '_')}-seed{s.seed}")


def scenes(seed: int = 0) -> Iterator[tuple[Scene, np.ndarray]]:
    """Every scene with its frame; combinations whose code cannot fit the frame are left out."""
    rng = random.Random(seed)
    combos = itertools.product(RESOLUTIONS, MEDIA, PAYLOADS.items(), PX_PER_MODULE, CONDITIONS.items())
    for (width, height), medium, (name, (payload, error)), px, (condition, change) in combos:
        jitter = {"rotation": rng.uniform(-10, 10), "tilt": rng.uniform(0, 15)}
        shot = Shot(width, height, medium=medium, px_per_module=px, seed=rng.randrange(2**31), **jitter)
        shot = replace(shot, **{k: v + jitter.get(k, 0) if k == "rotation" else v for k, v in change.items()})
        scene = Scene(name, payload, error, condition, shot)
        try:
            yield scene, scene.render()
        except ValueError:  # e.g. a 93-module certificate at 6 px/module in 640x480
            continue
    for i in range(EMPTY_SCENES):
        width, height = RESOLUTIONS[i % len(RESOLUTIONS)]
        shot = Shot(width, height, medium=MEDIA[(i // 2) % len(MEDIA)], px_per_module=rng.choice((2.0, 3.0, 4.0)),
                    rotation=rng.uniform(-30, 30), tilt=rng.uniform(0, 30), noise=rng.choice((3.0, 10.0)),
                    glare=rng.choice((0.0, 0.0, 0.6)), inverted=rng.random() < 0.2, seed=rng.randrange(2**31))
        scene = Scene("none", None, "m", "empty", shot)
        yield scene, scene.render()
