"""What every payload format yields: one credential with a verdict a visitor can understand."""

from __future__ import annotations

import unicodedata
from dataclasses import field
from typing import Any, Protocol

from kiosk.core.frozen import Frozen, frozen

ACCEPTED = "accepted"
REJECTED = "rejected"
# The alphabet of Base45 (RFC 9285), the text layer of vaccine certificates (hc1.py; the registry's
# first look at a payload uses it too)
BASE45_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

# Reason codes: stable strings that the screen's catalogue translates and integrations may match on.
# docs/credentials.md explains each one; a test keeps that list and this one equal.
REASONS = {
    "ok": "accepted",
    "empty": "the code holds nothing",
    "too-large": "more bytes than any QR code holds",
    "not-recognised": "no known format (and opaque tokens are not accepted)",
    "malformed": "a known format, damaged or forged at some layer (see facts.layer)",
    "invalid-cccd": "a citizen ID card code whose fields do not agree (see facts.field)",
    "expired": "valid once, past its expiry now",
    "not-yet-valid": "issued in the future by this device's clock",
    "untrusted-signer": "signed by a key the trust list does not hold",
    "invalid-signature": "the signature does not verify with the signer's key",
    "signer-not-valid": "the signer's own certificate was not valid when it signed this one",
    "invalid-schema": "signed, but a field the check-in reads (names, birth date, one entry) is missing or malformed",
    "wrong-key-usage": "the signer may not sign this kind of certificate",
    "unreadable-frame": "the camera frame itself could not be decoded",
}


@frozen
class Credential(Frozen):
    """The outcome of reading one payload.

    ``subject`` is the identity the health authority needs; it never leaves memory in clear.
    ``display_name`` is already masked for the screen and also stays in memory only.
    ``reason`` is a stable code from REASONS; ``facts`` holds validity details for ``kiosk inspect``
    and the event stream (never personal data). ``content`` is what a format carries beyond an
    identity (the settings of a provisioning code, with its enrollment token): memory only.
    """

    kind: str
    verdict: str
    reason: str
    subject: str = field(default="", repr=False)
    display_name: str = field(default="", repr=False)
    facts: dict[str, Any] = field(default_factory=dict)
    content: Any = field(default=None, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPTED


def rejected(kind: str, reason: str, **facts: Any) -> Credential:
    return Credential(kind=kind, verdict=REJECTED, reason=reason, facts=facts)


MAX_FAMILY_DISPLAY = 24


def masked_name(family: str, given: str) -> str:
    """What the screen may show: the family name, then initials ("NGUYỄN", "VĂN AN" -> "Nguyễn V. A.").

    The visitor recognises themselves; the queue behind does not learn who it was. A name written
    all in capitals (as on the CCCD card) is title-cased; invisible and control characters are
    dropped; a family name alone shows only its initial.
    """
    def clean(text: str) -> list[str]:
        text = unicodedata.normalize("NFC", text)
        return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").split()

    family_words, given_words = clean(family), clean(given)
    initials = [w[0].upper() + "." for w in given_words]
    if not family_words:
        return " ".join(initials)
    if not initials:
        return family_words[0][0].upper() + "."
    shown = " ".join(family_words)
    if shown == shown.upper():
        shown = shown.title()
    if len(shown) > MAX_FAMILY_DISPLAY:
        shown = shown[: MAX_FAMILY_DISPLAY - 1] + "…"
    return " ".join([shown, *initials])


@frozen
class FormatContext(Frozen):
    """What a format may consult: the evaluation time (UTC, ms) and the config."""

    now_utc_ms: int
    config: Any = None


class PayloadFormat(Protocol):
    """One payload format: cheap ``detect`` to route, ``parse`` to validate fully.

    ``parse`` returns a rejected Credential for bad input; raising is a bug (the registry turns it
    into "malformed" and logs where it happened).
    """

    kind: str

    def detect(self, payload: bytes) -> bool: ...

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential: ...
