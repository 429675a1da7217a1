"""Personal health QR (PC-Covid / VNeID): format never published, so recognised by configured patterns.

The token itself is the subject; it is kept opaque (never parsed further). Patterns run on RE2
(kiosk/core/patterns.py): a payload costs time linear in its length whatever the pattern.
"""

from __future__ import annotations

from typing import Any

from kiosk.core.frozen import Frozen, frozen
from kiosk.credentials.base import ACCEPTED, Credential, FormatContext
from kiosk.core.patterns import compile_linear

KIND = "personal"


@frozen
class PersonalTokenFormat(Frozen):
    """Personal health QR tokens: the configured patterns, compiled for RE2, tried in order."""

    patterns: tuple[tuple[str, Any], ...]  # (name, compiled RE2 pattern)
    kind: str = KIND

    @classmethod
    def from_config(cls, entries: list) -> "PersonalTokenFormat":
        return cls(tuple((e.name, compile_linear(e.pattern)) for e in entries))

    def _match(self, payload: bytes) -> str | None:
        try:
            payload.decode("utf-8")  # tokens are text; RE2 then reads the same bytes as UTF-8 (no copy)
        except UnicodeDecodeError:
            return None
        for name, pattern in self.patterns:
            if pattern.fullmatch(payload):
                return name
        return None

    def detect(self, payload: bytes) -> bool:
        return self._match(payload) is not None

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        name = self._match(payload)
        token = payload.decode("utf-8")
        return Credential(KIND, ACCEPTED, "ok", subject=token, display_name="", facts={"pattern": name})


@frozen
class OpaqueFormat(Frozen):
    """Anything else, accepted as an opaque token only when config says so."""

    kind: str = "opaque"

    def detect(self, payload: bytes) -> bool:
        return True

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        return Credential(self.kind, ACCEPTED, "ok", subject=payload.hex(), facts={})
