"""Check-ins in PostgreSQL, partitioned by scan time: one partition per UTC day.

Why days: the trace query asks for a venue over hours or days, so it touches one to a few partitions
(partition pruning), and retention (21 days) becomes ``DROP TABLE`` of whole days, which costs the
same whether the day held ten rows or ten million, instead of a row-by-row ``DELETE`` that bloats the
table and the WAL. Partitions are made ahead of time (``ahead_days``) and, should a row arrive for a day
that has none (a backlog older than expected, a clock far off), made on demand under an advisory lock so
that concurrent workers never race. Rows before 2000 or from 2100 on go to two fixed edge partitions, so
a hostile or broken clock can never make a worker create thousands of tables.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable

DAY_MS = 86_400_000
FIRST_DAY = dt.date(2000, 1, 1)
END_DAY = dt.date(2100, 1, 1)
EPOCH = dt.date(1970, 1, 1)
EDGE_BEFORE = "checkins_before_2000"
EDGE_AFTER = "checkins_from_2100"
_NAME = re.compile(r"^checkins_p(\d{8})$")
LOCK_KEY = 0x6B696F736B  # pg_advisory_xact_lock key for partition DDL ("kiosk")


def day_ms(day: dt.date) -> int:
    """Milliseconds since the epoch at the start of this UTC day."""
    return (day - EPOCH).days * DAY_MS


def day_of(utc_ms: int) -> dt.date:
    return EPOCH + dt.timedelta(days=utc_ms // DAY_MS)


def partition_name(day: dt.date) -> str:
    return f"checkins_p{day:%Y%m%d}"


def partition_day(name: str) -> dt.date | None:
    """The day a partition holds, or None for the edge partitions."""
    match = _NAME.match(name)
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def days_needing_partitions(utc_values: Iterable[int]) -> set[dt.date]:
    """The days these scan times fall on, leaving out those the edge partitions hold."""
    lo, hi = day_ms(FIRST_DAY), day_ms(END_DAY)
    return {day_of(v) for v in utc_values if lo <= v < hi}


def edge_partitions_sql() -> list[str]:
    return [f"CREATE TABLE IF NOT EXISTS {EDGE_BEFORE} PARTITION OF checkins FOR VALUES FROM (MINVALUE) "
            f"TO ({day_ms(FIRST_DAY)})",
            f"CREATE TABLE IF NOT EXISTS {EDGE_AFTER} PARTITION OF checkins FOR VALUES FROM ({day_ms(END_DAY)}) "
            "TO (MAXVALUE)"]


def existing_days(conn: Any) -> set[dt.date]:
    """Days that have a partition now."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'checkins'::regclass").fetchall()
    names = [r["relname"] if isinstance(r, dict) else r[0] for r in rows]
    return {d for d in map(partition_day, names) if d is not None}


def create_partitions(conn: Any, days: Iterable[dt.date]) -> list[str]:
    """Create the missing day partitions in one short transaction; returns the names created.

    ``conn`` is an autocommit psycopg connection. The advisory lock serialises workers doing the same
    (CREATE TABLE IF NOT EXISTS alone can still collide on the catalog when two run at once).
    """
    wanted = sorted(d for d in days if FIRST_DAY <= d < END_DAY)
    if not wanted:
        return []
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        have = existing_days(conn)
        for day in wanted:
            if day in have:
                continue
            conn.execute(f"CREATE TABLE {partition_name(day)} PARTITION OF checkins "
                         f"FOR VALUES FROM ({day_ms(day)}) TO ({day_ms(day + dt.timedelta(days=1))})")
            created.append(partition_name(day))
    return created


def ensure_ahead(conn: Any, today: dt.date, ahead_days: int, behind_days: int = 1) -> list[str]:
    """Partitions from ``behind_days`` before today to ``ahead_days`` after it."""
    return create_partitions(conn, [today + dt.timedelta(days=n) for n in range(-behind_days, ahead_days + 1)])


def drop_before(conn: Any, cutoff_day: dt.date) -> list[str]:
    """Retention: drop every day partition wholly before ``cutoff_day`` (constant time per partition,
    whatever it holds), and delete the few rows the 'before 2000' edge partition may hold."""
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        conn.execute("SET LOCAL lock_timeout = '5s'")  # never queue ingest behind us for long
        for day in sorted(existing_days(conn)):
            if day < cutoff_day:
                conn.execute(f"DROP TABLE {partition_name(day)}")
                dropped.append(partition_name(day))
        conn.execute(f"DELETE FROM {EDGE_BEFORE}")
    return dropped
