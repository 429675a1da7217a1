"""Vietnam's local time for people: what the console shows and reads, and the CSV's timestamps.

Storage keeps UTC milliseconds; a district health officer thinks in Asia/Ho_Chi_Minh (UTC+07:00, no
daylight saving since 1975), so every time a person reads or types goes through here.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:
    ZONE: dt.tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # a system without tzdata: the same offset, exact for every date since 1975
    ZONE = dt.timezone(dt.timedelta(hours=7), "ICT")
DAY_MS = 86_400_000


def local(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, ZONE)


def iso_local(ms: int | None) -> str:
    """ISO 8601 with the +07:00 offset and milliseconds, e.g. 2026-12-01T08:30:00.250+07:00."""
    return "" if ms is None else local(ms).isoformat(timespec="milliseconds")


def shown(ms: int | None) -> str:
    """Short form for a page: 2026-12-01 08:30:00."""
    return "" if ms is None else local(ms).strftime("%Y-%m-%d %H:%M:%S")


LATEST_MS = 253_402_128_000_000  # 9999-12-30: any later, and the local date would not fit a datetime


def checked_ms(ms: int) -> int:
    """``ms`` if it is a time this module can show (1970 to 9999), else ValueError."""
    if not 0 <= ms <= LATEST_MS:
        raise ValueError("time out of range")
    return ms


def parse_local_ms(text: str) -> int:
    """Milliseconds from ISO 8601; a time without an offset is Vietnam's local time. Raises ValueError."""
    text = text.strip()
    if not text or len(text) > 40:
        raise ValueError("not a time")
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZONE)
    return checked_ms(int(moment.timestamp() * 1000))


def input_value(ms: int) -> str:
    """The value of an <input type="datetime-local">: local time to the minute."""
    return local(ms).strftime("%Y-%m-%dT%H:%M")


def day_start_ms(ms: int, days_back: int = 0) -> int:
    """Local midnight of the day holding ``ms``, ``days_back`` days earlier."""
    day = local(ms).date() - dt.timedelta(days=days_back)
    return int(dt.datetime.combine(day, dt.time(), ZONE).timestamp() * 1000)


def week_start_ms(ms: int) -> int:
    """Local midnight of the Monday of the week holding ``ms``."""
    return day_start_ms(ms, local(ms).weekday())


def utc_offset_ms() -> int:
    """The zone's fixed offset, for grouping check-ins by local day in SQL."""
    return int(dt.datetime.now(ZONE).utcoffset().total_seconds() * 1000)


def local_instant_arg(text: str) -> int:
    """An argparse type for operator commands: milliseconds, or ISO 8601 where no offset means
    Vietnam's local time (as on the console's pages)."""
    import argparse

    try:
        return checked_ms(int(text)) if text.strip().isdigit() else parse_local_ms(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time or milliseconds between 1970 and 9999"
                                         ) from None
