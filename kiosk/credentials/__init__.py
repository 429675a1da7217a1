"""The registry of payload formats: every scanned or typed payload becomes exactly one Credential.

Formats are tried in order; the first whose ``detect`` claims the payload parses it. A format that
raises is a bug, but it must never take the kiosk down: the payload is rejected as malformed.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from kiosk.credentials.base import ACCEPTED, REJECTED, Credential, FormatContext, PayloadFormat, rejected
from kiosk.credentials.personal import OpaqueFormat, PersonalTokenFormat

__all__ = ["ACCEPTED", "REJECTED", "Credential", "FormatContext", "PayloadFormat", "Registry", "default_registry"]

log = logging.getLogger("kiosk.credentials")


class Registry:
    def __init__(self, formats: Sequence[PayloadFormat], max_payload_bytes: int = 2953):
        self.formats = list(formats)
        self.max_payload_bytes = max_payload_bytes

    def classify(self, payload: bytes, ctx: FormatContext) -> Credential:
        if not payload or not payload.strip():
            return rejected("unknown", "empty")
        if len(payload) > self.max_payload_bytes:
            return rejected("unknown", "too-large", size=len(payload))
        for fmt in self.formats:
            try:
                if not fmt.detect(payload):
                    continue
                return fmt.parse(payload, ctx)
            except Exception:  # noqa: BLE001 - a parser bug must not stop the kiosk
                log.exception("format %s failed on a payload of %d bytes", fmt.kind, len(payload))
                return rejected(fmt.kind, "malformed", layer="parser")
        return rejected("unknown", "not-recognised")


def default_registry(config: Any) -> Registry:
    formats: list[PayloadFormat] = [PersonalTokenFormat.from_config(config.formats.personal)]
    if config.formats.accept_unknown_as_opaque:
        formats.append(OpaqueFormat())
    return Registry(formats, config.formats.max_payload_bytes)
