"""Check-ins made before NTP synchronised get their true time back, from the monotonic clock."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from kiosk.core.clock import Clock, Instant
from kiosk.core.clockfix import ClockWatch, correct_checkin_times
from kiosk.health import CLOCK_CHECK_EVERY_S, ScannerHealth
from kiosk.pipeline import Pipeline
from kiosk.core.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Store
from kiosk.core.watchdog import LoopWatch, Notifier

BOOT = "11111111-2222-3333-4444-555555555555"
TRUE_START_MS = 1_767_225_600_000        # 2026-01-01 00:00 UTC: what the time really was at "boot + 100 s"
FAKE_HWCLOCK_MS = 1_700_000_000_000      # what the Pi believed (the time fake-hwclock saved at shutdown)


class InjectedClock(Clock):
    """A Pi that booted with a wrong clock; ``sync()`` is NTP arriving."""

    def __init__(self) -> None:
        super().__init__()
        self.mono_ns = 100 * 10**9
        self.offset_ms = FAKE_HWCLOCK_MS - TRUE_START_MS  # wall clock minus true time
        self.synced = False
        self.boot = BOOT

    def advance(self, seconds: float) -> None:
        self.mono_ns += int(seconds * 1e9)

    def true_ms(self) -> int:
        return TRUE_START_MS + (self.mono_ns - 100 * 10**9) // 10**6

    def sync(self) -> None:
        self.offset_ms, self.synced = 0, True

    def now(self) -> Instant:
        return Instant(self.true_ms() + self.offset_ms, self.mono_ns, self.boot, self.synced)


def _scan(pipeline: Pipeline, n: int) -> str:
    outcome = pipeline.handle_payload(f"DEMO-HQR-{n:012X}".encode(), source="manual")
    assert outcome.event == "accepted", outcome
    return outcome.checkin_id


def test_unsynced_checkins_are_marked_then_corrected_to_the_true_time(config):
    clock = InjectedClock()
    pipeline = Pipeline(config, clock=clock)
    # A check-in from a previous boot that never saw NTP: its monotonic time means nothing now.
    clock.boot = "previous-boot"
    old = _scan(pipeline, 99)
    clock.boot = BOOT
    made = {}
    for n in range(3):
        clock.advance(7.5)
        made[_scan(pipeline, n)] = clock.true_ms()
    rows = {cid: pipeline.store.checkin(cid) for cid in made}
    assert all(r["clock_synced"] == 0 for r in rows.values())
    assert all(abs(r["utc_ms"] - made[cid]) > 10**9 for cid, r in rows.items()), "wall clock was wrong"

    clock.advance(600)  # ten minutes later the network comes back and NTP steps the clock
    clock.sync()
    assert correct_checkin_times(pipeline.store, clock.now()) == 3

    for cid, true_ms in made.items():
        row = pipeline.store.checkin(cid)
        assert row["utc_ms"] == true_ms
        assert row["clock_synced"] == 1
        assert row["utc_ms_unsynced"] == rows[cid]["utc_ms"]  # the original reading is kept
    stale = pipeline.store.checkin(old)
    assert stale["clock_synced"] == 0 and stale["utc_ms_unsynced"] is None
    assert pipeline.store.unsynced_counts(BOOT) == {"this_boot": 0, "earlier_boots": 1}
    # A second pass changes nothing.
    assert correct_checkin_times(pipeline.store, clock.now()) == 0
    pipeline.close()


def test_the_scanner_loop_corrects_once_the_clock_syncs(config):
    clock = InjectedClock()
    pipeline = Pipeline(config, clock=clock)
    now = [0.0]
    health = ScannerHealth(pipeline, LoopWatch(Notifier(None)), monotonic=lambda: now[0])
    health.tick()
    clock.advance(3)
    cid = _scan(pipeline, 1)
    true_ms = clock.true_ms()
    for _ in range(3):  # report periods pass with the clock still wrong: nothing is touched
        now[0] += CLOCK_CHECK_EVERY_S
        health.tick()
    assert pipeline.store.checkin(cid)["clock_synced"] == 0
    clock.advance(3 * CLOCK_CHECK_EVERY_S)
    clock.sync()
    now[0] += CLOCK_CHECK_EVERY_S
    health.tick()
    row = pipeline.store.checkin(cid)
    assert (row["clock_synced"], row["utc_ms"]) == (1, true_ms)
    pipeline.close()


def test_clock_watch_runs_again_after_losing_sync(config):
    clock = InjectedClock()
    pipeline = Pipeline(config, clock=clock)
    watch = ClockWatch()
    clock.sync()
    assert watch.observe(pipeline.store, clock.now()) == 0
    clock.offset_ms, clock.synced = -5000, False  # kernel says unsynchronised again (NTP lost)
    clock.advance(1)
    cid = _scan(pipeline, 2)
    true_ms = clock.true_ms()
    watch.observe(pipeline.store, clock.now())
    clock.sync()
    clock.advance(1)
    assert watch.observe(pipeline.store, clock.now()) == 1
    assert pipeline.store.checkin(cid)["utc_ms"] == true_ms
    pipeline.close()


def test_a_version_1_database_is_migrated_with_its_rows(state_dir):
    path = state_dir / DB_NAME
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("""INSERT INTO checkins VALUES ('c1', 'V', 'D', 'entry', 5, 6, 'b', 0, 'personal', 'ref', NULL)""")
    db.conn.close()
    store = Store.open(state_dir)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    row = store.checkin("c1")
    assert row["utc_ms"] == 5 and row["utc_ms_unsynced"] is None
    store.close()


def test_a_checkin_already_sent_keeps_its_time_so_a_resend_is_the_same_checkin(config):
    """The answer to an upload is lost, then NTP syncs: the row the upstream may already hold is sent
    again exactly as it was (a corrected scan time would be a second row under PostgreSQL's key)."""
    from sync.outbox import Outbox

    clock = InjectedClock()
    pipeline = Pipeline(config, clock=clock)
    sent, waiting = _scan(pipeline, 1), _scan(pipeline, 2)
    outbox = Outbox(pipeline.store)
    first = outbox.claim(1, 1 << 20)
    assert [c.id for c in first] == [sent]
    outbox.release([sent], "answer lost")
    before = pipeline.store.checkin(sent)

    clock.advance(60)
    clock.sync()
    assert correct_checkin_times(pipeline.store, clock.now()) == 1
    assert pipeline.store.checkin(waiting)["clock_synced"] == 1  # never sent: corrected
    kept = pipeline.store.checkin(sent)
    assert (kept["utc_ms"], kept["clock_synced"], kept["utc_ms_unsynced"]) == (before["utc_ms"], 0, None)
    again = outbox.claim(2, 1 << 20)
    assert [c.json for c in again if c.id == sent] == [c.json for c in first]
    pipeline.close()
