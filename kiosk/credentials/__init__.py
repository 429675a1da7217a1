"""The registry of payload formats: every scanned or typed payload becomes exactly one Credential.

Formats are tried in order; the first whose ``detect`` claims the payload parses it. The order puts
the formats with unmistakable prefixes first (provisioning, HC1), then the CCCD card, then the
configured personal health QR patterns, then (only if configured) anything as an opaque token.
A format that raises is a bug, but it must never take the kiosk down: the payload is rejected as
malformed, and the log says where, never what the payload held.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Sequence

from kiosk.credentials.base import ACCEPTED, REJECTED, Credential, FormatContext, PayloadFormat, rejected
from kiosk.credentials.cccd import CccdFormat
from kiosk.credentials.hc1 import Hc1Format
from kiosk.credentials.personal import OpaqueFormat, PersonalTokenFormat
from kiosk.credentials.provisioning import ProvisioningFormat
from kiosk.credentials.trust import TrustList, TrustListError, load_trust_list

__all__ = ["ACCEPTED", "REJECTED", "Credential", "FormatContext", "PayloadFormat", "Registry", "default_registry",
           "trust_from_config"]

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
            except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the kiosk
                # Type and place only: an exception's message may quote the payload.
                where = traceback.extract_tb(exc.__traceback__)[-1]
                log.error("format %s failed on a payload of %d bytes: %s at %s:%d", fmt.kind, len(payload),
                          type(exc).__name__, where.filename, where.lineno)
                return rejected(fmt.kind, "malformed", layer="parser")
        return rejected("unknown", "not-recognised")


def trust_from_config(config: Any) -> TrustList:
    """The HC1 trust list named by ``formats.hc1_trust`` (empty when unset); ConfigError if unusable."""
    from kiosk.core.config import ConfigError

    if not config.formats.hc1_trust:
        return TrustList()
    try:
        return load_trust_list(config.formats.hc1_trust)
    except TrustListError as exc:
        raise ConfigError(f"{config.source}: 'formats.hc1_trust': {exc}") from None


def default_registry(config: Any, trust: TrustList | None = None) -> Registry:
    formats: list[PayloadFormat] = [
        ProvisioningFormat.from_config(config.provisioning),
        Hc1Format(trust if trust is not None else trust_from_config(config)),
        CccdFormat(),
        PersonalTokenFormat.from_config(config.formats.personal),
    ]
    if config.formats.accept_unknown_as_opaque:
        formats.append(OpaqueFormat())
    return Registry(formats, config.formats.max_payload_bytes)
