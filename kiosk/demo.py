"""``kiosk demo``: the whole appliance on built-in defaults, with simulated hardware only.

A synthetic camera films a scripted queue of visitors (valid codes, repeats, a code nobody knows);
the real pipeline commits check-ins to a real SQLite file in a fresh state directory, and the real
screen shows each outcome: in a window, or with ``--headless`` drawn off-screen on SDL's dummy
driver (same code, no window; ``--screenshots DIR`` keeps a PNG of every screen shown).
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import threading
from pathlib import Path

from kiosk.core.config import Config
from kiosk.events import Outcome
from kiosk.pipeline import Pipeline
from kiosk.core.lifecycle import stop_on_signals
from scanner.camera.synthetic import DEMO_TOKEN_PATTERN


DEMO_AUTHORITY = "demo-authority"


def demo_authority_keys(state_dir: Path) -> Path:
    """A stand-in health authority's sealing key pair, kept with the demo's state (demo only: a real
    device holds the authority's public key and never its private one). Returns the folder."""
    from kiosk.core.privacy import new_sealing_keypair, write_private_file

    folder = state_dir / DEMO_AUTHORITY
    if not (folder / "sealing.pub").exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        private, public = new_sealing_keypair()
        write_private_file(folder / "sealing.key", base64.b64encode(private) + b"\n")
        write_private_file(folder / "sealing.pub", base64.b64encode(public) + b"\n")
    return folder


def demo_config(state_dir: Path) -> Config:
    """Built-in defaults plus a demo venue; never reads /etc/kiosk (the demo must not touch a real device)."""
    return Config().replace(
        device={"venue_id": "DEMO-MARKET-01", "venue_name": "Chợ Bến Thành (demo)", "direction": "entry",
                "state_dir": str(state_dir)},
        camera={"backend": "synthetic", "synthetic_script": "demo"},
        formats={"personal": [{"name": "demo-health-qr", "pattern": DEMO_TOKEN_PATTERN}]},
        clock={"assume_synced": True},
        privacy={"authority_public_key": str(demo_authority_keys(state_dir) / "sealing.pub")},
        screen={"pin": "2468"},
    )


def _print_outcome(outcome: Outcome) -> None:
    mark = {"accepted": "✔", "duplicate": "↺", "rejected": "✘", "error": "!"}.get(outcome.event, "?")
    print(f"{mark} {outcome.event:9} {outcome.kind:9} {outcome.reason}", file=sys.stderr, flush=True)


def run_demo(seconds: float, headless: bool, state_dir: str | None = None, screenshots: Path | None = None) -> int:
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    config = demo_config(state)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "error": 0}

    def tally(outcome: Outcome) -> None:
        counts[outcome.event] = counts.get(outcome.event, 0) + 1

    pipeline = Pipeline(config, sinks=[tally, _print_outcome])
    print(f"demo: state directory {state}; simulated camera; {seconds:g} s", file=sys.stderr)
    stop = threading.Event()
    stop_on_signals(stop)
    from beacon.demo import start as start_beacon

    beacon = start_beacon(state)  # Bluezone IDs on an emulated controller, or a line saying why not
    from kiosk.sync_demo import start as start_sync

    sync = start_sync(config)  # a local upstream on loopback and the uploader, or a line saying why not
    try:
        from kiosk.screen.run import run_with_screen

        if headless:
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        _, shown = run_with_screen(pipeline, stop, seconds=seconds, dummy_display=headless, windowed=True,
                                   screenshots=screenshots)
    finally:
        pipeline.close()
        if beacon is not None:
            beacon.stop()
    if shown is not None:
        print("demo screen: shown " + " ".join(f"{name}={n}" for name, n in sorted(shown.items())), file=sys.stderr)
    synced = sync.finish(expected=counts["accepted"]) if sync is not None else 0
    scanned = sum(counts.values())
    print(f"demo summary: scanned={scanned} accepted={counts['accepted']} duplicates={counts['duplicate']} "
          f"rejected={counts['rejected']} errors={counts['error']} synced={synced}")
    return 0 if counts["error"] == 0 else 1
