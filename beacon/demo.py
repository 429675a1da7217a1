"""The beacon in ``kiosk demo``: advertising on an emulated controller when btvirt can run here."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beacon.emulator import Emulator, EmulatorUnavailable
from beacon.service import BeaconService, store_status_sink
from kiosk.core.config import BeaconConfig
from kiosk.core.records import BeaconState, Component


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


@dataclass
class DemoBeacon:
    emulator: Emulator
    thread: threading.Thread
    stop_event: threading.Event

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        self.emulator.stop()


def start(state_dir: Path) -> DemoBeacon | None:
    """Start btvirt and the beacon service; None (after saying why) when the emulator cannot run."""
    try:
        emulator = Emulator(state_dir / "bt-emulator").start()
    except (EmulatorUnavailable, OSError) as exc:
        _say(f"beacon not started: no emulated Bluetooth controller ({exc})")
        return None
    to_store = store_status_sink(state_dir)

    def report(component: str, state: str, detail: dict[str, Any]) -> None:
        to_store(component, state, detail)
        if component == Component.BEACON and state == BeaconState.ADVERTISING:
            _say(f"beacon advertising Bluezone ID {detail['id']} (slot {detail['slot']}) on an emulated controller")
        elif component == Component.BEACON and state != BeaconState.STOPPED:
            _say(f"beacon {state}: {detail.get('error') or detail.get('reason', '')}")

    stop = threading.Event()
    service = BeaconService(BeaconConfig(transport=emulator.transport), state_dir, assume_synced=True,
                            status=report, stop=stop)
    thread = threading.Thread(target=service.run, name="beacon", daemon=True)
    thread.start()
    return DemoBeacon(emulator, thread, stop)
