"""What the screen shows for each outcome and each system problem: colour, icon, words and sound.

Every state differs in all four, so nobody depends on colour or sight alone. Reason codes come from
the credential formats (kiosk/credentials); a visitor reads a short reason in their own words (a
general one for a code this table does not know yet), never the code: that goes to the maintenance
page (``View.code``), for staff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kiosk.core.clock import local_time
from kiosk.credentials import Credential
from kiosk.events import ACCEPTED, DUPLICATE, ERROR, PROVISIONING, REJECTED, Outcome
from kiosk.screen.text import clean

log = logging.getLogger("kiosk.screen")

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
DARK: RGB = (20, 20, 20)

# The states `kiosk screenshot --state` accepts, in the order the docs list them.
SCREENSHOT_STATES = ("ready", "accepted", "duplicate", "unrecognized", "certificate-valid", "expired", "untrusted",
                     "camera-lost", "storage-full", "clock-unset", "provisioning", "maintenance", "manual-entry",
                     "companion", "starting", "out-of-service")
# screenshot names that show another state's look: a companion's check-in is an accepted one
SCREENSHOT_LOOK = {"companion": "accepted"}


MIN_CONTRAST = 4.5  # WCAG 2's minimum contrast ratio for text: every text colour on its background


def luminance(colour: RGB) -> float:
    """Relative luminance of an sRGB colour (WCAG 2 definition)."""
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


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
    "manual-entry": Look((21, 67, 96), WHITE, "keypad"),
    "starting": Look((30, 41, 59), WHITE, "power"),
}

# reason codes (kiosk/credentials) grouped by the screen they lead to
EXPIRED_REASONS = {"expired", "not-yet-valid"}
UNTRUSTED_REASONS = {"untrusted-signer", "invalid-signature", "signer-not-valid", "invalid-schema", "wrong-key-usage",
                     "untrusted", "signature-invalid", "unknown-signer"}
UNRECOGNIZED_REASONS = {"not-recognised", "not-recognized", "empty", "too-large", "malformed", "unreadable-frame"}
NOT_SET_UP_REASONS = {"not-provisioned", "no-authority-key"}  # the device lacks a venue or the authority's key
CERTIFICATE_KINDS = {"hc1"}
PROVISIONING_KIND = "provisioning"
COMPANION_KIND = "companion"


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
    actions: tuple[tuple[str, str], ...] = ()  # touch buttons: (name, catalogue key of the label)
    link: str = ""  # the adult's check-in id a companion would be linked to

    @property
    def look(self) -> Look:
        return LOOKS[self.state]


def _direction(direction: str) -> str:
    return "exit" if direction == "exit" else "entry"


def _reason_line(reason: str, fallback: bool = False) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The visitor's sentence for a reason code; with ``fallback``, a general one for a code it lacks.

    The code itself never reaches a visitor's screen: it goes to the maintenance page (View.code)."""
    from kiosk.screen.catalogue import CATALOGUE

    if f"reason.{reason}" in CATALOGUE:
        return ((f"reason.{reason}", {}),)
    return (("reason.other", {}),) if fallback else ()


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
    if event == ACCEPTED and kind == COMPANION_KIND:
        adult = str(credential.facts.get("companion_of", "")) if credential is not None else ""
        return View("accepted", "companion.title", (("result.time", at), (f"result.direction.{direction}", {})),
                    seconds=result_seconds, actions=(("companion", "companion.add"),) if adult else (), link=adult)
    if event == ACCEPTED:
        certificate = kind in CERTIFICATE_KINDS
        return View("certificate-valid" if certificate else "accepted",
                    f"certificate-valid.{direction}" if certificate else f"accepted.{direction}",
                    ((() if certificate else (_kind_line(kind),)) +
                     (("result.time", at), (f"result.direction.{direction}", {}))),
                    name=name, seconds=result_seconds,
                    actions=(("companion", "companion.add"),) if outcome.checkin_id else (),
                    link=outcome.checkin_id or "")
    if event == DUPLICATE:
        return View("duplicate", "duplicate.title", (("duplicate.detail", {}), ("result.time", at)),
                    name=name, seconds=result_seconds)
    if event == REJECTED and kind == PROVISIONING_KIND:  # a setup code that is forged, stale or damaged
        return View("untrusted", "provisioning.refused", _reason_line(reason, fallback=True),
                    seconds=problem_seconds, code=code)
    if event == REJECTED and reason in EXPIRED_REASONS:
        title = "not-yet-valid.title" if reason == "not-yet-valid" else "expired.title"
        return View("expired", title, _reason_line(reason) + (("expired.detail", {}),), name=name,
                    seconds=problem_seconds, code=code)
    if event == REJECTED and reason in UNTRUSTED_REASONS:
        return View("untrusted", "untrusted.title", _reason_line(reason) + (("untrusted.detail", {}),),
                    seconds=problem_seconds, code=code)
    if event == REJECTED and reason in UNRECOGNIZED_REASONS:
        return View("unrecognized", "unrecognized.title", _reason_line(reason) + (("unrecognized.detail", {}),),
                    seconds=problem_seconds, code=code)
    if event == ERROR and reason == "storage-unavailable":
        return View("storage-full", "storage-full.title", (("storage-full.detail", {}),), seconds=problem_seconds,
                    code=code)
    if event == ERROR and reason in NOT_SET_UP_REASONS:
        return View("not-provisioned", "not-provisioned.title", _reason_line(reason) + (("rejected.detail", {}),),
                    seconds=problem_seconds, code=code)
    if event == ERROR:
        return View("error", "error.title", (("error.detail", {}),), seconds=problem_seconds, code=code)
    if event != REJECTED:
        log.warning("screen: unknown outcome event %r shown as a refusal", clean(event)[:48])
    return View("rejected", "rejected.title", _reason_line(reason, fallback=True) + (("rejected.detail", {}),),
                seconds=problem_seconds, code=code)


CAMERA_LOST = View("camera-lost", "camera-lost.title", (("camera-lost.detail", {}),))
STARTING = View("starting", "starting.title", (("starting.detail", {}),))
# banners: a lasting problem shown under the ready screen, which still scans
STORAGE_BANNER = View("storage-full", "storage-full.banner")
CLOCK_BANNER = View("clock-unset", "clock-unset.banner")
# the kiosk cannot record check-ins: addressed to the visitor; the reason is on the maintenance page
OUT_OF_SERVICE = View("out-of-service", "out-of-service.title", (("out-of-service.detail", {}),))
OUT_OF_SERVICE_REASONS = ("not-provisioned", "no-authority-key", "storage-read-only")
