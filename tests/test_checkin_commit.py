"""The check-in commit in four statements, with the same guarantees; the outbox's claimed JSON is what
the upstream's schema accepts (real SQLite files)."""

from __future__ import annotations

import base64
import json

from kiosk.core.store import CheckinRow, Store
from sync.backlog import seed_backlog
from sync.outbox import Outbox, batch_document
from sync.upstream.schema import CheckinBatch

WINDOW_S = 900.0


def row(n: int, ref: str = "ab" * 16, boot: str = "boot-1", mono_s: float = 0.0, utc_s: float = 0.0,
        sealed: bytes | None = b"\x00sealed\xff") -> CheckinRow:
    return CheckinRow(id=f"00000000-0000-4000-8000-{n:012d}", venue_id="V", device_id="D", direction="entry",
                      utc_ms=int(1_800_000_000_000 + utc_s * 1000), monotonic_ns=int(mono_s * 1e9), boot_id=boot,
                      clock_synced=True, kind="personal", visitor_ref=ref, sealed_subject=sealed)


def test_a_checkin_commits_in_four_statements_and_is_all_there(tmp_path):
    store = Store.open(tmp_path)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    assert store.record_checkin(row(1), WINDOW_S)
    store.conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    stored = store.checkin(row(1).id)
    assert stored["sealed_subject"] == b"\x00sealed\xff" and stored["clock_synced"] == 1
    assert store.outbox_counts()["pending"] == 1


def test_a_repeat_within_the_window_writes_nothing_not_even_an_outbox_row(tmp_path):
    store = Store.open(tmp_path)
    assert store.record_checkin(row(1, mono_s=100), WINDOW_S)
    assert not store.record_checkin(row(2, mono_s=100 + WINDOW_S - 1), WINDOW_S)  # same boot: monotonic time
    assert store.checkin(row(2).id) is None and store.outbox_counts()["pending"] == 1
    # Another boot: the wall clock decides; past the window it is a new check-in.
    assert not store.record_checkin(row(3, boot="boot-2", utc_s=WINDOW_S - 1), WINDOW_S)
    assert store.record_checkin(row(4, boot="boot-2", utc_s=WINDOW_S + 1), WINDOW_S)
    # Another visitor at the same instant is not a repeat, and a zero window never is.
    assert store.record_checkin(row(5, ref="cd" * 16, mono_s=100), WINDOW_S)
    assert store.record_checkin(row(6, mono_s=100), 0)
    assert store.outbox_counts()["pending"] == 4


def test_claimed_items_are_what_the_upstream_schema_accepts(tmp_path):
    store = Store.open(tmp_path)
    store.record_checkin(row(1, sealed=bytes(range(256))), WINDOW_S)
    store.record_checkin(row(2, ref="cd" * 16, sealed=None), WINDOW_S)
    seeded = seed_backlog(store, 3, "V", "D")
    claimed = Outbox(store).claim(100, 1 << 20)
    assert [c.id for c in claimed][:2] == [row(1).id, row(2).id] and [c.id for c in claimed][2:] == seeded
    batch = CheckinBatch.model_validate_json(batch_document(claimed))  # strict: no coercion, no unknown fields
    first, second = batch.checkins[0], batch.checkins[1]
    assert base64.b64decode(first.sealed_subject) == bytes(range(256)) and second.sealed_subject is None
    assert first.clock_synced is True and json.loads(claimed[0].json)["utc_ms"] == row(1).utc_ms
    assert store.outbox_counts() == {"pending": 0, "inflight": 5, "acked": 0, "dead": 0}


def test_a_claim_stops_at_the_byte_cap_and_settles_by_rowid(tmp_path):
    store = Store.open(tmp_path)
    seed_backlog(store, 10, "V", "D")
    outbox = Outbox(store)
    first = outbox.claim(100, 1)  # at least one row, however small the cap
    second = outbox.claim(3, 1 << 20)
    assert len(first) == 1 and len(second) == 3
    outbox.ack([c.id for c in second])
    outbox.release([first[0].id], "test")
    assert store.outbox_counts() == {"pending": 7, "inflight": 0, "acked": 3, "dead": 0}
    again = Outbox(store).claim(100, 1 << 20)  # a new process: the released row goes first, in insertion order
    assert again[0].id == first[0].id and len(again) == 7
