"""``kiosk bench scanner``: decode rate and time per frame of three decoder configurations.

Configurations, each on the same generated frames (scanner/corpus.py):
- ``pyzbar``: ``pyzbar.decode(frame, symbols=[QRCODE])`` as the product brief would call it;
- ``zxing-cpp``: ``zxingcpp.read_barcodes(frame, formats=QRCode)`` with its default settings;
- ``pipeline``: this project's ``scanner.decode.decode_frame``.

A frame counts as read only if the exact payload bytes come back. Times are wall-clock per call,
taken in turn on each frame so that machine load hits all three alike; for empty frames (the kiosk's
idle state) each configuration is timed three times per frame and the fastest kept, and the idle
cost is the pipeline's time over raw pyzbar's on the same frame.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from scanner import corpus
from scanner.corpus import Scene

Decoder = Callable[[np.ndarray], list[bytes]]
IDLE_REPEATS = 3


def configurations() -> dict[str, Decoder]:
    from pyzbar import pyzbar

    from scanner.decode import decode_frame

    configs: dict[str, Decoder] = {
        "pyzbar": lambda frame: [s.data for s in pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])],
        "pipeline": decode_frame,
    }
    try:
        import zxingcpp
    except ImportError:
        return configs
    configs["zxing-cpp"] = lambda frame: [r.bytes for r in zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)]
    return configs


class Tally:
    """Reads and times of one configuration."""

    def __init__(self) -> None:
        self.read: dict[str, list[bool]] = defaultdict(list)
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.misreads = 0
        self.false_positives = 0

    def code(self, scene: Scene, found: list[bytes], ms: float) -> None:
        hit = scene.payload in found
        self.misreads += any(p != scene.payload for p in found)
        for key in ("overall", f"condition:{scene.condition}", f"px_per_module:{scene.shot.px_per_module:g}",
                    f"payload:{scene.payload_name}", f"medium:{scene.shot.medium}", f"resolution:{scene.resolution}"):
            self.read[key].append(hit)
        if scene.in_target:
            self.read["target"].append(hit)
        self.ms[f"{scene.resolution}:code"].append(ms)

    def empty(self, scene: Scene, found: list[bytes], ms: float) -> None:
        self.false_positives += bool(found)
        self.ms[f"{scene.resolution}:empty"].append(ms)

    def rate(self, key: str) -> float:
        hits = self.read[key]
        return round(sum(hits) / len(hits), 4) if hits else float("nan")

    def report(self) -> dict[str, Any]:
        groups: dict[str, dict[str, float]] = defaultdict(dict)
        for key in sorted(self.read):
            if ":" in key:
                group, value = key.split(":", 1)
                groups[group][value] = self.rate(key)
        times: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for key, values in sorted(self.ms.items()):
            resolution, kind = key.split(":")
            times[resolution][kind] = {"p50": _pct(values, 50), "p99": _pct(values, 99), "frames": len(values)}
        return {"decode_rate": {"overall": self.rate("overall"), "target": self.rate("target"), **groups},
                "ms_per_frame": times, "misreads": self.misreads, "false_positives": self.false_positives}


def _p50_p99(report: dict[str, Any], resolution: str, kind: str) -> str:
    times = report["ms_per_frame"].get(resolution, {}).get(kind)
    return f"{times['p50']} / {times['p99']}" if times else "-"


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def _timed(decoder: Decoder, frame: np.ndarray) -> tuple[list[bytes], float]:
    start = time.perf_counter()
    found = decoder(frame)
    return found, (time.perf_counter() - start) * 1000


def live_clip(decoder: Any, frame: np.ndarray, rng: np.random.Generator, frames: int = 3) -> list[bytes]:
    """What the live decoder reads from a code held still for a few frames (a camera's noise on each)."""
    found: list[bytes] = []
    for n in range(frames):
        shot = frame if n == 0 else (frame + rng.normal(0, 3, frame.shape)).clip(0, 255).astype(np.uint8)
        found += [p for p in decoder.decode(shot) if p not in found]
    return found


def bench_scanner(args: argparse.Namespace) -> dict[str, Any]:
    from scanner.decode import STAGES, as_luma, decode_luma
    from scanner.live import LiveDecoder

    seed = getattr(args, "seed", 0) or 0
    save = getattr(args, "save_frames", None)
    configs = configurations()
    tallies = {name: Tally() for name in configs}
    idle_ratio: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, int] = defaultdict(int)
    counts = {"with_code": 0, "target": 0, "empty": 0}
    live, live_decoder, noise = Tally(), LiveDecoder(), np.random.default_rng(seed)
    started = time.monotonic()
    for scene, frame in corpus.scenes(seed):
        if save:
            from PIL import Image

            Path(save).mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(Path(save) / f"{scene.label()}.png")
        if scene.payload is None:
            counts["empty"] += 1
            best: dict[str, tuple[list[bytes], float]] = {}
            for _ in range(IDLE_REPEATS):
                for name, decoder in configs.items():
                    found, ms = _timed(decoder, frame)
                    if name not in best or ms < best[name][1]:
                        best[name] = (found, ms)
            for name, (found, ms) in best.items():
                tallies[name].empty(scene, found, ms)
            idle_ratio[scene.resolution].append(best["pipeline"][1] / best["pyzbar"][1])
            continue
        counts["with_code"] += 1
        counts["target"] += scene.in_target
        for name, decoder in configs.items():
            found, ms = _timed(decoder, frame)
            tallies[name].code(scene, found, ms)
        trace: list[str] = []
        decode_luma(as_luma(frame), trace)
        stages[trace[0] if trace else "unread"] += 1
        live.code(scene, live_clip(live_decoder, frame, noise), 0.0)
    reports = {name: tally.report() for name, tally in tallies.items()}
    pipeline = reports["pipeline"]
    others = [r["decode_rate"]["overall"] for n, r in reports.items() if n != "pipeline"]
    idle = {res: {"median_ratio": round(float(np.median(r)), 3), "p90_ratio": round(float(np.percentile(r, 90)), 3)}
            for res, r in sorted(idle_ratio.items())}
    return {
        "command": "kiosk bench scanner" + (f" --seed {seed}" if seed else ""),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.monotonic() - started, 1),
        "corpus": {"seed": seed, "frames": counts, "conditions": list(corpus.CONDITIONS),
                   "px_per_module": list(corpus.PX_PER_MODULE), "resolutions": [f"{w}x{h}" for w, h in corpus.RESOLUTIONS],
                   "media": list(corpus.MEDIA), "payloads": list(corpus.PAYLOADS)},
        "configurations": reports,
        "pipeline_stage_that_read": {s: stages.get(s, 0) for s in (*STAGES, "unread")},
        "live_decoder": {"read_target": live.rate("target"), "read_overall": live.rate("overall"),
                         "how": "each frame with a code held for 3 frames (fresh sensor noise, sigma 3) in front of "
                                "the kiosk's live decoder (scanner/live.py), one decoder for the whole corpus"},
        "idle_cost_vs_pyzbar": idle,  # of decode_frame, every stage on every frame: the kiosk's idle frames
        # go through scanner/live.py instead, measured by `kiosk bench efficiency` against raw zxing-cpp
        "targets": {
            "pipeline >= 98% where >= 3 px/module and blur <= 1.5": pipeline["decode_rate"]["target"] >= 0.98,
            "pipeline overall above every other configuration": all(pipeline["decode_rate"]["overall"] > o for o in others),
            "decode p50 <= 10 ms at 640x480 (frames with a code)":
                pipeline["ms_per_frame"].get("640x480", {}).get("code", {}).get("p50", float("inf")) <= 10,
            "zero false positives on empty scenes": pipeline["false_positives"] == 0,
            "live decoder reads as many held codes as the pipeline reads frames (target set and overall)":
                live.rate("target") >= pipeline["decode_rate"]["target"]
                and live.rate("overall") >= pipeline["decode_rate"]["overall"],
        },
        "table": markdown_table(reports, idle),
    }


