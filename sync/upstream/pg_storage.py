"""The upstream's storage on PostgreSQL, for many stateless workers and a national fleet.

``open_storage("postgresql://...")`` (sync/upstream/engines.py) returns a :class:`PgStorage`, so every
caller keeps one interface; SQLite keeps the single-process path of sync/upstream/storage.py. What changes here:

- **A connection pool per worker** (psycopg_pool): a request borrows a connection for one statement
  or one transaction. Waiting for one is bounded (``pool_timeout_s``): a saturated pool or database
  raises :class:`Overloaded`, which the server answers with 503 and Retry-After at once, instead of
  queueing requests until the device times out.
- **Bounded statements**: ``statement_timeout`` on every connection, so a stuck database also ends
  in a quick 503, never in an answer slower than the server's timeout.
- **Versioned migrations** (sync/pg_migrations.py) and **check-ins partitioned by day**
  (sync/partitions.py): retention drops whole days.
- **Bulk ingest**: a batch is one multi-row ``INSERT ... SELECT FROM json_to_recordset(batch) ON
  CONFLICT DO NOTHING RETURNING id`` (one statement whatever the batch size); the ids not returned are the
  duplicates, counted and answered ``duplicate``.
- **Shared state only in the database**: nonces (replay protection), devices, tokens and console
  sessions; nothing a second worker needs lives in a worker's memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from typing import Any, Iterator

from sync.upstream import partitions
from sync.upstream.pg_migrations import migrate
from sync.upstream.storage import Device, Storage, now_ms, triage

# The bulk insert takes the batch as one JSON document that PostgreSQL unpacks into rows: psycopg's
# array parameters (one per column) are dumped element by element in Python, which cost more than the
# rest of the request together at 500 rows; json.dumps is C. (column, SQL type of the JSON value)
_COLUMNS = (("id", "text"), ("venue_id", "text"), ("device_id", "text"), ("direction", "text"),
            ("utc_ms", "bigint"), ("monotonic_ns", "bigint"), ("boot_id", "text"), ("clock_synced", "smallint"),
            ("kind", "text"), ("visitor_ref", "text"), ("sealed_subject", "text"), ("source", "text"),
            ("companion_of", "text"))
_INSERT = (f"INSERT INTO checkins ({', '.join(c for c, _ in _COLUMNS)}, received_ms) "
           f"SELECT {', '.join(c for c, _ in _COLUMNS[:10])}, decode(sealed_subject, 'hex'), "
           "coalesce(source, 'camera'), companion_of, %s::bigint "
           f"FROM json_to_recordset(%s::json) AS u({', '.join(f'{c} {t}' for c, t in _COLUMNS)}) "
           "ON CONFLICT DO NOTHING RETURNING id")
_REPEATS = ("SELECT c.id, c.device_id FROM checkins c JOIN unnest(%s::text[], %s::bigint[], %s::text[]) "
            "AS k(venue_id, utc_ms, id) ON c.venue_id = k.venue_id AND c.utc_ms = k.utc_ms AND c.id = k.id")


class Overloaded(Exception):
    """No database connection could be had within the pool's wait: shed the request (503)."""


