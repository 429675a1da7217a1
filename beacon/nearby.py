"""Nearby phones: distinct Bluezone IDs heard above an RSSI threshold, as an occupancy estimate.

Only the count leaves this module (status "nearby" for the screen and the heartbeat): the IDs phones
broadcast are kept in memory for one window and never stored. A phone changes its ID every 15 minutes,
so one that stays across a change counts twice within a window that spans it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from beacon.advert import bluezone_id_from_ad
from beacon.hci import RSSI_UNAVAILABLE, Controller
from beacon.transport import open_transport

log = logging.getLogger("beacon.nearby")

MAX_TRACKED = 10_000  # a flood of made-up IDs costs memory, never more than this


class ScanError(RuntimeError):
    """A scan could not run; advertising carries on."""


@dataclass(frozen=True)
class Sighting:
    bluezone_id: bytes
    rssi: int
    utc_ms: int


class NearbyCounter:
    """Distinct IDs seen within the last ``window_ms`` at or above ``rssi_threshold`` dBm.

    A controller that reports no RSSI (127, e.g. BlueZ's emulator) cannot be filtered by distance:
    such sightings count, rather than making every phone invisible.
    """

    def __init__(self, window_ms: int, rssi_threshold: int):
        self.window_ms = window_ms
        self.rssi_threshold = rssi_threshold
        self.last_seen: dict[bytes, int] = {}

    def add(self, sighting: Sighting, own_ids: frozenset[bytes] = frozenset()) -> bool:
        if sighting.bluezone_id in own_ids:
            return False
        if sighting.rssi != RSSI_UNAVAILABLE and sighting.rssi < self.rssi_threshold:
            return False
        self.last_seen[sighting.bluezone_id] = max(sighting.utc_ms, self.last_seen.get(sighting.bluezone_id, 0))
        if len(self.last_seen) > MAX_TRACKED:
            for old in sorted(self.last_seen, key=self.last_seen.__getitem__)[:len(self.last_seen) - MAX_TRACKED]:
                del self.last_seen[old]
        return True

    def count(self, now_ms: int) -> int:
        horizon = now_ms - self.window_ms
        self.last_seen = {k: t for k, t in self.last_seen.items() if horizon < t <= now_ms + self.window_ms}
        return len(self.last_seen)


class Scanner(ABC):
    """Listens for adverts for a while; the backends differ only in how they reach a controller."""

    @abstractmethod
    def scan(self, seconds: float) -> list[Sighting]: ...

    def close(self) -> None:
        pass


class HciScanner(Scanner):
    """Passive LE scan through our own HCI driver: the emulator's controllers (or a second adapter)."""

    def __init__(self, transport: str, clock_ms: Callable[[], int]):
        self.spec = transport
        self.clock_ms = clock_ms
        self.controller: Controller | None = None

    def scan(self, seconds: float) -> list[Sighting]:
        from beacon.hci import HciError, ParameterError
        from beacon.transport import AdapterMissing

        try:
            if self.controller is None:
                controller = Controller(open_transport(self.spec))
                controller.reset()
                controller.enable_le_events()
                controller.set_scan_params()
                self.controller = controller
            self.controller.set_scan_enable(True)
            try:
                found = [Sighting(bid, r.rssi, self.clock_ms())
                         for r in self.controller.advertising_reports(seconds)
                         if (bid := bluezone_id_from_ad(r.data)) is not None]
            finally:
                self.controller.set_scan_enable(False)
            return found
        except (AdapterMissing, HciError, ParameterError) as exc:
            self.close()
            raise ScanError(str(exc)) from None

    def close(self) -> None:
        if self.controller is not None:
            self.controller.close()
            self.controller = None


class BluepyScanner(Scanner):
    """bluepy's Scanner on hciN (the Pi). bluepy only scans; advertising goes through raw HCI."""

    def __init__(self, iface: int, clock_ms: Callable[[], int]):
        self.iface = iface
        self.clock_ms = clock_ms

    def scan(self, seconds: float) -> list[Sighting]:
        try:
            from bluepy.btle import BTLEException, Scanner as BluepyBleScanner
        except ImportError:
            raise ScanError("bluepy is not installed (pip install 'venue-kiosk[pi]')") from None
        try:
            entries = BluepyBleScanner(self.iface).scan(seconds)
        except BTLEException as exc:
            raise ScanError(f"bluepy scan on hci{self.iface} failed: {exc}") from None
        now = self.clock_ms()
        return [Sighting(bid, bluepy_rssi(e.rssi), now) for e in entries
                if (bid := bluezone_id_from_ad(bytes(e.rawData or b""))) is not None]


def bluepy_rssi(value: object) -> int:
    """bluepy's RSSI, with its encodings of "not available" (HCI's 127 comes out as -129, or as a
    huge negative number through the management path) mapped to RSSI_UNAVAILABLE: HCI RSSI is -127..20."""
    try:
        rssi = int(value)
    except (TypeError, ValueError):
        return RSSI_UNAVAILABLE
    return rssi if -127 <= rssi <= 20 else RSSI_UNAVAILABLE


def open_scanner(spec: str, clock_ms: Callable[[], int]) -> Scanner | None:
    """``off``, ``bluepy:hciN`` or ``unix:PATH`` (config key beacon.scanner)."""
    if spec == "off":
        return None
    if spec.startswith("bluepy:hci"):
        return BluepyScanner(int(spec[len("bluepy:hci"):]), clock_ms)
    return HciScanner(spec, clock_ms)
