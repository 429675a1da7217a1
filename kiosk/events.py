"""Outcome events: what the screen shows and what a turnstile or door relay can act on.

An event is emitted only after its check-in is committed, and carries no personal data (the masked
display name travels in memory to the screen, never into the event stream).
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from kiosk.core.frozen import Frozen, frozen

if TYPE_CHECKING:  # only a type here: importing the parsers would slow every command's start-up
    from kiosk.credentials.base import Credential

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
ERROR = "error"  # the kiosk could not process the scan (storage, not provisioned): try again / call staff
PROVISIONING = "provisioning"  # a verified provisioning code: the screen asks to confirm, no check-in made


@frozen
class Outcome(Frozen):
    """What became of one payload, told to the screen, the events file and the command line."""

    event: str
    reason: str
    kind: str
    direction: str
    at_utc_ms: int
    checkin_id: str | None = None
    source: str = "camera"
    credential: Credential | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = {"event": self.event, "reason": self.reason, "kind": self.kind, "direction": self.direction,
               "at_utc_ms": self.at_utc_ms, "source": self.source}
        if self.checkin_id:
            out["checkin_id"] = self.checkin_id
        return out


OutcomeSink = Callable[[Outcome], None]


class JsonLinesSink:
    """Writes one JSON line per outcome to a file (appending) or to stdout for ``-``."""

    def __init__(self, target: str):
        self._own = target != "-"
        self._fh: IO[str] = open(target, "a", encoding="utf-8") if self._own else sys.stdout
        self._lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        line = json.dumps(outcome.to_json(), ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Complete JSON lines of an events file; a torn last line (writer killed mid-line) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                yield json.loads(line)
