"""Where a check-in happened in time: wall clock, monotonic clock, boot id, and whether to trust the wall clock.

A Pi has no real-time clock: until NTP synchronises, the wall clock may be days off. Every check-in
therefore also carries CLOCK_MONOTONIC and the kernel's boot id, so its time can be corrected later.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import time
from pathlib import Path

from kiosk.core.frozen import Frozen, frozen

_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def local_zone() -> dt.tzinfo:
    """Asia/Ho_Chi_Minh; a fixed UTC+7 when tzdata is missing (Vietnam has had no DST since 1975).

    Read on first use: ``kiosk checkin`` never needs it, and zoneinfo costs every command's start."""
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python < 3.9
        return dt.timezone(dt.timedelta(hours=7), "ICT")
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return dt.timezone(dt.timedelta(hours=7), "ICT")


_zone = functools.cache(local_zone)


def __getattr__(name: str) -> dt.tzinfo:
    """``LOCAL_ZONE``, made on first use (PEP 562)."""
    if name == "LOCAL_ZONE":
        return _zone()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def local_time(utc_ms: int, zone: dt.tzinfo | None = None) -> dt.datetime:
    return dt.datetime.fromtimestamp(utc_ms / 1000, tz=zone or _zone())


# Asia/Ho_Chi_Minh has been UTC+7 without DST since 13 June 1975: from 1976 on, the local midnight is
# plain arithmetic, the same answer as zoneinfo's (tests/test_day_count.py compares them day by day)
# without loading zoneinfo (and the sysconfig it reads) into `kiosk status`.
_FIXED_SINCE_MS = 189_302_400_000  # 1976-01-01T00:00Z
_UTC7_MS = 7 * 3_600_000
_DAY_MS = 86_400_000


def local_day_start_ms(utc_ms: int, zone: dt.tzinfo | None = None) -> int:
    """The UTC milliseconds of the local midnight that began the day ``utc_ms`` falls in ("today" for a venue)."""
    if zone is None and utc_ms >= _FIXED_SINCE_MS:
        return (utc_ms + _UTC7_MS) // _DAY_MS * _DAY_MS - _UTC7_MS
    midnight = local_time(utc_ms, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown-boot"


def kernel_clock_synced() -> bool:
    """True when the kernel says an NTP client has disciplined the clock (adjtimex != TIME_ERROR)."""
    import ctypes  # here: a command on a kiosk with clock.assume_synced never needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex is 208 bytes on 64-bit Linux; modes = 0 reads only
        return libc.adjtimex(timex) not in (-1, _TIME_ERROR)
    except (OSError, AttributeError):
        return False


@frozen
class Instant(Frozen):
    """One reading of the clocks: wall time, monotonic time, the boot it belongs to, whether NTP vouched for it."""

    utc_ms: int
    monotonic_ns: int
    boot_id: str
    clock_synced: bool


class Clock:
    """The clock the pipeline reads; tests inject one with fixed answers."""

    def __init__(self, assume_synced: bool = False):
        self.assume_synced = assume_synced
        self._boot_id = boot_id()

    def now(self) -> Instant:
        return Instant(
            utc_ms=time.time_ns() // 1_000_000,
            monotonic_ns=time.monotonic_ns(),
            boot_id=self._boot_id,
            clock_synced=self.assume_synced or kernel_clock_synced(),
        )


def new_checkin_id() -> str:
    """A random (version 4) UUID, as uuid.uuid4() makes it; the uuid module (and the platform module it
    loads) would cost ``kiosk checkin`` more than the rest of the check-in."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_instant_ms(text: str) -> int:
    """Unix milliseconds from digits, or from ISO 8601 ('Z' allowed; no zone means UTC). Raises ValueError."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def instant_arg(text: str) -> int:
    """``parse_instant_ms`` as an argparse type: a bad time is a usage error naming the value."""
    try:
        return parse_instant_ms(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither ISO 8601 nor milliseconds") from None
