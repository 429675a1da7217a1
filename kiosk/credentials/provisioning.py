"""Provisioning QR codes: the health authority tells a kiosk which venue it serves and where to sync.

Payload (ASCII, fits a QR code in byte mode)::

    KIOSK-PROV1:<base64url(body)>.<base64url(signature)>

``body`` is UTF-8 JSON with exactly these keys: ``v`` (1), ``venue_id``, ``venue_name``,
``direction`` ("entry" or "exit"), ``upstream_url``, ``enrollment_token`` and ``issued_at`` (Unix
seconds). ``signature`` is Ed25519 over the ASCII text before the dot (prefix included, so a
signature made for anything else never verifies here), by the authority key configured at install
(``provisioning.authority_key``). The signature is checked before the JSON is even parsed; a code
signed by anyone else, older than ``provisioning.max_age_s`` or from the future is refused.

A provisioning code never makes a check-in: the pipeline hands it to the screen for confirmation,
and the appliance applies it. Its enrollment token stays in memory (``Credential.content``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import field
from pathlib import Path
from typing import Any

from kiosk.core.frozen import Frozen, frozen
from kiosk.credentials.base import ACCEPTED, Credential, FormatContext, rejected

KIND = "provisioning"
PREFIX = b"KIOSK-PROV1:"
MAX_FUTURE_S = 300  # clocks differ; a code "issued" more than this ahead is refused
FIELDS = {"v", "venue_id", "venue_name", "direction", "upstream_url", "enrollment_token", "issued_at"}
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the same as config's device.venue_id
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
_B64URL = re.compile(rb"[A-Za-z0-9_-]+")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


# What each field accepts, for the message when a value is not acceptable.
ACCEPTS = {
    "fields": "exactly v, venue_id, venue_name, direction, upstream_url, enrollment_token, issued_at",
    "venue_id": "1 to 64 of A-Z a-z 0-9 . _ - (the kiosks' device.venue_id)",
    "venue_name": "1 to 200 characters, not only spaces, no control characters",
    "direction": "entry or exit",
    "upstream_url": "https://host[:port][/path], at most 512 characters, no spaces or user:password "
                    "(plain http only to localhost, 127.0.0.1 or ::1)",
    "enrollment_token": "16 to 256 of A-Z a-z 0-9 _ - (as `kiosk upstream token` prints it)",
    "issued_at": "a time after 1970, e.g. --issued-at 2024-06-01T08:00:00+07:00",
}


class ProvisioningError(ValueError):
    """A provisioning body that cannot be used; the message names the field."""


def public_key_mistake(path: Path, key: bytes, configured_public: str) -> str | None:
    """Why ``key`` (read from ``path``) is a public key and not the signing key, or None.

    A public and a private Ed25519 key are both 32 bytes, so the file is judged by what sits beside
    it: a ``.pub`` name, the same bytes as a ``*.pub`` file in its folder, or the public key this
    machine's config gives the kiosks. A code signed with a public key is refused by every kiosk.
    """
    from kiosk.core.privacy import read_key

    suggestion = path.with_suffix(".key").name if path.suffix == ".pub" else "provisioning.key"
    message = (f"--key {path} is the public key; sign with the private key, {suggestion} in the same folder "
               "(made by `kiosk authority-keys`)")
    if path.suffix == ".pub":
        return message
    publics = []
    for sibling in path.absolute().parent.glob("*.pub"):
        try:
            publics.append(read_key(str(sibling.absolute()), str(sibling)))
        except Exception:  # noqa: BLE001 - an unreadable neighbour proves nothing
            continue
    try:
        publics.append(read_key(configured_public, "provisioning.authority_key"))
    except Exception:  # noqa: BLE001
        pass
    return message if key in publics else None


@frozen
class ProvisioningCode(Frozen):
    """What a verified provisioning code tells the kiosk: its venue, direction and upstream."""

    venue_id: str
    venue_name: str
    direction: str
    upstream_url: str
    enrollment_token: str = field(repr=False)
    issued_at: int

    def public_facts(self) -> dict[str, Any]:
        """Everything but the enrollment token (a secret that enrolls a device with the upstream)."""
        return {"venue_id": self.venue_id, "venue_name": self.venue_name, "direction": self.direction,
                "upstream_url": self.upstream_url, "issued_at": self.issued_at}


def _b64url_decode(text: bytes) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_url(url: str) -> None:
    from urllib.parse import urlsplit  # only for a provisioning code, not at every start

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ProvisioningError("upstream_url") from None
    if len(url) > 512 or not host or parts.username or parts.password or any(c.isspace() for c in url):
        raise ProvisioningError("upstream_url")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK):
        raise ProvisioningError("upstream_url")  # plain http only for a local development upstream


def code_from_body(body: Any) -> ProvisioningCode:
    """Check every field of a decoded body; raises ProvisioningError naming the first bad one."""
    if not isinstance(body, dict) or set(body) != FIELDS or body["v"] != 1:
        raise ProvisioningError("fields")
    if not isinstance(body["venue_id"], str) or not _ID.fullmatch(body["venue_id"]):
        raise ProvisioningError("venue_id")
    name = body["venue_name"]
    if (not isinstance(name, str) or not name.strip() or len(name) > 200
            or any(unicodedata.category(ch)[0] == "C" for ch in name)):
        raise ProvisioningError("venue_name")
    if body["direction"] not in ("entry", "exit"):
        raise ProvisioningError("direction")
    if not isinstance(body["upstream_url"], str):
        raise ProvisioningError("upstream_url")
    _check_url(body["upstream_url"])
    if not isinstance(body["enrollment_token"], str) or not _TOKEN.fullmatch(body["enrollment_token"]):
        raise ProvisioningError("enrollment_token")
    issued = body["issued_at"]
    if not isinstance(issued, int) or isinstance(issued, bool) or not 0 < issued < 2**40:
        raise ProvisioningError("issued_at")
    return ProvisioningCode(body["venue_id"], unicodedata.normalize("NFC", name), body["direction"],
                            body["upstream_url"], body["enrollment_token"], issued)


def make_code(signing_key: bytes, code: ProvisioningCode) -> str:
    """The authority's side: the QR text for ``code``, signed with the 32-byte Ed25519 seed."""
    from nacl.signing import SigningKey

    body = {"v": 1, "venue_id": code.venue_id, "venue_name": code.venue_name, "direction": code.direction,
            "upstream_url": code.upstream_url, "enrollment_token": code.enrollment_token, "issued_at": code.issued_at}
    code_from_body(body)  # never sign what a kiosk would refuse
    message = PREFIX + _b64url(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).encode()
    signature = SigningKey(signing_key).sign(message).signature
    return (message + b"." + _b64url(signature).encode()).decode("ascii")


