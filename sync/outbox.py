"""The device's outbox state machine: pending → inflight → acked, or dead with the upstream's reason.

Rows are claimed in one transaction (so the scanner's writes never interleave with a half claim);
a crash leaves rows ``inflight``, and :meth:`Outbox.recover` puts them back to ``pending`` at the
next start (a known failure of offline queues is rows stuck "in flight" forever).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

from kiosk.store import Store

ITEM_FIELDS = ("id", "venue_id", "device_id", "direction", "utc_ms", "monotonic_ns", "boot_id", "clock_synced",
               "kind", "visitor_ref", "sealed_subject", "source", "companion_of")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Claimed:
    id: str
    json: str  # the wire form of one check-in, encoded once: measured for the byte cap, then sent


def batch_document(batch: list[Claimed]) -> bytes:
    """The upload body {"checkins": [...]} from items encoded at claim time."""
    return ('{"checkins":[' + ",".join(c.json for c in batch) + "]}").encode("utf-8")


def wire_item(row: dict[str, Any]) -> dict[str, Any]:
    """A ``checkins`` row as the protocol sends it; the sealed identity travels as base64, never clear."""
    item = {k: row[k] for k in ITEM_FIELDS}
    item["clock_synced"] = bool(item["clock_synced"])
    if item["sealed_subject"] is not None:
        item["sealed_subject"] = base64.b64encode(item["sealed_subject"]).decode("ascii")
    return item


class Outbox:
    def __init__(self, store: Store):
        self.store = store

    def recover(self) -> int:
        """In-flight rows at start-up were interrupted: send them again (the upstream deduplicates)."""
        with self.store.transaction() as conn:
            return conn.execute("UPDATE outbox SET state = 'pending', updated_ms = ? WHERE state = 'inflight'",
                                [_now_ms()]).rowcount

    def claim(self, max_items: int, max_bytes: int) -> list[Claimed]:
        """Mark up to ``max_items`` pending rows (and at most ``max_bytes`` of JSON) in flight."""
        with self.store.transaction() as conn:
            cursor = conn.execute(
                f"""SELECT {', '.join('c.' + f for f in ITEM_FIELDS)} FROM outbox o JOIN checkins c ON c.id = o.checkin_id
                    WHERE o.state = 'pending' ORDER BY o.rowid LIMIT ?""", [max_items])
            names = [d[0] for d in cursor.description]
            batch: list[Claimed] = []
            total = 0
            for values in cursor.fetchall():
                item = wire_item(dict(zip(names, values)))
                encoded = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
                size = len(encoded.encode("utf-8")) + 1
                if batch and total + size > max_bytes:
                    break
                batch.append(Claimed(item["id"], encoded))
                total += size
            for chunk in _chunks([c.id for c in batch]):
                conn.execute("UPDATE outbox SET state = 'inflight', attempts = attempts + 1, updated_ms = ? "
                             f"WHERE checkin_id IN ({', '.join('?' * len(chunk))})", [_now_ms(), *chunk])
        return batch

    def _set(self, ids: Iterable[str], state: str, error: str | None) -> None:
        at = _now_ms()
        with self.store.transaction() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute("UPDATE outbox SET state = ?, last_error = ?, updated_ms = ? "
                             f"WHERE checkin_id IN ({', '.join('?' * len(chunk))})", [state, error, at, *chunk])

    def ack(self, ids: Iterable[str]) -> None:
        self._set(ids, "acked", None)

    def release(self, ids: Iterable[str], error: str) -> None:
        """Back to pending after a failure that is not the rows' fault (network, server, auth)."""
        self._set(ids, "pending", error)

    def kill(self, reasons: dict[str, str]) -> None:
        """Dead letters: the upstream refused these rows for good; the reason is kept for the operator."""
        at = _now_ms()
        with self.store.transaction() as conn:
            conn.executemany("UPDATE outbox SET state = 'dead', last_error = ?, updated_ms = ? WHERE checkin_id = ?",
                             [(reason, at, i) for i, reason in reasons.items()])

    def depth(self) -> tuple[int, int | None]:
        """Rows not yet acknowledged, and the scan time (utc_ms) of the oldest of them."""
        row = self.store.db.execute(
            """SELECT count(*), min(c.utc_ms) FROM outbox o JOIN checkins c ON c.id = o.checkin_id
               WHERE o.state IN ('pending', 'inflight')""").fetchone()
        return row[0], row[1]

    def has_pending(self) -> bool:
        return self.store.db.execute("SELECT 1 FROM outbox WHERE state = 'pending' LIMIT 1").fetchone() is not None


def _chunks(ids: list[str], size: int = 900) -> Iterable[list[str]]:
    """SQLite binds at most 32766 parameters; stay far below with one statement per 900 ids."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
