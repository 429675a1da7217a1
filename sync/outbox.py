"""The device's outbox state machine: pending → inflight → acked, or dead with the upstream's reason.

Rows are claimed in one transaction (so the scanner's writes never interleave with a half claim);
a crash leaves rows ``inflight``, and :meth:`Outbox.recover` puts them back to ``pending`` at the
next start (a known failure of offline queues is rows stuck "in flight" forever).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Iterable

from kiosk.core.store import Store


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# One check-in as the protocol sends it, written by SQLite; sealed_subject last, filled in by claim().
SEALED_NULL = "null}"
CLAIM_QUERY = (
    "SELECT o.rowid, c.id, json_object('id', c.id, 'venue_id', c.venue_id, 'device_id', c.device_id, 'direction', c.direction, "
    "'utc_ms', c.utc_ms, 'monotonic_ns', c.monotonic_ns, 'boot_id', c.boot_id, "
    "'clock_synced', json(CASE WHEN c.clock_synced THEN 'true' ELSE 'false' END), 'kind', c.kind, "
    "'visitor_ref', c.visitor_ref, 'source', c.source, 'companion_of', c.companion_of, 'sealed_subject', NULL), "
    "c.sealed_subject "
    "FROM outbox o JOIN checkins c ON c.id = o.checkin_id WHERE o.state = 'pending' ORDER BY o.rowid LIMIT ?"
)


@dataclass(frozen=True)
class Claimed:
    id: str
    json: str  # the wire form of one check-in, encoded once: measured for the byte cap, then sent


def batch_document(batch: list[Claimed]) -> bytes:
    """The upload body {"checkins": [...]} from items encoded at claim time."""
    return ('{"checkins":[' + ",".join(c.json for c in batch) + "]}").encode("utf-8")


class Outbox:
    def __init__(self, store: Store):
        self.store = store
        self._rowids: dict[str, int] = {}  # claimed by this process: settled by rowid, not by UUID lookup

    def recover(self) -> int:
        """In-flight rows at start-up were interrupted: send them again (the upstream deduplicates)."""
        with self.store.transaction() as conn:
            return conn.execute("UPDATE outbox SET state = 'pending', updated_ms = ? WHERE state = 'inflight'",
                                [_now_ms()]).rowcount

    def claim(self, max_items: int, max_bytes: int) -> list[Claimed]:
        """Mark up to ``max_items`` pending rows (and at most ``max_bytes`` of JSON) in flight.

        SQLite writes each item's JSON (``json_object``) in the same query that selects it; only the
        sealed identity is base64-encoded here, as SQLite has no base64. One transaction, one UPDATE.
        """
        with self.store.transaction() as conn:
            rows = conn.execute(CLAIM_QUERY, [max_items]).fetchall()
            batch: list[Claimed] = []
            total = 0
            for rowid, checkin_id, encoded, sealed in rows:
                if sealed is not None:  # '…"sealed_subject":null}' becomes '…"sealed_subject":"<base64>"}'
                    encoded = encoded[:-len(SEALED_NULL)] + '"' + base64.b64encode(sealed).decode("ascii") + '"}'
                size = len(encoded.encode("utf-8")) + 1
                if batch and total + size > max_bytes:
                    break
                batch.append(Claimed(checkin_id, encoded))
                self._rowids[checkin_id] = rowid
                total += size
            if batch:
                # The batch is the first len(batch) pending rows in rowid order: one range update.
                conn.execute("UPDATE outbox SET state = 'inflight', attempts = attempts + 1, updated_ms = ? "
                             "WHERE rowid IN (SELECT rowid FROM outbox WHERE state = 'pending' ORDER BY rowid LIMIT ?)",
                             [_now_ms(), len(batch)])
        return batch

    def _set(self, ids: Iterable[str], state: str, error: str | None) -> None:
        at = _now_ms()
        ids = list(ids)
        unknown = [i for i in ids if i not in self._rowids]
        rowids = [self._rowids.pop(i) for i in ids if i in self._rowids]
        with self.store.transaction() as conn:
            for column, keys in (("rowid", rowids), ("checkin_id", unknown)):
                for chunk in _chunks(keys):
                    conn.execute(f"UPDATE outbox SET state = ?, last_error = ?, updated_ms = ? "
                                 f"WHERE {column} IN ({', '.join('?' * len(chunk))})", [state, error, at, *chunk])

    def ack(self, ids: Iterable[str]) -> None:
        self._set(ids, "acked", None)

    def release(self, ids: Iterable[str], error: str) -> None:
        """Back to pending after a failure that is not the rows' fault (network, server, auth)."""
        self._set(ids, "pending", error)

    def kill(self, reasons: dict[str, str]) -> None:
        """Dead letters: the upstream refused these rows for good; the reason is kept for the operator."""
        at = _now_ms()
        for checkin_id in reasons:
            self._rowids.pop(checkin_id, None)
        with self.store.transaction() as conn:
            conn.executemany("UPDATE outbox SET state = 'dead', last_error = ?, updated_ms = ? WHERE checkin_id = ?",
                             [(reason, at, i) for i, reason in reasons.items()])

    def depth(self) -> tuple[int, int | None]:
        """Rows not yet acknowledged, and the scan time (utc_ms) of the oldest of them."""
        row = self.store.conn.execute(
            """SELECT count(*), min(c.utc_ms) FROM outbox o JOIN checkins c ON c.id = o.checkin_id
               WHERE o.state IN ('pending', 'inflight')""").fetchone()
        return row[0], row[1]

    def unsent(self) -> int:
        """Rows not yet acknowledged (the outbox's index alone: milliseconds at 100,000 rows, where
        ``depth`` joins every one of them to its check-in for the oldest scan time)."""
        return self.store.conn.execute("SELECT count(*) FROM outbox WHERE state IN ('pending', 'inflight')").fetchone()[0]

    def has_pending(self) -> bool:
        return self.store.conn.execute("SELECT 1 FROM outbox WHERE state = 'pending' LIMIT 1").fetchone() is not None


def _chunks(ids: list, size: int = 900) -> Iterable[list]:
    """SQLite binds at most 32766 parameters; stay far below with one statement per 900 ids."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
