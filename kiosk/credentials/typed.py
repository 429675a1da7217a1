"""Credentials that were not scanned: an ID number typed on the screen's keypad, and a companion.

A typed 12-digit CCCD number gets the checks its QR code gets on the number (province code, century
and gender digit, birth-year digits, a birth year that is not in the future) and the same subject,
so a visitor who scanned their card and is then typed in by staff is "already checked in". An old
9-digit CMND number has no structure to check, so it needs the birth year, and both are the subject.

A companion is a child without an ID of their own, checked in with an adult: its subject names the
adult's check-in, which is how the health authority finds the family.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.credentials.base import ACCEPTED, Credential, rejected
from kiosk.credentials.cccd import VIETNAM

CCCD_KIND = "cccd"
CMND_KIND = "cmnd"
COMPANION_KIND = "companion"
CCCD_DIGITS = 12
CMND_DIGITS = 9
EARLIEST_BIRTH_YEAR = 1900


def _digits(text: str) -> str:
    return "".join(text.split())


def _birth_year(text: str, this_year: int) -> int | None:
    text = _digits(text)
    if len(text) != 4 or not text.isascii() or not text.isdigit():
        return None
    year = int(text)
    return year if EARLIEST_BIRTH_YEAR <= year <= this_year else None


def masked_number(number: str) -> str:
    """What the screen shows of a typed number: the last three digits, enough for staff to confirm."""
    return "•" * max(0, len(number) - 3) + number[-3:]


def typed_credential(number: str, birth_year: str, now_utc_ms: int) -> Credential:
    """The credential for a typed CCCD (12 digits) or old CMND (9 digits plus the birth year)."""
    number = _digits(number)
    this_year = datetime.fromtimestamp(now_utc_ms / 1000, tz=VIETNAM).year
    if not number.isascii() or not number.isdigit() or len(number) not in (CCCD_DIGITS, CMND_DIGITS):
        return rejected(CCCD_KIND, "invalid-cccd", field="number", source="typed")
    year = _birth_year(birth_year, this_year) if birth_year.strip() else None
    if birth_year.strip() and year is None:
        return rejected(CCCD_KIND, "invalid-cccd", field="birth-year", source="typed")
    if len(number) == CMND_DIGITS:
        if year is None:  # nothing in a CMND number can be checked: the birth year is required
            return rejected(CMND_KIND, "invalid-cccd", field="birth-year", source="typed")
        return Credential(CMND_KIND, ACCEPTED, "ok", subject=f"{number}|{year}", display_name=masked_number(number),
                          facts={"source": "typed"})
    if not 1 <= int(number[:3]) <= 96:
        return rejected(CCCD_KIND, "invalid-cccd", field="province", source="typed")
    century_digit = int(number[3])
    implied = EARLIEST_BIRTH_YEAR + (century_digit // 2) * 100 + int(number[4:6])
    if implied > this_year:
        return rejected(CCCD_KIND, "invalid-cccd", field="number-birth-year", source="typed")
    if year is not None and year != implied:
        return rejected(CCCD_KIND, "invalid-cccd", field="number-birth-year", source="typed")
    return Credential(CCCD_KIND, ACCEPTED, "ok", subject=number, display_name=masked_number(number),
                      facts={"source": "typed"})


def companion_credential(adult_checkin_id: str) -> Credential:
    """A child checked in with an adult: sealed, the subject says whose check-in they came with."""
    return Credential(COMPANION_KIND, ACCEPTED, "ok", subject=f"companion-of:{adult_checkin_id}",
                      facts={"companion_of": adult_checkin_id})
