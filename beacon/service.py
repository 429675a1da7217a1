"""``kiosk beacon``: keep the current Bluezone ID on the air, whatever the clock and adapter do.

- No advertising until the wall clock is trustworthy: phones match IDs by time, so a beacon with a
  wrong clock would broadcast IDs that match nothing (or the wrong window).
- The ID changes within a second after each 15-minute UTC boundary: the loop sleeps until the boundary.
- A missing or failing controller is reset and re-programmed, with full-jitter exponential backoff.
- Its state (advertising / waiting-for-clock / adapter-missing / error) goes to the status table.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from beacon.advert import bluezone_advert
from beacon.hci import (ADV_NONCONN_IND, Controller, HciError, LocalVersion, ParameterError, adv_params,
                        interval_units, non_resolvable_address)
from beacon.ids import SLOT_MS, BaseKey, id_at, load_or_create_base_key, slot_of, slot_start_ms, utc_day
from beacon.nearby import NearbyCounter, Scanner, ScanError, open_scanner
from beacon.transport import AdapterMissing, CapabilityMissing, Transport, open_transport
from kiosk.core.config import BeaconConfig
from kiosk.core.lifecycle import backoff_delays
from kiosk.core.records import BeaconState, Component, NearbyState
from kiosk.core.watchdog import LoopWatch

log = logging.getLogger("beacon.service")

CLOCK_POLL_S = 5.0    # how often to look again at an untrusted clock
HEALTH_CHECK_S = 5.0  # how often to ask an idle controller whether it is still there
SCAN_MARGIN_MS = 2000  # a scan never runs into an ID change

ADVERTISING, WAITING_FOR_CLOCK, ADAPTER_MISSING, ERROR, STOPPED = (
    BeaconState.ADVERTISING, BeaconState.WAITING_FOR_CLOCK, BeaconState.ADAPTER_MISSING, BeaconState.ERROR,
    BeaconState.STOPPED)


@dataclass
class BeaconClock:
    """Wall clock and its trustworthiness; tests inject one shifted next to a slot boundary."""

    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    synced: Callable[[], bool] = field(default=lambda: _kernel_synced())


def _kernel_synced() -> bool:
    from kiosk.core.clock import kernel_clock_synced

    return kernel_clock_synced()


StatusSink = Callable[[str, str, dict[str, Any]], None]


def store_status_sink(state_dir: Path) -> StatusSink:
    """Writes status rows through kiosk.core.store (opened lazily, in the thread that reports)."""
    holder: dict[str, Any] = {}

    def report(component: str, state: str, detail: dict[str, Any]) -> None:
        from kiosk.core.store import Store

        try:
            if "store" not in holder:
                holder["store"] = Store.open(state_dir)
            holder["store"].set_status(component, state, detail)
        except Exception as exc:  # noqa: BLE001 - status is best effort; advertising is not
            log.warning("could not record %s status: %s", component, exc)
    return report


class BeaconService:
    def __init__(self, config: BeaconConfig, state_dir: Path, *, transport: str | None = None,
                 assume_synced: bool = False, clock: BeaconClock | None = None,
                 status: StatusSink | None = None, stop: threading.Event | None = None,
                 transport_factory: Callable[[str], Transport] | None = None,
                 scanner: Scanner | None = None, watch: LoopWatch | None = None):
        self.config = config
        self.watch = watch or LoopWatch()  # READY/WATCHDOG to systemd (kiosk/core/watchdog.py)
        self.state_dir = state_dir
        self.spec = transport or config.transport
        self.assume_synced = assume_synced
        self.clock = clock or BeaconClock()
        self.status = status or store_status_sink(state_dir)
        self.stop = stop or threading.Event()
        self.transport_factory = transport_factory or (lambda spec: open_transport(spec, self.clock.now_ms))
        self.scanner = scanner if scanner is not None else open_scanner(config.scanner, self.clock.now_ms)
        self.counter = NearbyCounter(int(config.nearby_window_s * 1000), config.rssi_threshold)
        self.interval = interval_units(config.interval_ms)
        self.base: BaseKey | None = None
        self.controller: Controller | None = None
        self.version: LocalVersion | None = None
        self.slot: tuple[Any, int] | None = None
        self.address = b""
        self.address_slot: tuple[Any, int] | None = None
        self.current_id = b""
        self.failures = 0
        self.last_error = ""
        self.next_health = 0.0
        self.next_scan = 0.0
        self.last_report: tuple[str, dict[str, Any]] | None = None

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, seconds: float | None = None) -> int:
        """Advertise until stopped; 1 if a missing privilege makes advertising impossible."""
        deadline = time.monotonic() + seconds if seconds else None
        try:
            while not self.stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                wait = self.step()
                self.watch.beat(self._status_line())  # systemd's watchdog: pinged only when a step completes
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                self.watch.wait(self.stop, wait)
        except CapabilityMissing as exc:
            log.error("%s", exc)
            self._report(ERROR, {"error": str(exc), "transport": self.spec})
            return 1
        finally:
            self._drop_controller()
            if self.scanner is not None:
                self.scanner.close()
            if self.last_report and self.last_report[0] != ERROR:
                self._report(STOPPED, {"transport": self.spec})
            self.watch.stopping()
        return 0

    def _status_line(self) -> str:
        """systemd's STATUS= (shown by `systemctl status kiosk-beacon`)."""
        if self.last_report is None:
            return "starting"
        state, detail = self.last_report
        if state == ADVERTISING:
            return f"advertising slot {detail.get('slot')} of {detail.get('day')}"
        return f"{state}: {detail.get('error') or detail.get('reason') or ''}".rstrip(": ")

    def step(self) -> float:
        """Do what is due now; return how long to sleep before the next step."""
        now = self.clock.now_ms()
        if not (self.assume_synced or self.clock.synced()):
            self._drop_controller()
            self._report(WAITING_FOR_CLOCK, {"reason": "the kernel says the wall clock is not synchronised (NTP); "
                                             "use --assume-clock-synced or clock.assume_synced on a device with an RTC"})
            return CLOCK_POLL_S
        if self.base is None:
            self.base = load_or_create_base_key(self.state_dir, now)
        if now < self.base.day_start_ms:
            self._drop_controller()
            self._report(ERROR, {"error": f"the clock says {utc_day(now)}, before this beacon key was made "
                                          f"({self.base.day}); waiting for a correct clock"})
            return CLOCK_POLL_S
        try:
            if self.controller is None:
                self._connect()
            slot = (utc_day(now), slot_of(now))
            if slot != self.slot:
                self._program(now, slot)
            elif time.monotonic() >= self.next_health:
                self.controller.read_local_version()
                self.next_health = time.monotonic() + HEALTH_CHECK_S
        except AdapterMissing as exc:
            return self._failed(ADAPTER_MISSING, exc)
        except (HciError, ParameterError) as exc:
            return self._failed(ERROR, exc)
        self._maybe_scan(now)
        until_boundary = (slot_start_ms(self.clock.now_ms()) + SLOT_MS - self.clock.now_ms()) / 1000
        return max(0.0, min(until_boundary + 0.002, HEALTH_CHECK_S))

    # ---- controller ----------------------------------------------------------------------------
    def _connect(self) -> None:
        controller = Controller(self.transport_factory(self.spec))
        try:
            controller.reset()  # clears whatever bluetoothd or extended advertising left behind
            version = controller.read_local_version()
            adv_params(self.interval, ADV_NONCONN_IND, version.hci_version)  # refuse a bad interval before any advert
        except BaseException:
            controller.close()
            raise
        self.controller, self.version, self.slot = controller, version, None
        self.next_health = time.monotonic() + HEALTH_CHECK_S
        log.info("controller on %s: Bluetooth %s", self.spec, version.bluetooth)

    def _program(self, now: int, slot: tuple[Any, int]) -> None:
        """Stop, new address (phones rotate theirs with the ID), parameters, data, start."""
        assert self.controller is not None and self.version is not None and self.base is not None
        bluezone_id = id_at(self.base, now)
        if slot != self.address_slot:
            self.address, self.address_slot = non_resolvable_address(), slot
        ctrl = self.controller
        try:
            ctrl.set_adv_enable(False)
        except HciError as exc:
            if exc.status != 0x0C:  # "disallowed" = it was not advertising: fine
                raise
        ctrl.set_random_address(self.address)
        ctrl.set_adv_params(self.interval, self.version.hci_version)
        ctrl.set_adv_data(bluezone_advert(bluezone_id))
        ctrl.set_adv_enable(True)
        self.slot, self.current_id, self.failures, self.last_error = slot, bluezone_id, 0, ""
        self.next_health = time.monotonic() + HEALTH_CHECK_S
        log.info("advertising slot %d of %s: ID %s", slot[1], slot[0], bluezone_id.hex().upper())
        self._report(ADVERTISING, {
            "transport": self.spec, "controller": f"Bluetooth {self.version.bluetooth}",
            "day": slot[0].isoformat(), "slot": slot[1], "id": bluezone_id.hex().upper(),
            "address": ":".join(f"{b:02X}" for b in reversed(self.address)),
            "interval_ms": round(self.interval * 0.625, 3), "since_utc_ms": now,
        })

    def _failed(self, state: str, exc: Exception) -> float:
        self._drop_controller()
        delay = backoff_delays(0.5, self.config.retry_max_s)(self.failures)
        self.failures += 1
        if str(exc) != self.last_error:  # say it once; repeats of the same fault are debug noise
            log.warning("%s: %s; retrying with backoff (at most %g s apart)", state, exc, self.config.retry_max_s)
        else:
            log.debug("%s again: %s; retrying in %.1f s", state, exc, delay)
        self.last_error = str(exc)
        self._report(state, {"error": str(exc), "transport": self.spec, "attempts": self.failures,
                             "retry_in_s": round(delay, 1)})
        return delay

    def _drop_controller(self) -> None:
        if self.controller is None:
            return
        try:
            self.controller.set_adv_enable(False)
        except (AdapterMissing, HciError):
            pass
        self.controller.close()
        self.controller, self.slot = None, None

    # ---- nearby phones -------------------------------------------------------------------------
    def _maybe_scan(self, now: int) -> None:
        if self.scanner is None or time.monotonic() < self.next_scan:
            return
        if slot_start_ms(now) + SLOT_MS - now < self.config.scan_seconds * 1000 + SCAN_MARGIN_MS:
            return  # too close to an ID change: scan after it
        self.next_scan = time.monotonic() + self.config.scan_every_s
        try:
            sightings = self.scanner.scan(self.config.scan_seconds)
        except ScanError as exc:
            log.warning("nearby scan failed: %s", exc)
            self.status(Component.NEARBY, NearbyState.ERROR, {"error": str(exc)})
            return
        for sighting in sightings:
            self.counter.add(sighting, frozenset({self.current_id}))
        end = self.clock.now_ms()
        self.status(Component.NEARBY, NearbyState.OK, {"phones": self.counter.count(end), "window_s": self.config.nearby_window_s,
                                     "rssi_threshold": self.config.rssi_threshold, "scanned_utc_ms": end})
        self.slot = None if self.slot is None else (self.slot[0], -1)  # re-program: scanning may stop adverts

    def _report(self, state: str, detail: dict[str, Any]) -> None:
        if self.last_report == (state, detail):
            return
        self.last_report = (state, detail)
        self.status(Component.BEACON, state, detail)
