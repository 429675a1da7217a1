"""The QR code printed on the chip-based citizen ID card (CCCD): plain UTF-8 text, unsigned.

``<12-digit number>|<old 9- or 12-digit CMND or empty>|<full name>|<DOB ddmmyyyy>|<Nam or Nữ>|
<permanent address>|<issue date ddmmyyyy>`` and sometimes more fields. Nothing is signed, so the
fields are checked against each other: the number's province code, century-and-gender digit and
birth year must agree with the date of birth and gender, and the dates must be real and past.

The subject is the 12-digit number (what the health authority traces by). The screen gets a masked
name (family name, then initials: "Nguyễn V. A.") so the queue behind cannot read who checked in.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone

from kiosk.core.frozen import Frozen, frozen
from kiosk.credentials.base import ACCEPTED, Credential, FormatContext, masked_name, rejected

KIND = "cccd"
MIN_FIELDS = 7
MAX_NAME_CHARS = 100
MAX_FIELD_CHARS = 300

_DETECT = re.compile(rb"[0-9]{9,12}\|")
_NUMBER = re.compile(r"[0-9]{12}")
_OLD_ID = re.compile(r"(?:[0-9]{9}|[0-9]{12})?")
_DATE = re.compile(r"[0-9]{8}")
# Names: letters and combining marks, separated by spaces; apostrophes and hyphens occur in the
# names of some ethnic groups (e.g. "H'Hen Niê"). Digits, punctuation, markup: refused.
_NAME_EXTRA = {" ", "'", "\u2019", "-"}
_GENDERS = {"nam": False, "nữ": True, "nu": True}  # value: female?
# Card dates are Vietnamese calendar days (UTC+7, no daylight saving): a card issued this morning
# must not look issued "tomorrow" to a UTC clock.
VIETNAM = timezone(timedelta(hours=7))


class CccdError(ValueError):
    """A card payload whose ``field`` is wrong; the message never contains the field's value."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


@frozen
class CccdCard(Frozen):
    """The fields of a citizen ID card's QR code, as read and checked."""

    number: str
    old_id: str
    name: str
    birth_date: date
    female: bool
    issue_date: date


def _date(text: str, field: str) -> date:
    if not _DATE.fullmatch(text):
        raise CccdError(field)
    try:
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        raise CccdError(field) from None


def _has_hidden_characters(text: str) -> bool:
    """Control, format (zero-width, bidi override), private-use or unassigned code points."""
    return any(unicodedata.category(ch)[0] == "C" for ch in text)


def _name(text: str) -> str:
    name = " ".join(text.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise CccdError("name")
    for ch in name:
        if ch not in _NAME_EXTRA and unicodedata.category(ch)[0] not in "LM":
            raise CccdError("name")
    if not any(unicodedata.category(ch)[0] == "L" for ch in name):
        raise CccdError("name")
    return name


def parse_card(payload: bytes, today: date) -> CccdCard:
    """Check every field of a CCCD payload; raises CccdError naming the first field that is wrong."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CccdError("encoding") from None
    text = unicodedata.normalize("NFC", text)
    if _has_hidden_characters(text):
        raise CccdError("characters")
    fields = text.split("|")
    if len(fields) < MIN_FIELDS:
        raise CccdError("fields")
    if any(len(f) > MAX_FIELD_CHARS for f in fields):
        raise CccdError("length")
    number, old_id, raw_name, raw_dob, raw_gender, _address, raw_issued = fields[:MIN_FIELDS]
    if not _NUMBER.fullmatch(number):
        raise CccdError("number")
    if not 1 <= int(number[:3]) <= 96:
        raise CccdError("province")
    if not _OLD_ID.fullmatch(old_id):
        raise CccdError("old-id")
    name = _name(raw_name)
    birth = _date(raw_dob, "birth-date")
    if birth.year < 1900 or birth > today:
        raise CccdError("birth-date")
    gender = raw_gender.strip().casefold()
    if gender not in _GENDERS:
        raise CccdError("gender")
    female = _GENDERS[gender]
    code = int(number[3])
    if 1900 + (code // 2) * 100 != birth.year // 100 * 100 or int(number[4:6]) != birth.year % 100:
        raise CccdError("number-birth-year")
    if bool(code % 2) != female:
        raise CccdError("number-gender")
    issued = _date(raw_issued, "issue-date")
    if issued < birth or issued > today:
        raise CccdError("issue-date")
    return CccdCard(number, old_id, name, birth, female, issued)


def mask_name(name: str) -> str:
    """Vietnamese order, family name first: "NGUYỄN VĂN AN" -> "Nguyễn V. A."."""
    family, _, given = name.partition(" ")
    return masked_name(family, given)


def _today(ctx: FormatContext) -> date:
    return datetime.fromtimestamp(ctx.now_utc_ms / 1000, tz=VIETNAM).date()


class CccdFormat:
    """Claims payloads that start like a card number followed by '|'; then checks every field."""

    kind = KIND

    def detect(self, payload: bytes) -> bool:
        return _DETECT.match(payload) is not None

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        try:
            card = parse_card(payload, _today(ctx))
        except CccdError as exc:
            return rejected(KIND, "invalid-cccd", field=exc.field)
        return Credential(KIND, ACCEPTED, "ok", subject=card.number, display_name=mask_name(card.name))
