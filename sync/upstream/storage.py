"""The upstream's storage on SQLite (one process), and the queries PostgreSQL's storage inherits.

Exactly-once rests on one rule: a check-in's UUID is its primary key and every insert is
``ON CONFLICT DO NOTHING``; a batch is one transaction, so a batch is stored whole or not at all,
and a repeat (the client retrying after a lost answer) is reported as a duplicate, never stored twice.
SQL is written once with ``?`` placeholders; on PostgreSQL (sync/upstream/pg_storage.py, which keeps its
own connections, ingest and nonces) the cursor rewrites them to ``%s``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import queue
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sync.protocol import ProtocolError
from sync.upstream import partitions

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL,
    public_key {blob} NOT NULL,
    software_version TEXT NOT NULL,
    enrolled_ms {int} NOT NULL,
    revoked_ms {int},
    last_seen_ms {int},
    last_heartbeat_ms {int},
    heartbeat TEXT
);
CREATE TABLE IF NOT EXISTS device_venues (  -- every venue a device was enrolled at: its queued rows stay valid
    device_id TEXT NOT NULL,
    venue_id TEXT NOT NULL,
    PRIMARY KEY (device_id, venue_id)
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,           -- SHA-256 of the token: a leaked database enrolls nobody
    kind TEXT NOT NULL,                    -- enroll (one-time) or operator (bearer for /v1/admin)
    venue_id TEXT,
    created_ms {int} NOT NULL,
    expires_ms {int},
    used_ms {int},
    used_by TEXT,
    used_key {blob},
    device_id TEXT                         -- set: enrolls (or re-keys) only this device id
);
CREATE TABLE IF NOT EXISTS nonces (
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_ms {int} NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE TABLE IF NOT EXISTS checkins (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    utc_ms {int} NOT NULL,
    monotonic_ns {int} NOT NULL,
    boot_id TEXT NOT NULL,
    clock_synced SMALLINT NOT NULL,
    kind TEXT NOT NULL,
    visitor_ref TEXT NOT NULL,
    sealed_subject {blob},
    received_ms {int} NOT NULL,
    source TEXT NOT NULL DEFAULT 'camera',
    companion_of TEXT
);
CREATE INDEX IF NOT EXISTS checkins_venue_time ON checkins (venue_id, utc_ms);
CREATE TABLE IF NOT EXISTS beacon_keys (
    device_id TEXT NOT NULL,
    venue_id TEXT NOT NULL,
    base_key TEXT NOT NULL,
    key_day TEXT NOT NULL,
    registered_ms {int} NOT NULL,
    PRIMARY KEY (device_id, base_key)
);
"""

CHECKIN_COLUMNS = ("id", "venue_id", "device_id", "direction", "utc_ms", "monotonic_ns", "boot_id",
                   "clock_synced", "kind", "visitor_ref", "sealed_subject", "source", "companion_of", "received_ms")
