"""The state database: check-ins, their outbox, and component status, in one SQLite file.

Durability rules (DESIGN.md section 6): WAL so the uploader and beacon processes can read while the
scanner writes, and ``synchronous=FULL`` so a check-in acknowledged on screen survives a pulled plug.
"Acknowledged" means committed: nothing is announced before :meth:`Store.record_checkin` returns.

A file that SQLite cannot read is kept (renamed with a ``.corrupt-<time>`` suffix, never deleted)
and a fresh database is started; the rename is recorded as the ``store`` status so it is reported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import sqlite_utils

from kiosk.core.frozen import Frozen, frozen
from kiosk.core.records import Component, StoreState, checked, read_records
from kiosk.core.statedb import DB_NAME, read_only_connection

log = logging.getLogger("kiosk.store")



class StorageError(RuntimeError):
    """The database cannot take a write now (disk full, read-only, I/O error); nothing was recorded."""


@frozen
class CheckinRow(Frozen):
    """One row of the checkins table, as committed."""

    id: str
    venue_id: str
    device_id: str
    direction: str
    utc_ms: int
    monotonic_ns: int
    boot_id: str
    clock_synced: bool
    kind: str
    visitor_ref: str
    sealed_subject: bytes | None = None
    source: str = "camera"            # camera, manual (staff keypad, kiosk checkin), keypad (visitor), companion
    companion_of: str | None = None   # a companion's adult check-in id


def _v1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE checkins (
            id TEXT PRIMARY KEY,            -- UUID made at scan time; the upload's idempotency key
            venue_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
            utc_ms INTEGER NOT NULL,        -- wall clock at scan time, ms since the epoch
            monotonic_ns INTEGER NOT NULL,  -- CLOCK_MONOTONIC at scan time, with boot_id
            boot_id TEXT NOT NULL,
            clock_synced INTEGER NOT NULL,  -- was the wall clock trustworthy at scan time
            kind TEXT NOT NULL,             -- credential kind
            visitor_ref TEXT NOT NULL,      -- keyed hash; never the identity itself
            sealed_subject BLOB             -- identity sealed to the authority's key, or NULL
        )"""
    )
    db.execute("CREATE INDEX checkins_visitor ON checkins (visitor_ref, utc_ms)")
    db.execute(
        """CREATE TABLE outbox (
            checkin_id TEXT PRIMARY KEY REFERENCES checkins(id) ON DELETE CASCADE,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'inflight', 'acked', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_ms INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX outbox_state ON outbox (state, checkin_id)")
    db.execute(
        """CREATE TABLE status (
            component TEXT PRIMARY KEY,     -- camera, store, sync, beacon, ...
            state TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            updated_ms INTEGER NOT NULL
        )"""
    )


def _v2_outbox_queue_order(db: sqlite_utils.Database) -> None:
    """The uploader takes pending rows in insertion (rowid) order: with the index on state alone,
    marking a batch in flight or acknowledged rewrites a few neighbouring pages instead of one page
    per row (an index by random UUID scatters them), three times less disk work per batch."""
    db.execute("DROP INDEX outbox_state")
    db.execute("CREATE INDEX outbox_queue ON outbox (state)")


def _v3_clock_correction(db: sqlite_utils.Database) -> None:
    """Keep the wall-clock reading a check-in had before its time was corrected (kiosk/core/clockfix.py)."""
    db.execute("ALTER TABLE checkins ADD COLUMN utc_ms_unsynced INTEGER")  # NULL: never corrected
    db.execute("CREATE INDEX checkins_unsynced ON checkins (clock_synced, boot_id)")


def _v4_source_and_companions(db: sqlite_utils.Database) -> None:
    """How a check-in was made (camera, typed by staff or a visitor, companion) and, for a child checked
    in with an adult, the adult's check-in id (no foreign key: retention deletes rows one by one)."""
    db.execute("ALTER TABLE checkins ADD COLUMN source TEXT NOT NULL DEFAULT 'camera'")
    db.execute("ALTER TABLE checkins ADD COLUMN companion_of TEXT")


# Append only: migration N takes the schema from version N-1 to N.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2_outbox_queue_order, _v3_clock_correction,
                                                             _v4_source_and_companions]