def markdown_table(reports: dict[str, dict[str, Any]], idle: dict[str, dict[str, float]]) -> list[str]:
    """The README's table: one row per condition and per figure, one column per configuration."""
    names = [n for n in ("pyzbar", "zxing-cpp", "pipeline") if n in reports]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label: str, get: Callable[[dict[str, Any]], Any]) -> None:
        lines.append(f"| {label} | " + " | ".join(str(get(reports[n])) for n in names) + " |")

    def pct(value: float) -> str:
        return f"{100 * value:.1f}%"

    row("**read, target set** (>= 3 px/module, blur <= 1.5)", lambda r: f"**{pct(r['decode_rate']['target'])}**")
    row("**read, whole corpus**", lambda r: f"**{pct(r['decode_rate']['overall'])}**")
    for group in ("condition", "px_per_module", "payload", "medium", "resolution"):
        for value in reports["pipeline"]["decode_rate"][group]:
            row(f"{group.replace('_', ' ')}: {value}", lambda r, g=group, v=value: pct(r["decode_rate"][g][v]))
    row("false positives on empty scenes", lambda r: r["false_positives"])
    row("misread payloads", lambda r: r["misreads"])
    for resolution in reports["pipeline"]["ms_per_frame"]:
        for kind, label in (("code", "with a code"), ("empty", "empty")):
            row(f"ms/frame {resolution} {label}, p50 / p99", lambda r, res=resolution, k=kind: _p50_p99(r, res, k))
    for resolution, ratio in idle.items():
        cells = [f"{ratio['median_ratio']}x" if n == "pipeline" else "" for n in names]
        lines.append(f"| idle cost vs raw pyzbar {resolution} (median per frame) | " + " | ".join(cells) + " |")
    return lines
