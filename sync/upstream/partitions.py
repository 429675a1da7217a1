"""Check-ins in PostgreSQL, partitioned by scan time: one partition per UTC day, and a default one.

Why days: the trace query asks for a venue over hours or days, so it touches one to a few partitions
(partition pruning), and retention (21 days) becomes ``DROP TABLE`` of whole days, which costs the
same whether the day held ten rows or ten million, instead of a row-by-row ``DELETE`` that bloats the
table and the WAL. Partitions are made ahead of time (``ahead_days``) and, for a row whose day has
none, on demand under an advisory lock, so that concurrent workers never race, but only within
``ON_DEMAND_BEHIND`` days before today and ``ON_DEMAND_AHEAD`` after it. Anything else (a clock
years off, a hostile device sending a different day per row) goes to the default partition: no
device can make the upstream create thousands of tables. Should a day get its partition later, its
rows are moved out of the default partition in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable

DAY_MS = 86_400_000
EPOCH = dt.date(1970, 1, 1)
DEFAULT = "checkins_default"
ON_DEMAND_BEHIND = 31  # days: a kiosk offline for a month still gets its days as partitions
ON_DEMAND_AHEAD = 14   # days: a clock running days fast, or partitions made ahead by retention
_NAME = re.compile(r"^checkins_p(\d{8})$")
LOCK_KEY = 0x6B696F736B  # pg_advisory_xact_lock key for partition DDL ("kiosk")


def day_ms(day: dt.date) -> int:
    """Milliseconds since the epoch at the start of this UTC day."""
    return (day - EPOCH).days * DAY_MS


def day_of(utc_ms: int) -> dt.date:
    return EPOCH + dt.timedelta(days=utc_ms // DAY_MS)


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def partition_name(day: dt.date) -> str:
    return f"checkins_p{day:%Y%m%d}"


def partition_day(name: str) -> dt.date | None:
    """The day a partition holds, or None for the default partition."""
    match = _NAME.match(name)
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def days_for(utc_values: Iterable[int], around: dt.date | None = None) -> set[dt.date]:
    """The days these scan times fall on that may have a partition made on demand (near ``around``)."""
    centre = around or today()
    lo = day_ms(centre - dt.timedelta(days=ON_DEMAND_BEHIND))
    hi = day_ms(centre + dt.timedelta(days=ON_DEMAND_AHEAD + 1))
    return {EPOCH + dt.timedelta(days=n) for n in {v // DAY_MS for v in utc_values if lo <= v < hi}}  # a date per day, not per row


def default_partition_sql() -> str:
    return f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF checkins DEFAULT"


def existing_days(conn: Any) -> set[dt.date]:
    """Days that have a partition now."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'checkins'::regclass").fetchall()
    names = [r["relname"] if isinstance(r, dict) else r[0] for r in rows]
    return {d for d in map(partition_day, names) if d is not None}


def create_partitions(conn: Any, days: Iterable[dt.date]) -> list[str]:
    """Create the missing day partitions in one short transaction; returns the names created.

    ``conn`` is an autocommit psycopg connection. The advisory lock serialises workers doing the same;
    the lock on the default partition holds back inserts into it while a day's rows move out of it.
    """
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        missing = sorted(set(days) - existing_days(conn))
        if missing:
            conn.execute(f"LOCK TABLE {DEFAULT} IN SHARE ROW EXCLUSIVE MODE")
        for day in missing:
            name, lo, hi = partition_name(day), day_ms(day), day_ms(day + dt.timedelta(days=1))
            strays = conn.execute(f"SELECT count(*) AS n FROM {DEFAULT} WHERE utc_ms >= %s AND utc_ms < %s",
                                  [lo, hi]).fetchone()
            if (strays["n"] if isinstance(strays, dict) else strays[0]) == 0:
                conn.execute(f"CREATE TABLE {name} PARTITION OF checkins FOR VALUES FROM ({lo}) TO ({hi})")
            else:  # the day's rows leave the default partition before the day gets its own
                conn.execute(f"CREATE TABLE {name} (LIKE checkins INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                conn.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE utc_ms >= %s AND utc_ms < %s RETURNING *) "
                             f"INSERT INTO {name} SELECT * FROM moved", [lo, hi])
                conn.execute(f"ALTER TABLE checkins ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")
            created.append(name)
    return created


def ensure_ahead(conn: Any, centre: dt.date, ahead_days: int, behind_days: int = 1) -> list[str]:
    """Partitions from ``behind_days`` before ``centre`` (today) to ``ahead_days`` after it."""
    return create_partitions(conn, [centre + dt.timedelta(days=n) for n in range(-behind_days, ahead_days + 1)])


def drop_before(conn: Any, cutoff_day: dt.date) -> list[str]:
    """Retention: drop every day partition wholly before ``cutoff_day`` (constant time per partition,
    whatever it holds), and delete the default partition's rows from before it (few, by design)."""
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        conn.execute("SET LOCAL lock_timeout = '5s'")  # never queue ingest behind us for long
        for day in sorted(existing_days(conn)):
            if day < cutoff_day:
                conn.execute(f"DROP TABLE {partition_name(day)}")
                dropped.append(partition_name(day))
        conn.execute(f"DELETE FROM {DEFAULT} WHERE utc_ms < %s", [day_ms(cutoff_day)])
    return dropped
