"""What the screen shows for each outcome and each system problem: colour, icon, words and sound.

Every state differs in all four, so nobody depends on colour or sight alone. Reason codes come from
the credential formats (kiosk/credentials); a code this table does not know yet still gets a clear
"not accepted" screen with the code in small print for staff, never a crash or a blank.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from kiosk.credentials import Credential
from kiosk.events import ACCEPTED, DUPLICATE, ERROR, PROVISIONING, REJECTED, Outcome
from kiosk.screen.text import clean

log = logging.getLogger("kiosk.screen")

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
DARK: RGB = (20, 20, 20)

# The states `kiosk screenshot --state` accepts, in the order the docs list them.
SCREENSHOT_STATES = ("ready", "accepted", "duplicate", "unrecognized", "certificate-valid", "expired", "untrusted",
                     "camera-lost", "storage-full", "clock-unset", "provisioning", "maintenance", "out-of-service")


@dataclass(frozen=True)
class Look:
    background: RGB
    ink: RGB
    icon: str


LOOKS: dict[str, Look] = {
    "ready": Look((16, 32, 56), WHITE, "qr"),
    "accepted": Look((27, 122, 52), WHITE, "tick"),
    "certificate-valid": Look((0, 100, 90), WHITE, "shield-tick"),
    "duplicate": Look((25, 88, 168), WHITE, "repeat"),
    "unrecognized": Look((183, 28, 28), WHITE, "qr-cross"),
    "rejected": Look((136, 14, 79), WHITE, "cross"),
    "expired": Look((240, 160, 0), DARK, "hourglass"),
    "untrusted": Look((94, 37, 150), WHITE, "shield-cross"),
    "camera-lost": Look((69, 90, 100), WHITE, "camera-off"),
    "storage-full": Look((191, 54, 12), WHITE, "storage"),
    "clock-unset": Look((255, 200, 40), DARK, "clock"),
    "not-provisioned": Look((93, 64, 55), WHITE, "pin-off"),
    "out-of-service": Look((55, 71, 79), WHITE, "staff"),
    "error": Look((66, 66, 66), WHITE, "warning"),
    "provisioning": Look((40, 53, 147), WHITE, "pin"),
    "maintenance": Look((38, 50, 56), WHITE, "gear"),
}

# reason codes (kiosk/credentials) grouped by the screen they lead to
EXPIRED_REASONS = {"expired", "not-yet-valid"}
UNTRUSTED_REASONS = {"untrusted-signer", "invalid-signature", "invalid-schema", "wrong-key-usage", "untrusted",
                     "signature-invalid", "unknown-signer"}
UNRECOGNIZED_REASONS = {"not-recognised", "not-recognized", "empty", "too-large", "malformed", "unreadable-frame"}
NOT_SET_UP_REASONS = {"not-provisioned", "no-authority-key"}  # the device lacks a venue or the authority's key
CERTIFICATE_KINDS = {"hc1"}
PROVISIONING_KIND = "provisioning"


@dataclass(frozen=True)
class View:
    """One screenful: the state, catalogue keys for its words, and how long it stays.

    ``name`` is the masked display name: it lives in memory only, as long as the view is shown.
    ``seconds`` None means the view stays until its cause clears (a problem) or staff act.
    """

    state: str
    title: str
    lines: tuple[tuple[str, dict[str, Any]], ...] = ()
    name: str = field(default="", repr=False)
    seconds: float | None = None
    credential: Credential | None = field(default=None, repr=False, compare=False)
    code: str = ""

    @property
    def look(self) -> Look:
        return LOOKS[self.state]


def local_zone() -> dt.tzinfo:
    """Asia/Ho_Chi_Minh; a fixed UTC+7 when tzdata is missing (Vietnam has had no DST since 1975)."""
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python < 3.9
        return dt.timezone(dt.timedelta(hours=7), "ICT")
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return dt.timezone(dt.timedelta(hours=7), "ICT")


LOCAL_ZONE = local_zone()


def local_time(utc_ms: int, zone: dt.tzinfo = LOCAL_ZONE) -> dt.datetime:
    return dt.datetime.fromtimestamp(utc_ms / 1000, tz=zone)


def _direction(direction: str) -> str:
    return "exit" if direction == "exit" else "entry"


def _reason_line(reason: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    from kiosk.screen.catalogue import CATALOGUE

    return ((f"reason.{reason}", {}),) if f"reason.{reason}" in CATALOGUE else ()


def _kind_line(kind: str) -> tuple[str, dict[str, Any]]:
    from kiosk.screen.catalogue import CATALOGUE

    return (f"kind.{kind}" if f"kind.{kind}" in CATALOGUE else "kind.other", {})


def view_for_outcome(outcome: Outcome, result_seconds: float, problem_seconds: float) -> View:
    """The screen for one outcome event; unknown events and reasons get a generic refusal."""
    event, reason, kind = outcome.event, outcome.reason or "", outcome.kind or ""
    at = {"time": local_time(outcome.at_utc_ms).strftime("%H:%M")}
    direction = _direction(outcome.direction)
    credential = outcome.credential
    name = credential.display_name if credential is not None else ""  # masked by the format; only when genuine
    code = clean(reason or event)[:48]
    if event == PROVISIONING or (event == ACCEPTED and kind == PROVISIONING_KIND):
        return View("provisioning", "provisioning.title", credential=credential)
    if event == ACCEPTED:
        certificate = kind in CERTIFICATE_KINDS
        return View("certificate-valid" if certificate else "accepted",
                    "certificate-valid.title" if certificate else f"accepted.{direction}",
                    ((() if certificate else (_kind_line(kind),)) +
                     (("result.time", at), (f"result.direction.{direction}", {}))),
                    name=name, seconds=result_seconds)
    if event == DUPLICATE:
        return View("duplicate", "duplicate.title", (("duplicate.detail", {}), ("result.time", at)),
                    name=name, seconds=result_seconds)
    if event == REJECTED and kind == PROVISIONING_KIND:  # a setup code that is forged, stale or damaged
        return View("untrusted", "provisioning.refused", _reason_line(reason) + (("rejected.code", {"code": code}),),
                    seconds=problem_seconds, code=code)
    if event == REJECTED and reason in EXPIRED_REASONS:
        title = "not-yet-valid.title" if reason == "not-yet-valid" else "expired.title"
        return View("expired", title, _reason_line(reason) + (("expired.detail", {}),), name=name,
                    seconds=problem_seconds)
    if event == REJECTED and reason in UNTRUSTED_REASONS:
        return View("untrusted", "untrusted.title", _reason_line(reason) + (("untrusted.detail", {}),),
                    seconds=problem_seconds)
    if event == REJECTED and reason in UNRECOGNIZED_REASONS:
        return View("unrecognized", "unrecognized.title", _reason_line(reason) + (("unrecognized.detail", {}),),
                    seconds=problem_seconds)
    if event == ERROR and reason == "storage-unavailable":
        return View("storage-full", "storage-full.title", (("storage-full.detail", {}),), seconds=problem_seconds)
    if event == ERROR and reason in NOT_SET_UP_REASONS:
        return View("not-provisioned", "not-provisioned.title",
                    (("not-provisioned.detail", {}), ("rejected.code", {"code": code})), seconds=problem_seconds,
                    code=code)
    if event == ERROR:
        return View("error", "error.title", (("error.detail", {}), ("rejected.code", {"code": code})),
                    seconds=problem_seconds, code=code)
    if event != REJECTED:
        log.warning("screen: unknown outcome event %r shown as a refusal", clean(event)[:48])
    return View("rejected", "rejected.title",
                _reason_line(reason) + (("rejected.detail", {}), ("rejected.code", {"code": code})),
                seconds=problem_seconds, code=code)


CAMERA_LOST = View("camera-lost", "camera-lost.title", (("camera-lost.detail", {}),))
# banners: a lasting problem shown under the ready screen, which still scans
STORAGE_BANNER = View("storage-full", "storage-full.banner")
CLOCK_BANNER = View("clock-unset", "clock-unset.banner")
# the kiosk cannot record check-ins: addressed to the visitor; the reason is on the maintenance page
OUT_OF_SERVICE = View("out-of-service", "out-of-service.title", (("out-of-service.detail", {}),))
OUT_OF_SERVICE_REASONS = ("not-provisioned", "no-authority-key", "storage-read-only")
