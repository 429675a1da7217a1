"""What every payload format yields: one credential with a verdict a visitor can understand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass(frozen=True)
class Credential:
    """The outcome of reading one payload.

    ``subject`` is the identity the health authority needs; it never leaves memory in clear.
    ``reason`` is a stable code ("ok", "not-recognised", "expired", ...) that the screen's catalogue
    turns into words; ``facts`` holds validity details for ``kiosk inspect``.
    """

    kind: str
    verdict: str
    reason: str
    subject: str = field(default="", repr=False)
    display_name: str = field(default="", repr=False)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPTED


def rejected(kind: str, reason: str, **facts: Any) -> Credential:
    return Credential(kind=kind, verdict=REJECTED, reason=reason, facts=facts)


@dataclass(frozen=True)
class FormatContext:
    """What a format may consult: the evaluation time (UTC, ms) and the config."""

    now_utc_ms: int
    config: Any = None


class PayloadFormat(Protocol):
    """One payload format: cheap ``detect`` to route, ``parse`` to validate fully."""

    kind: str

    def detect(self, payload: bytes) -> bool: ...

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential: ...
