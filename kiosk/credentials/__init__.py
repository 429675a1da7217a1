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

from kiosk.credentials.base import (ACCEPTED, BASE45_ALPHABET, REJECTED, Credential, FormatContext, PayloadFormat,
                                    rejected)
from kiosk.credentials.cccd import CccdFormat
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


class LazyHc1Format:
    """The vaccine-certificate format (``hc1.Hc1Format``), its module imported by the first payload that
    could be a certificate: ``kiosk checkin`` and ``kiosk status`` with any other code never load it.

    Both forms ``Hc1Format.detect`` claims are Base45 from the fifth byte on, and have either a context
    prefix (``XXn:``) or at least 30 bytes; anything else is passed on exactly as ``Hc1Format`` would.
    """

    kind = "hc1"

    def __init__(self, trust: TrustList):
        self.trust = trust
        self._format: PayloadFormat | None = None

    def _loaded(self) -> PayloadFormat:
        if self._format is None:
            from kiosk.credentials.hc1 import Hc1Format

            self._format = Hc1Format(self.trust)
        return self._format

    def detect(self, payload: bytes) -> bool:
        if payload[4:].translate(None, BASE45_ALPHABET) or (payload[3:4] != b":" and len(payload) < 30):
            return False
        return self._loaded().detect(payload)

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        return self._loaded().parse(payload, ctx)


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
        LazyHc1Format(trust if trust is not None else trust_from_config(config)),
        CccdFormat(),
        PersonalTokenFormat.from_config(config.formats.personal),
    ]
    if config.formats.accept_unknown_as_opaque:
        formats.append(OpaqueFormat())
    return Registry(formats, config.formats.max_payload_bytes)
