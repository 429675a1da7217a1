"""Correct the time of check-ins made before the clock was synchronised.

A Pi has no real-time clock: after a power cut it boots with the time it last saved (fake-hwclock)
or 1970, and only NTP puts it right, which needs the network the kiosk may not have. Check-ins made
meanwhile are stored with ``clock_synced = 0`` plus CLOCK_MONOTONIC and the boot id (kiosk/core/clock.py).

Once the clock is synchronised, a check-in from the same boot gets its true time back:
``utc = now_utc - (now_monotonic - row_monotonic)``, because CLOCK_MONOTONIC counts steadily from
boot whatever NTP does to the wall clock. The old reading is kept in ``utc_ms_unsynced`` and the
row becomes ``clock_synced = 1``. A check-in from an earlier boot cannot be corrected (the monotonic
clock restarted with the boot) and stays marked ``clock_synced = 0`` for the authority to judge; so
does one the uploader already sent, whose upstream copy has the old time (kiosk/core/store.py says why).
"""

from __future__ import annotations

import logging

from kiosk.core.clock import Instant
from kiosk.core.store import Store

log = logging.getLogger("kiosk.clock")


def correct_checkin_times(store: Store, now: Instant) -> int:
    """Correct this boot's unsynchronised check-ins from a synchronised instant; returns how many."""
    if not now.clock_synced:
        raise ValueError("correcting times needs a synchronised clock reading")
    fixed = store.correct_unsynced_times(now.boot_id, now.utc_ms, now.monotonic_ns)
    if fixed:
        log.info("clock synchronised: corrected the time of %d check-in(s) made before", fixed)
    return fixed


class ClockWatch:
    """Notices the clock becoming synchronised and runs the correction then (twice, to catch a
    check-in whose instant was read just before the sync but committed just after)."""

    RUNS = 2

    def __init__(self) -> None:
        self.synced: bool | None = None
        self._runs = 0

    def observe(self, store: Store, now: Instant) -> int:
        if now.clock_synced != self.synced:
            self.synced = now.clock_synced
            if not now.clock_synced:
                log.warning("clock not synchronised: check-ins are marked until it is")
                self._runs = 0
        if not now.clock_synced or self._runs >= self.RUNS:
            return 0
        self._runs += 1
        return correct_checkin_times(store, now)