# Columns added after the first release: (column, definition) for databases created before them.
ADDED_CHECKIN_COLUMNS = (("source", "TEXT NOT NULL DEFAULT 'camera'"), ("companion_of", "TEXT"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Enrolled:
    """What an enrollment did: ``enrolled`` (new device), ``retry`` (same request again), ``re-enrolled``
    (same key, e.g. moved venue), ``re-keyed`` (new key, on a token issued for this device) or
    ``re-enrolled-after-revocation`` (new key after the operator revoked the old one)."""

    enrolled_ms: int
    action: str


@dataclass(frozen=True)
class Device:
    device_id: str
    venue_id: str
    public_key: bytes
    revoked_ms: int | None


def triage(device: Device, items: list[dict[str, Any]],
           venues: set[str]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each item's verdict before the insert, by id (an id repeated in the batch counts once): rejected
    when it names another device or a venue this device never had, else stored (until the insert finds
    it already there); and the items to insert. One rule for both storage engines."""
    results: dict[str, dict[str, Any]] = {}
    accepted = []
    for item in items:
        if item["id"] in results:
            continue
        if item["device_id"] != device.device_id:
            results[item["id"]] = {"id": item["id"], "status": "rejected", "reason": "device-mismatch"}
        elif item["venue_id"] not in venues:
            results[item["id"]] = {"id": item["id"], "status": "rejected", "reason": "venue-mismatch"}
        else:
            results[item["id"]] = {"id": item["id"], "status": "stored", "reason": None}
            accepted.append(item)
    return results, accepted


class Storage:
    """Thread-safe: each call borrows a connection from a small pool (uvicorn runs handlers in threads)."""

    def __init__(self, url: str, pool_size: int = 8):
        if url.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL needs the partitioned storage: sync.upstream.engines.open_storage")
        self.url = url
        self.dialect = "sqlite"
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._requests = 0
        with self._transaction() as cur:
            for statement in SCHEMA.format(blob="BLOB", int="INTEGER").split(";"):
                if statement.strip():
                    cur.execute(statement)
            for column, definition in ADDED_CHECKIN_COLUMNS:
                self._add_column(cur, "checkins", column, definition)
            self._add_column(cur, "tokens", "device_id", "TEXT")

    def _add_column(self, cur: "_Cursor", table: str, column: str, sql_type: str) -> None:
        """Bring a database made by an earlier version up to the schema (CREATE IF NOT EXISTS adds no column)."""
        cur.execute(f"SELECT name FROM pragma_table_info('{table}')")
        if column not in {r["name"] for r in cur.fetchall()}:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    # ---- connections --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        path = self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:///") else self.url
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(Path(path).expanduser(), timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = lambda cur, row: {d[0]: v for d, v in zip(cur.description, row)}
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # an acknowledged check-in survives a power cut
        conn.execute("PRAGMA busy_timeout = 30000")
        # A checkpoint every 40 MB of WAL rather than 4 MB: a batch's random UUIDs dirty a few hundred index
        # pages, which were copied back and fsynced almost every batch (half of a batch's storing time).
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        self._slots.acquire()
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                yield conn
            finally:
                self._pool.put(conn)
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def _transaction(self, fsync: bool = True) -> Iterator["_Cursor"]:
        """One write transaction; takes SQLite's write lock up front so check-then-insert is atomic.

        ``fsync=False`` (SQLite): the commit reaches the WAL without waiting for the disk. It is made
        durable by the next commit that does wait (the WAL is one file, synced up to its end), so a
        power cut loses it only together with everything written after it.
        """
        with self._connection() as conn:
            if self.dialect == "postgresql":
                with conn.transaction():
                    yield _Cursor(conn.cursor(), self.dialect)
                return
            if not fsync:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Cursor(conn.cursor(), self.dialect)
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (disk full)
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not fsync:
                    conn.execute("PRAGMA synchronous = FULL")

    def _query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        with self._connection() as conn:
            cur = _Cursor(conn.cursor(), self.dialect)
            cur.execute(sql, params)
            return cur.fetchall()

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # ---- tokens and enrollment ----------------------------------------------------------------
    def create_token(self, kind: str, venue_id: str | None = None, ttl_s: float | None = None,
                     device_id: str | None = None) -> str:
        """A new token; an enrollment token issued with ``device_id`` may re-key that enrolled device."""
        token = ("kt_" if kind == "enroll" else "ko_") + secrets.token_urlsafe(24)
        created = now_ms()
        expires = created + int(ttl_s * 1000) if ttl_s else None
        with self._transaction() as cur:
            cur.execute("INSERT INTO tokens (token_hash, kind, venue_id, created_ms, expires_ms, device_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [token_hash(token), kind, venue_id, created, expires, device_id])
        return token

    def operator_token_valid(self, token: str) -> bool:
        rows = self._query("SELECT expires_ms FROM tokens WHERE token_hash = ? AND kind = 'operator'", [token_hash(token)])
        return bool(rows) and (rows[0]["expires_ms"] is None or rows[0]["expires_ms"] > now_ms())

    def enroll(self, token: str, device_id: str, venue_id: str, public_key: bytes, software_version: str) -> Enrolled:
        """Spend a one-time token on (device, key); the same request again is answered the same way.

        A device id is bound to one key: an enrolled device may come back with the key it holds (to
        move venue), but a new key for it takes an operator's decision, either a token issued for
        that device id or revoking it first. A revoked key is never accepted again.
        """
        at = now_ms()
        with self._transaction() as cur:
            cur.execute("SELECT * FROM tokens WHERE token_hash = ? AND kind = 'enroll'", [token_hash(token)])
            rows = cur.fetchall()
            if not rows:
                raise ProtocolError(403, "bad-token", "enrollment token is not known")
            tok = rows[0]
            if tok["venue_id"] != venue_id:
                raise ProtocolError(403, "venue-mismatch", "this token was issued for another venue")
            if tok["device_id"] is not None and tok["device_id"] != device_id:
                raise ProtocolError(403, "device-mismatch", "this token was issued for another device")
            if tok["used_ms"] is not None:
                if tok["used_by"] == device_id and bytes(tok["used_key"]) == public_key:
                    return Enrolled(tok["used_ms"], "retry")  # a retry after a lost answer
                raise ProtocolError(403, "token-used", "enrollment token was already used")
            if tok["expires_ms"] is not None and tok["expires_ms"] < at:
                raise ProtocolError(403, "token-expired", "enrollment token has expired")
            cur.execute("SELECT public_key, revoked_ms FROM devices WHERE device_id = ?", [device_id])
            existing = cur.fetchall()
            action = "enrolled"
            if existing:
                same_key = bytes(existing[0]["public_key"]) == public_key
                if existing[0]["revoked_ms"] is not None:
                    if same_key:
                        raise ProtocolError(403, "device-revoked", "this device id was revoked; enroll it with a new key")
                    action = "re-enrolled-after-revocation"
                elif same_key:
                    action = "re-enrolled"
                elif tok["device_id"] == device_id:
                    action = "re-keyed"
                else:
                    raise ProtocolError(409, "device-enrolled",
                                        "this device id is enrolled with another key; a new key needs a token "
                                        "issued for this device (`kiosk upstream token --device ID`) or a revocation")
            cur.execute(
                """INSERT INTO devices (device_id, venue_id, public_key, software_version, enrolled_ms)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (device_id) DO UPDATE SET venue_id = excluded.venue_id,
                   public_key = excluded.public_key, software_version = excluded.software_version,
                   enrolled_ms = excluded.enrolled_ms, revoked_ms = NULL""",
                [device_id, venue_id, public_key, software_version, at])
            cur.execute("INSERT INTO device_venues (device_id, venue_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [device_id, venue_id])
            cur.execute("UPDATE tokens SET used_ms = ?, used_by = ?, used_key = ? WHERE token_hash = ?",
                        [at, device_id, public_key, token_hash(token)])
        return Enrolled(at, action)

    def device(self, device_id: str) -> Device | None:
        rows = self._query("SELECT device_id, venue_id, public_key, revoked_ms FROM devices WHERE device_id = ?", [device_id])
        if not rows:
            return None
        r = rows[0]
        return Device(r["device_id"], r["venue_id"], bytes(r["public_key"]), r["revoked_ms"])

    def revoke(self, device_id: str) -> bool:
        with self._transaction() as cur:
            cur.execute("UPDATE devices SET revoked_ms = ? WHERE device_id = ? AND revoked_ms IS NULL", [now_ms(), device_id])
            return cur.rowcount == 1

    # ---- replay protection --------------------------------------------------------------------
    def remember_nonce(self, device_id: str, nonce: str, window_ms: int) -> bool:
        """False if this device used this nonce before (a replay). Old nonces are pruned now and then:
        a request older than the timestamp window is refused anyway, so its nonce need not be kept."""
        at = now_ms()
        # Not fsynced on its own (a wait of about a batch's whole storing time): whatever the request then
        # changes is committed with an fsync after it, which makes the nonce durable too. A power cut
        # before that loses the nonce only with the request's effect, so a replay still acts at most once.
        with self._transaction(fsync=False) as cur:
            cur.execute("INSERT INTO nonces (device_id, nonce, seen_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        [device_id, nonce, at])
            fresh = cur.rowcount == 1
            self._requests += 1
            if self._requests % 500 == 0:
                cur.execute("DELETE FROM nonces WHERE seen_ms < ?", [at - 3 * window_ms])
        return fresh

    # ---- device data --------------------------------------------------------------------------
    def store_checkins(self, device: Device, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store a batch in one transaction; one result per item: stored, duplicate or rejected."""
        at = now_ms()
        with self._transaction() as cur:
            cur.execute("SELECT venue_id FROM device_venues WHERE device_id = ?", [device.device_id])
            venues = {r["venue_id"] for r in cur.fetchall()} | {device.venue_id}
            results, accepted = triage(device, items, venues)
            rows = []
            for item in accepted:
                row = {"source": "camera", "companion_of": None, **item}  # items from before those fields
                rows.append([row[c] for c in CHECKIN_COLUMNS[:-1]] + [at])
            inserted = _insert_absent(cur, rows)
            repeats = [row[0] for row in rows if row[0] not in inserted]
            for chunk in _chunks(repeats, 500):
                cur.execute(f"SELECT id, device_id FROM checkins WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
                for r in cur.fetchall():
                    same = r["device_id"] == device.device_id
                    results[r["id"]] = {"id": r["id"], "status": "duplicate" if same else "rejected",
                                        "reason": None if same else "id-conflict"}
            cur.execute("UPDATE devices SET last_seen_ms = ? WHERE device_id = ?", [at, device.device_id])
        return [results[item_id] for item_id in dict.fromkeys(i["id"] for i in items)]

    def record_heartbeat(self, device: Device, heartbeat: dict[str, Any]) -> None:
        at = now_ms()
        with self._transaction() as cur:
            cur.execute("UPDATE devices SET last_heartbeat_ms = ?, last_seen_ms = ?, heartbeat = ?, software_version = ? "
                        "WHERE device_id = ?", [at, at, json.dumps(heartbeat, sort_keys=True),
                                               heartbeat["software_version"], device.device_id])

    def register_beacon_key(self, device: Device, base_key_hex: str, key_day: str) -> bool:
        with self._transaction() as cur:
            cur.execute("INSERT INTO beacon_keys (device_id, venue_id, base_key, key_day, registered_ms) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [device.device_id, device.venue_id, base_key_hex.lower(), key_day, now_ms()])
            return cur.rowcount == 1

    # ---- operator views -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        total = self._query("SELECT count(*) AS n FROM checkins")[0]["n"]
        distinct = self._query("SELECT count(*) AS n FROM (SELECT DISTINCT device_id, boot_id, monotonic_ns "
                               "FROM checkins) AS scans")[0]["n"]
        devices = self._query("SELECT count(*) AS n FROM devices")[0]["n"]
        venues = self._query("SELECT count(DISTINCT venue_id) AS n FROM checkins")[0]["n"]
        return {"total": total, "distinct": distinct, "devices": devices, "venues": venues}

    def retain(self, keep_days: int, ahead_days: int, today: dt.date) -> dict[str, Any]:
        """Retention (``kiosk upstream retention``, daily by kiosk-upstream-retention.timer): check-ins
        scanned before ``today - keep_days`` (UTC days) are deleted. SQLite serves one process, a small
        deployment, so a row-by-row delete is fine; PostgreSQL drops whole days (pg_storage.py).
        ``ahead_days`` is for PostgreSQL's partitions; SQLite has none."""
        cutoff_ms = partitions.day_ms(today - dt.timedelta(days=keep_days))
        with self._transaction() as cur:
            cur.execute("DELETE FROM checkins WHERE utc_ms < ?", [cutoff_ms])
            deleted = cur.rowcount
        return {"deleted": deleted, "kept_from_ms": cutoff_ms}

    def checkin_ids(self, device_id: str | None = None) -> set[str]:
        where, params = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
        return {r["id"] for r in self._query(f"SELECT id FROM checkins {where}", params)}

    def fleet(self, silent_after_s: float) -> list[dict[str, Any]]:
        at = now_ms()
        out = []
        for r in self._query("SELECT device_id, venue_id, enrolled_ms, revoked_ms, last_seen_ms, last_heartbeat_ms, "
                             "heartbeat FROM devices ORDER BY device_id"):
            last = r["last_heartbeat_ms"]
            out.append({**r, "heartbeat": json.loads(r["heartbeat"]) if r["heartbeat"] else None,
                        "silent": r["revoked_ms"] is None and (last is None or at - last > silent_after_s * 1000)})
        return out

    def trace(self, venue_id: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Check-ins at a venue with a scan time in [start_ms, end_ms], oldest first."""
        rows = self._query("SELECT id, venue_id, device_id, direction, utc_ms, clock_synced, kind, visitor_ref, "
                           "sealed_subject, source, companion_of, received_ms FROM checkins WHERE venue_id = ? AND utc_ms >= ? AND utc_ms <= ? "
                           "ORDER BY utc_ms, id", [venue_id, start_ms, end_ms])
        for r in rows:
            r["clock_synced"] = bool(r["clock_synced"])
            r["sealed_subject"] = bytes(r["sealed_subject"]) if r["sealed_subject"] is not None else None
        return rows

    def beacon_keys(self, venue_id: str) -> list[dict[str, Any]]:
        return self._query("SELECT device_id, base_key, key_day FROM beacon_keys WHERE venue_id = ? "
                           "ORDER BY key_day, device_id", [venue_id])


class _Cursor:
    """A DB-API cursor that takes ``?`` placeholders on both back ends."""

    def __init__(self, cursor: Any, dialect: str):
        self._cursor = cursor
        self._pg = dialect == "postgresql"

    def execute(self, sql: str, params: list | tuple = ()) -> None:
        self._cursor.execute(sql.replace("?", "%s") if self._pg else sql, params)

    def executemany(self, sql: str, rows: list) -> None:
        self._cursor.executemany(sql.replace("?", "%s") if self._pg else sql, rows)

    def fetchall(self) -> list[dict[str, Any]]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


def _insert_absent(cur: _Cursor, rows: list[list]) -> set[str]:
    """SQLite, under the write lock BEGIN IMMEDIATE took: the ids already stored are looked up, the
    others inserted by one executemany (a multi-row INSERT ... RETURNING cost a third more CPU)."""
    present: set[str] = set()
    for chunk in _chunks([row[0] for row in rows], 500):
        cur.execute(f"SELECT id FROM checkins WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
        present.update(r["id"] for r in cur.fetchall())
    fresh = [row for row in rows if row[0] not in present]
    cur.executemany(f"INSERT INTO checkins ({', '.join(CHECKIN_COLUMNS)}) VALUES ({', '.join('?' * len(CHECKIN_COLUMNS))})",
                    fresh)
    return {row[0] for row in fresh}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
