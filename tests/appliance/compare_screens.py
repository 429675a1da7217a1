"""Does qemu's picture of the VM's display show the kiosk's ready screen?

The reference is ``kiosk screenshot --state ready`` at the same size (the same screen code on SDL's
dummy driver). The camera preview and the status bar differ by nature (vivid's test pattern, the
VM's own clock and queue), so the comparison is on the instruction panel, which is the same text
in the same place on every ready screen: the share of its pixels that differ visibly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image, ImageChops

REPO = Path(__file__).resolve().parents[2]
PANEL = (0.56, 0.14, 0.98, 0.90)  # the instruction panel, as fractions of width and height
MAX_DIFFERENT = 0.04  # at most this share of the panel's pixels may differ by more than THRESHOLD
THRESHOLD = 48


def compare_with_ready(screendump: Path, work: Path) -> dict:
    shot = Image.open(screendump).convert("L")
    width, height = shot.size
    reference_png = work / "ready-reference.png"
    made = subprocess.run([str(REPO / ".venv/bin/kiosk"), "screenshot", "--state", "ready", "--size",
                           f"{width}x{height}", str(reference_png)], capture_output=True, text=True, timeout=300)
    if made.returncode != 0:
        return {"screendump": f"{width}x{height}", "match": False, "error": made.stderr.strip()[-300:]}
    reference = Image.open(reference_png).convert("L")
    box = tuple(int(f * s) for f, s in zip(PANEL, (width, height, width, height)))
    diff = ImageChops.difference(shot.crop(box), reference.crop(box))
    histogram = diff.histogram()
    different = sum(histogram[THRESHOLD:]) / max(1, sum(histogram))
    lit = sum(shot.histogram()[16:]) / (width * height)
    return {"screendump": f"{width}x{height}", "panel_pixels_differing": round(different, 4),
            "lit_share": round(lit, 3), "match": different <= MAX_DIFFERENT and lit > 0.5,
            "kept": str(screendump)}
