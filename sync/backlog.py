"""Synthetic check-in backlogs (days offline), for the sync benchmark and the fault tests.

Rows go straight into the device's database in one transaction, shaped exactly like the
pipeline's (UUID, keyed visitor hash, optional sealed identity), so the uploader cannot tell them apart.
"""

from __future__ import annotations

import hashlib
import time
import uuid

from kiosk.core.privacy import seal_subject
from kiosk.core.store import Store


def seed_backlog(store: Store, count: int, venue_id: str, device_id: str,
                 authority_public_key: bytes | None = None, start_ms: int | None = None,
                 boot_id: str = "00000000-0000-4000-8000-000000000000") -> list[str]:
    """Insert ``count`` pending check-ins, one per second of scan time; returns their ids."""
    start = start_ms if start_ms is not None else time.time_ns() // 1_000_000 - count * 1000
    ids, rows = [], []
    for n in range(count):
        checkin_id = str(uuid.uuid4())
        ids.append(checkin_id)
        sealed = seal_subject(f"0790{n:08d}|Nguyễn Văn {n}", authority_public_key) if authority_public_key else None
        rows.append((checkin_id, venue_id, device_id, "entry", start + n * 1000, 1_000_000_000 + n * 1_000_000,
                     boot_id, 1, "personal", hashlib.sha256(f"{device_id}/{checkin_id}".encode()).hexdigest(), sealed))
    now = time.time_ns() // 1_000_000
    with store.transaction() as conn:
        conn.executemany("INSERT INTO checkins (id, venue_id, device_id, direction, utc_ms, monotonic_ns, boot_id, "
                         "clock_synced, kind, visitor_ref, sealed_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO outbox (checkin_id, updated_ms) VALUES (?, ?)", [(i, now) for i in ids])
    return ids