class PgStorage(Storage):
    """PostgreSQL storage with a pool of ``pool_size`` connections (one pool per worker process)."""

    def __init__(self, url: str, pool_size: int = 8, pool_timeout_s: float = 1.0, statement_timeout_s: float = 5.0,
                 ahead_days: int = 7):
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.url = url
        self.dialect = "postgresql"
        self.pool_size = pool_size
        self._requests = 0
        self._known_days: set[dt.date] = set()
        self._days_lock = threading.Lock()
        options = f"-c statement_timeout={int(statement_timeout_s * 1000)} -c lock_timeout={int(statement_timeout_s * 1000)}"
        with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10) as conn:
            migrate(conn)
            partitions.ensure_ahead(conn, dt.datetime.now(dt.timezone.utc).date(), ahead_days)
        # min_size 1: an idle worker holds one connection, a busy one up to pool_size; reconnect_timeout
        # bounds how long a pool keeps trying a database that is gone before giving up a slot.
        self._conn_kwargs = {"autocommit": True, "row_factory": dict_row, "connect_timeout": 5, "options": options}
        self._pg_pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=pool_timeout_s,
                                       reconnect_timeout=30, open=True, name="kiosk-upstream",
                                       kwargs=self._conn_kwargs, check=self._check_idle)

    # ---- connections --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        direct = False
        try:
            conn = self._pg_pool.getconn()
        except PoolTimeout:
            stats = self._pg_pool.get_stats()
            if stats.get("pool_size", 0) >= self.pool_size and stats.get("pool_available", 0) == 0:
                raise Overloaded(f"all {self.pool_size} database connections busy") from None
            # No live connection and room for one: the database was away. It may be back before the
            # pool's reconnect backoff (1, 2, 4... s) tries again, so try once now, for this request.
            try:
                conn = psycopg.connect(self.url, **self._conn_kwargs)
            except psycopg.OperationalError:
                raise psycopg.OperationalError("no database connection could be made") from None
            direct = True
        try:
            yield conn
        finally:
            if direct:
                conn.close()
            else:
                conn.kiosk_idle_since = time.monotonic()
                self._pg_pool.putconn(conn)

    @staticmethod
    def _check_idle(conn: Any) -> None:
        """Check a pooled connection before use (one empty query) when it may be dead: something
        arrived on its socket while it was idle (a restarting server says so, then closes), or it
        sat idle for more than a second. Busy connections pass on one select() call."""
        import select

        from psycopg_pool import ConnectionPool

        readable, _, _ = select.select([conn.fileno()], [], [], 0)
        if readable or time.monotonic() - getattr(conn, "kiosk_idle_since", 0.0) > 1.0:
            ConnectionPool.check_connection(conn)

    def close(self) -> None:
        self._pg_pool.close()

    def pool_stats(self) -> dict[str, int]:
        return self._pg_pool.get_stats()

    # ---- partitions ---------------------------------------------------------------------------
    def _ensure_days(self, utc_values: list[int], force: bool = False) -> None:
        days = partitions.days_for(utc_values)  # far-off days go to the default partition
        if not days or (not force and days <= self._known_days):
            return
        with self._connection() as conn:
            partitions.create_partitions(conn, days - (set() if force else self._known_days))
            have = partitions.existing_days(conn)
        with self._days_lock:
            self._known_days = have

    def retain(self, keep_days: int, ahead_days: int, today: dt.date) -> dict[str, Any]:
        """Retention by whole days: the coming ``ahead_days`` partitions made, days before
        ``today - keep_days`` dropped in constant time per day (and the default partition's rows from
        before then deleted). The server makes the coming days' partitions at start-up too."""
        with self._connection() as conn:
            created = partitions.ensure_ahead(conn, today, ahead_days)
            dropped = partitions.drop_before(conn, today - dt.timedelta(days=keep_days))
        with self._days_lock:
            self._known_days.clear()
        return {"created": created, "dropped": dropped, "partitions": self.partition_names()}

    def partition_names(self) -> list[str]:
        return [r["relname"] for r in self._query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'checkins'::regclass ORDER BY c.relname")]

    # ---- replay protection --------------------------------------------------------------------
    def remember_nonce(self, device_id: str, nonce: str, window_ms: int) -> bool:
        """One autocommit statement (one round trip); the unique key makes it atomic across workers."""
        at = now_ms()
        with self._connection() as conn:
            fresh = conn.execute("INSERT INTO nonces (device_id, nonce, seen_ms) VALUES (%s, %s, %s) "
                                 "ON CONFLICT DO NOTHING", [device_id, nonce, at]).rowcount == 1
            self._requests += 1
            if self._requests % 500 == 0:  # served by the seen_ms index (migration 3)
                conn.execute("DELETE FROM nonces WHERE seen_ms < %s", [at - 3 * window_ms])
        return fresh

    # ---- device data --------------------------------------------------------------------------
    def store_checkins(self, device: Device, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store a batch with one multi-row insert (one statement, so one transaction); one result per item."""
        import psycopg

        at = now_ms()
        try:
            return self._store(device, items, at)
        except psycopg.errors.CheckViolation:
            # "no partition of relation found": a day dropped by retention or made by no one yet.
            self._ensure_days([i["utc_ms"] for i in items], force=True)
            return self._store(device, items, at)

    def _store(self, device: Device, items: list[dict[str, Any]], at: int) -> list[dict[str, Any]]:
        self._ensure_days([i["utc_ms"] for i in items])
        venues = {device.venue_id}
        if any(item["venue_id"] != device.venue_id for item in items):  # rows queued before a move of venue
            venues |= {r["venue_id"] for r in self._query("SELECT venue_id FROM device_venues WHERE device_id = ?",
                                                          [device.device_id])}
        results, rows = triage(device, items, venues)
        with self._connection() as conn:
            if rows:
                # One statement, so one transaction without BEGIN/COMMIT round trips: the batch and the
                # device's last-seen time are stored together or not at all.
                inserted = {r["id"] for r in conn.execute(
                    "WITH seen AS (UPDATE devices SET last_seen_ms = %s WHERE device_id = %s) " + _INSERT,
                    [at, device.device_id, at, json.dumps(rows, default=bytes.hex)]).fetchall()}
            else:
                conn.execute("UPDATE devices SET last_seen_ms = %s WHERE device_id = %s", [at, device.device_id])
                inserted = set()
            repeats = [r for r in rows if r["id"] not in inserted]
            if repeats:
                found = conn.execute(_REPEATS, [[r["venue_id"] for r in repeats], [r["utc_ms"] for r in repeats],
                                                [r["id"] for r in repeats]]).fetchall()
                for r in found:
                    same = r["device_id"] == device.device_id
                    results[r["id"]] = {"id": r["id"], "status": "duplicate" if same else "rejected",
                                        "reason": None if same else "id-conflict"}
        return [results[item_id] for item_id in dict.fromkeys(i["id"] for i in items)]

    def record_heartbeat(self, device: Device, heartbeat: dict[str, Any]) -> None:
        """The device's last state, upserted in its row: one autocommit statement, no history kept
        (the fleet view needs the latest only; at 100,000 kiosks a history would be 144 M rows a day)."""
        at = now_ms()
        with self._connection() as conn:
            conn.execute("UPDATE devices SET last_heartbeat_ms = %s, last_seen_ms = %s, heartbeat = %s, "
                         "software_version = %s WHERE device_id = %s",
                         [at, at, json.dumps(heartbeat, sort_keys=True), heartbeat["software_version"],
                          device.device_id])