def new_signing_keypair() -> tuple[bytes, bytes]:
    """(private seed, public key) for the authority's provisioning signatures."""
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    return bytes(key), bytes(key.verify_key)


class ProvisioningFormat:
    kind = KIND

    def __init__(self, authority_key: bytes | None, max_age_s: float):
        self.authority_key = authority_key
        self.max_age_s = max_age_s

    @classmethod
    def from_config(cls, section: Any) -> "ProvisioningFormat":
        from kiosk.core.privacy import read_key

        return cls(read_key(section.authority_key, "provisioning.authority_key"), section.max_age_s)

    def detect(self, payload: bytes) -> bool:
        return payload.startswith(PREFIX)

    def _verified_body(self, payload: bytes) -> bytes | str:
        """The signed body, or the reason code when it cannot be trusted."""
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey

        message, dot, signature_text = payload.rpartition(b".")
        try:
            body = _b64url_decode(message[len(PREFIX):])
            signature = _b64url_decode(signature_text)
        except (ValueError, binascii.Error):
            return "malformed"
        if not dot or len(signature) != 64:
            return "malformed"
        if self.authority_key is None:
            return "untrusted-signer"
        try:
            VerifyKey(self.authority_key).verify(message, signature)
        except BadSignatureError:
            return "untrusted-signer"
        return body

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        body = self._verified_body(payload)
        if isinstance(body, str):
            facts: dict[str, Any] = {"layer": "signature"} if body == "malformed" else {}
            return rejected(KIND, body, authority_key_configured=self.authority_key is not None, **facts)
        try:
            code = code_from_body(json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return rejected(KIND, "malformed", layer="body")
        except ProvisioningError as exc:
            return rejected(KIND, "malformed", layer="body", field=str(exc))
        now = ctx.now_utc_ms / 1000
        if code.issued_at > now + MAX_FUTURE_S:
            return rejected(KIND, "not-yet-valid", **code.public_facts())
        if now - code.issued_at > self.max_age_s:
            return rejected(KIND, "expired", **code.public_facts())
        return Credential(KIND, ACCEPTED, "ok", display_name=code.venue_name, facts=code.public_facts(), content=code)