SCHEMA_VERSION = len(MIGRATIONS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_storage_fault(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) or "readonly" in str(exc) or "disk" in str(exc)


CHECKIN_COLUMNS = tuple(f.name for f in dataclasses.fields(CheckinRow))
# The duplicate check and the insert in one statement: nothing is written when the same visitor
# checked in the same direction within the window (by monotonic time on this boot, else wall clock).
INSERT_UNLESS_REPEAT = (
    f"INSERT INTO checkins ({', '.join(CHECKIN_COLUMNS)}) SELECT {', '.join('?' * len(CHECKIN_COLUMNS))} "
    "WHERE NOT EXISTS (SELECT 1 FROM checkins WHERE visitor_ref = ? AND direction = ? "
    "AND ((boot_id = ? AND monotonic_ns >= ?) OR (boot_id != ? AND utc_ms >= ?)))"
)



def _use_wal(conn: sqlite3.Connection, patience_s: float = 10.0) -> None:
    """Put the file in WAL mode, waiting for the lock that takes.

    Turning a new file to WAL needs an exclusive lock, and SQLite does not consult the busy handler
    for it: when two services (or the scanner and the enrollment thread) open a fresh state
    directory at the same moment, one of them gets "database is locked" at once. Retry for as long
    as a busy timeout would have waited.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)

class Store:
    """One connection to the state database; one instance per thread.

    ``conn`` is the plain sqlite3 connection every method uses; ``db`` wraps it in sqlite-utils on
    first use (migrations, tests), so a command that only reads or records never imports it (nor the
    numpy it pulls in).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._db: sqlite_utils.Database | None = None

    @property
    def db(self) -> "sqlite_utils.Database":
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, state_dir: Path) -> "Store":
        """The writer's connection: creates, migrates, and sets a damaged file aside."""
        from kiosk.core.statefiles import private_dir

        try:
            private_dir(state_dir)
        except OSError as exc:
            raise StorageError(f"cannot create state directory {state_dir}: {exc.strerror or exc}") from exc
        path = state_dir / DB_NAME
        try:
            store = cls._connect(path)
            store._check_integrity()
        except sqlite3.DatabaseError as exc:
            if _is_storage_fault(exc) and "not a database" not in str(exc) and "malformed" not in str(exc):
                raise StorageError(f"cannot open {path}: {exc}") from exc
            kept = cls._set_aside(path, exc)
            store = cls._connect(path)
            store.set_status(Component.STORE, StoreState.RECOVERED, {"kept_as": str(kept), "error": str(exc)})
        return store

    @classmethod
    def reader(cls, state_dir: Path) -> "Store":
        """A read-only connection for the screen and ``kiosk status`` (kiosk/core/statedb.py)."""
        try:
            conn = read_only_connection(state_dir)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {state_dir / DB_NAME}: {exc}") from exc
        return cls(state_dir / DB_NAME, conn)

    @classmethod
    def _connect(cls, path: Path) -> "Store":
        conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")  # deleted or blanked rows leave no bytes behind in the file
        store = cls(path, conn)
        store._migrate()
        return store

    def _check_integrity(self) -> None:
        result = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {result}")

    @staticmethod
    def _set_aside(path: Path, exc: Exception) -> Path:
        kept = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(path) + suffix)
            if part.exists():
                part.rename(Path(str(kept) + suffix))
        log.error("state database %s is unreadable (%s); kept it as %s and started a fresh one", path, exc, kept)
        return kept

    def _migrate(self) -> None:
        if self.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return  # the usual start: nothing to do, no write lock taken
        with self.transaction():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(f"{self.path} has schema {version}, newer than this software ({SCHEMA_VERSION})")
            for number in range(version, SCHEMA_VERSION):
                MIGRATIONS[number](self.db)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> "_Transaction":
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so check-then-insert is atomic."""
        return _Transaction(self.conn)

    # ---- check-ins -----------------------------------------------------------------------------
    def record_checkin(self, row: CheckinRow, window_s: float | Callable[["Store"], bool] = 0.0) -> bool:
        """Insert the check-in and its outbox entry in one transaction, unless it repeats one.

        A repeat is the same visitor in the same direction within ``window_s`` seconds (monotonic time
        on the same boot, else the wall clock): then nothing is written and False is returned. The
        check is part of the insert, so the commit is four statements: BEGIN IMMEDIATE, the guarded
        insert, the outbox row, COMMIT. A callable instead of a window decides inside the transaction.
        Raises StorageError when the write cannot be made durable.
        """
        values = [getattr(row, name) for name in CHECKIN_COLUMNS]
        values[CHECKIN_COLUMNS.index("clock_synced")] = int(row.clock_synced)
        never = 2**63 - 1  # no window: no row is recent enough to be a repeat
        guarded = callable(window_s) or window_s <= 0
        since_mono = never if guarded else row.monotonic_ns - int(window_s * 1e9)
        since_utc = never if guarded else row.utc_ms - int(window_s * 1000)
        try:
            with self.transaction() as conn:
                if callable(window_s) and window_s(self):
                    return False
                inserted = conn.execute(INSERT_UNLESS_REPEAT, [*values, row.visitor_ref, row.direction, row.boot_id,
                                                               since_mono, row.boot_id, since_utc]).rowcount
                if not inserted:
                    return False
                conn.execute("INSERT INTO outbox (checkin_id, updated_ms) VALUES (?, ?)", [row.id, _now_ms()])
            return True
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def forget_synced(self, retention_cutoff_ms: int, boot_id: str, ref_cutoff_mono_ns: int,
                      ref_cutoff_utc_ms: int) -> dict[str, int]:
        """Privacy housekeeping for rows the upstream has acknowledged (pending rows are never touched).

        Deletes those older than the retention, and blanks the keyed hash of those past the repeat
        window (it only served repeat detection; with the device secret, a thief could otherwise
        test guesses of a card number against it). Then truncates the WAL so old page images go too.
        """
        acked = "id IN (SELECT checkin_id FROM outbox WHERE state = 'acked')"
        try:
            with self.transaction():
                deleted = self.conn.execute(f"DELETE FROM checkins WHERE utc_ms < ? AND {acked}",
                                          [retention_cutoff_ms]).rowcount
                blanked = self.conn.execute(
                    f"""UPDATE checkins SET visitor_ref = '' WHERE visitor_ref > '' AND {acked}
                        AND ((boot_id = ? AND monotonic_ns < ?) OR (boot_id != ? AND utc_ms < ?))""",
                    [boot_id, ref_cutoff_mono_ns, boot_id, ref_cutoff_utc_ms]).rowcount
            if deleted or blanked:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return {"deleted": deleted, "blanked": blanked}

    def checkin(self, checkin_id: str) -> dict[str, Any] | None:
        cursor = self.conn.execute("SELECT * FROM checkins WHERE id = ?", [checkin_id])
        row = cursor.fetchone()
        return None if row is None else dict(zip((d[0] for d in cursor.description), row))

    def checkin_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM checkins")}

    def count_checkins(self) -> int:
        return self.conn.execute("SELECT count(*) FROM checkins").fetchone()[0]

    def count_checkins_since(self, utc_ms: int) -> int:
        """Check-ins (companions included) made at or after ``utc_ms``: "today" for the venue manager."""
        return self.conn.execute("SELECT count(*) FROM checkins WHERE utc_ms >= ?", [utc_ms]).fetchone()[0]

    def correct_unsynced_times(self, boot_id: str, now_utc_ms: int, now_monotonic_ns: int) -> int:
        """Give this boot's unsynchronised check-ins their true time: now - (monotonic now - monotonic then).

        Only rows never handed to the uploader: one already sent may be stored upstream with the time it
        had, and on PostgreSQL the scan time is part of the check-in's key, so a resend with a corrected
        time would be stored a second time. Such a row keeps its time and its ``clock_synced = 0`` mark,
        the same as the upstream's copy. One statement, so it is atomic against the scanner's inserts
        and the uploader's claims. Returns the rows corrected.
        """
        try:
            with self.transaction():
                cursor = self.conn.execute(
                    """UPDATE checkins SET utc_ms_unsynced = utc_ms,
                           utc_ms = ? - (? - monotonic_ns) / 1000000, clock_synced = 1
                       WHERE clock_synced = 0 AND boot_id = ? AND monotonic_ns <= ?
                         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.checkin_id = checkins.id AND o.attempts > 0)""",
                    [now_utc_ms, now_monotonic_ns, boot_id, now_monotonic_ns],
                )
            return cursor.rowcount
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def last_checkin_utc_ms(self) -> int | None:
        return self.conn.execute("SELECT max(utc_ms) FROM checkins").fetchone()[0]

    def oldest_unsent_utc_ms(self) -> int | None:
        """Scan time of the oldest check-in still waiting for upload (pending or in flight)."""
        return self.conn.execute(
            """SELECT min(c.utc_ms) FROM outbox o JOIN checkins c ON c.id = o.checkin_id
               WHERE o.state IN ('pending', 'inflight')"""
        ).fetchone()[0]

    def unsynced_counts(self, boot_id: str) -> dict[str, int]:
        """Check-ins whose time is still the unsynchronised wall clock: this boot's can still be corrected."""
        this, earlier = self.conn.execute(
            "SELECT coalesce(sum(boot_id = ?), 0), coalesce(sum(boot_id != ?), 0) FROM checkins WHERE clock_synced = 0",
            [boot_id, boot_id],
        ).fetchone()
        return {"this_boot": this, "earlier_boots": earlier}

    def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "inflight": 0, "acked": 0, "dead": 0}
        counts.update(dict(self.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()))
        return counts

    # ---- component status ----------------------------------------------------------------------
    def set_status(self, component: str, state: str, detail: dict[str, Any] | None = None) -> None:
        """Write a component's record; ValueError if it is outside the status contract (kiosk/core/records.py)."""
        component, state, detail = checked(component, state, detail)
        self.conn.execute(
            """INSERT INTO status (component, state, detail, updated_ms) VALUES (?, ?, ?, ?)
               ON CONFLICT(component) DO UPDATE SET state = excluded.state, detail = excluded.detail,
               updated_ms = excluded.updated_ms""",
            [component, state, json.dumps(detail or {}, sort_keys=True), _now_ms()],
        )

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Every record in the status contract, as plain values (rows outside it are left out)."""
        return {str(c): {"state": str(r.state), "detail": r.detail, "updated_ms": r.updated_ms}
                for c, r in read_records(self.conn).items()}


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (e.g. after SQLITE_FULL)

