"""Versioned migrations of the upstream's PostgreSQL schema.

Version 1 is the schema the upstream has always made (sync/storage.py's SCHEMA, and the columns added
to it since): written with IF NOT EXISTS, so a database made by an earlier release, which has no
``schema_migrations`` table, is recognised as version 1 and upgraded from there. Each later version
is one function run in one transaction with its row in ``schema_migrations``; all of them run under
an advisory lock, so workers starting together migrate once. tests/test_upstream_fleet.py upgrades a
database from every earlier version, with rows in it.

Citus-ready (docs/scale.md): the tables that grow with visits, ``checkins`` and ``beacon_keys``, have
the venue id in every unique key, so they can be distributed by ``venue_id``; devices, tokens,
nonces and the console's tables are small and would be reference (or device-distributed) tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from sync.upstream import partitions
from sync.upstream.storage import ADDED_CHECKIN_COLUMNS, SCHEMA, now_ms

LOCK_KEY = 0x6B696F736D  # pg_advisory_xact_lock key for migrations


def _v1_reference_schema(conn: Any) -> None:
    """The schema of every release before migrations were versioned."""
    for statement in SCHEMA.format(blob="BYTEA", int="BIGINT").split(";"):
        if statement.strip():
            conn.execute(statement)
    for column, definition in ADDED_CHECKIN_COLUMNS:
        conn.execute(f"ALTER TABLE checkins ADD COLUMN IF NOT EXISTS {column} {definition}")
    conn.execute("ALTER TABLE tokens ADD COLUMN IF NOT EXISTS device_id TEXT")


CHECKIN_COLUMNS = ("id, venue_id, device_id, direction, utc_ms, monotonic_ns, boot_id, clock_synced, kind, "
                   "visitor_ref, sealed_subject, received_ms, source, companion_of")


def _v2_partitioned_checkins(conn: Any) -> None:
    """Check-ins partitioned by day of scan time; the primary key (venue_id, utc_ms, id) is the only
    index, and it is the one the trace query (venue, time window) needs. beacon_keys gets the venue
    id in its key; devices leave room on each page so the heartbeat's update stays HOT."""
    conn.execute("ALTER TABLE checkins RENAME TO checkins_v1")
    conn.execute("ALTER TABLE checkins_v1 RENAME CONSTRAINT checkins_pkey TO checkins_v1_pkey")
    conn.execute("DROP INDEX IF EXISTS checkins_venue_time")
    conn.execute("""CREATE TABLE checkins (
        id TEXT NOT NULL,
        venue_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        utc_ms BIGINT NOT NULL,
        monotonic_ns BIGINT NOT NULL,
        boot_id TEXT NOT NULL,
        clock_synced SMALLINT NOT NULL,
        kind TEXT NOT NULL,
        visitor_ref TEXT NOT NULL,
        sealed_subject BYTEA,
        received_ms BIGINT NOT NULL,
        source TEXT NOT NULL DEFAULT 'camera',
        companion_of TEXT,
        PRIMARY KEY (venue_id, utc_ms, id)
    ) PARTITION BY RANGE (utc_ms)""")
    conn.execute(partitions.default_partition_sql())
    # Every day the existing rows fall on gets its partition (bounded by the rows there are), between
    # 2000 and 2100; scan times outside those years go to the default partition.
    days = conn.execute("SELECT DISTINCT utc_ms / %s AS d FROM checkins_v1 WHERE utc_ms >= %s AND utc_ms < %s",
                        [partitions.DAY_MS, partitions.day_ms(dt.date(2000, 1, 1)),
                         partitions.day_ms(dt.date(2100, 1, 1))]).fetchall()
    for day in sorted({partitions.EPOCH + dt.timedelta(days=r["d"] if isinstance(r, dict) else r[0]) for r in days}):
        conn.execute(f"CREATE TABLE {partitions.partition_name(day)} PARTITION OF checkins FOR VALUES FROM "
                     f"({partitions.day_ms(day)}) TO ({partitions.day_ms(day) + partitions.DAY_MS})")
    conn.execute(f"INSERT INTO checkins ({CHECKIN_COLUMNS}) SELECT {CHECKIN_COLUMNS} FROM checkins_v1 "
                 "ON CONFLICT DO NOTHING")
    conn.execute("DROP TABLE checkins_v1")
    conn.execute("ALTER TABLE beacon_keys DROP CONSTRAINT beacon_keys_pkey")
    conn.execute("ALTER TABLE beacon_keys ADD PRIMARY KEY (venue_id, device_id, base_key)")
    conn.execute("ALTER TABLE devices SET (fillfactor = 80)")


def _v3_nonce_pruning_index(conn: Any) -> None:
    """Pruning old nonces (every few hundred requests per worker) reads an index, not the table."""
    conn.execute("CREATE INDEX IF NOT EXISTS nonces_seen ON nonces (seen_ms)")


MIGRATIONS: list[tuple[int, str, Callable[[Any], None]]] = [
    (1, "reference schema", _v1_reference_schema),
    (2, "check-ins partitioned by day", _v2_partitioned_checkins),
    (3, "nonce pruning index", _v3_nonce_pruning_index),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Any) -> int:
    """0 for an empty database or one made before migrations were versioned (and not yet upgraded)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS e").fetchone()
    if not (exists["e"] if isinstance(exists, dict) else exists[0]):
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").fetchone()
    return row["v"] if isinstance(row, dict) else row[0]


def migrate(conn: Any, target: int = LATEST) -> list[int]:
    """Bring the database up to ``target``; returns the versions applied. ``conn`` is autocommit."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_ms BIGINT NOT NULL)")
        version = current_version(conn)
        for number, name, step in MIGRATIONS:
            if version < number <= target:
                step(conn)
                conn.execute("INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
                             [number, name, now_ms()])
                applied.append(number)
    return applied
