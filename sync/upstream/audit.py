"""The upstream's audit trail: one log line per security-relevant event, for the journal.

Who (a device id, or an operator token's id: the first 12 hex digits of its SHA-256, which is what
the database keeps), what (the event and its reason), when (UTC, to the millisecond) and from where
(the client's address as the server saw it). Never a token, never anything about a visitor: the
fields are ids, reasons, paths and times. Values are JSON-quoted, so a hostile device id cannot
forge a second line.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("sync.audit")


def audit_line(event: str, source: str | None, **fields: Any) -> str:
    """The text of one audit record (also what a console page would show)."""
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    parts = [f"event={event}", f"at={at}", f"from={json.dumps(source or 'unknown')}"]
    parts += [f"{key}={json.dumps(value, ensure_ascii=True, default=str)}" for key, value in fields.items()
              if value is not None]
    return " ".join(parts)


def audit(event: str, source: str | None, level: int = logging.INFO, **fields: Any) -> None:
    """Log one audit record: refusals at WARNING, ordinary operator actions at INFO."""
    log.log(level, "%s", audit_line(event, source, **fields))


def token_id(token_hash_hex: str) -> str:
    """How a token is named in logs: a prefix of its hash, never the token itself."""
    return token_hash_hex[:12]
