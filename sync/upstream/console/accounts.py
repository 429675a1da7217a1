"""Console people, their sessions, lock-out after failed logins, and the audit log.

Kept in the upstream's own database (SQLite or PostgreSQL) beside the check-ins, in tables of their
own created on first use, through the upstream storage's connections. Passwords are Argon2id hashes
(argon2-cffi); session tokens are stored as SHA-256 hashes, so a copy of the database logs nobody in.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sync.upstream.storage import Storage, now_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,                   -- operator (may revoke, publish exposures) or viewer
    password_hash TEXT NOT NULL,          -- Argon2id, with its parameters and salt
    created_ms {int} NOT NULL,
    failed_logins {int} NOT NULL DEFAULT 0,
    locked_until_ms {int}
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY,          -- SHA-256 of the cookie's value
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,                   -- this session's form token
    created_ms {int} NOT NULL,
    expires_ms {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS console_audit (
    id TEXT PRIMARY KEY,
    at_ms {int} NOT NULL,
    actor TEXT NOT NULL,                  -- user name as typed (for a refused login) or the signed-in user
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL                  -- the client's address as the server saw it
);
CREATE INDEX IF NOT EXISTS console_audit_time ON console_audit (at_ms);
CREATE TABLE IF NOT EXISTS console_alerts (
    device_id TEXT NOT NULL,
    outage_since_ms {int} NOT NULL,       -- the last heartbeat before the silence: one alert per outage
    created_ms {int} NOT NULL,
    delivered_ms {int},
    attempts {int} NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (device_id, outage_since_ms)
)
"""

ROLES = ("operator", "viewer")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_FAILURES = 5                # failed logins in a row before the account is locked
LOCK_MS = 15 * 60_000
SESSION_MS = 8 * 3600_000       # a working day; then log in again

_hasher = PasswordHasher()      # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown names, so a refusal takes the same time either way."""
    return _hasher.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A user command that cannot be done, with the reason in words."""


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    token_hash: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class LoginResult:
    token: str | None           # the new session's cookie value, or None when refused
    reason: str                 # ok, bad-credentials or locked


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError("a user name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


class Accounts:
    """Users, sessions and the audit log, in the upstream's database."""

    def __init__(self, storage: Storage):
        self.storage = storage
        integer = "BIGINT" if storage.dialect == "postgresql" else "INTEGER"
        with storage._transaction() as cur:
            for statement in SCHEMA.format(int=integer).split(";"):
                if statement.strip():
                    cur.execute(statement)

    # ---- users --------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str) -> None:
        check_name(name)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        hashed = _hasher.hash(check_password(password))
        with self.storage._transaction() as cur:
            cur.execute("SELECT name FROM console_users WHERE name = ?", [name])
            if cur.fetchall():
                raise AccountError(f"user {name!r} exists; remove it first to change it")
            cur.execute("INSERT INTO console_users (name, role, password_hash, created_ms) VALUES (?, ?, ?, ?)",
                        [name, role, hashed, now_ms()])

    def users(self) -> list[dict[str, Any]]:
        return self.storage._query("SELECT name, role, created_ms, failed_logins, locked_until_ms "
                                   "FROM console_users ORDER BY name")

    def remove_user(self, name: str) -> bool:
        """Removes the user and ends their sessions at once."""
        with self.storage._transaction() as cur:
            cur.execute("DELETE FROM console_sessions WHERE user_name = ?", [name])
            cur.execute("DELETE FROM console_users WHERE name = ?", [name])
            return cur.rowcount == 1

    # ---- logging in ---------------------------------------------------------------------------
    def login(self, name: str, password: str, source: str) -> LoginResult:
        """A session for the right password; every refusal lands in the audit log."""
        at = now_ms()
        rows = self.storage._query("SELECT * FROM console_users WHERE name = ?", [name]) \
            if NAME_PATTERN.fullmatch(name) else []
        if not rows:
            _verify(_dummy_hash(), password)
            # What was typed is not kept: a person who types their password into the name field
            # must not find it in the audit log.
            self.audit("(unknown)", "login-refused", "", "unknown user name", source)
            return LoginResult(None, "bad-credentials")
        user = rows[0]
        if user["locked_until_ms"] is not None and user["locked_until_ms"] > at:
            self.audit(name, "login-refused", "", "account locked", source)
            return LoginResult(None, "locked")
        if not _verify(user["password_hash"], password):
            with self.storage._transaction() as cur:  # counted in the database: parallel guesses all count
                cur.execute("UPDATE console_users SET failed_logins = failed_logins + 1 WHERE name = ? "
                            "RETURNING failed_logins", [name])
                counted = cur.fetchall()
                locked = at + LOCK_MS if counted and counted[0]["failed_logins"] >= MAX_FAILURES else None
                if locked:
                    cur.execute("UPDATE console_users SET failed_logins = 0, locked_until_ms = ? WHERE name = ?",
                                [locked, name])
            detail = f"wrong password; locked for {LOCK_MS // 60_000} min" if locked else "wrong password"
            self.audit(name, "login-refused", "", detail, source)
            return LoginResult(None, "locked" if locked else "bad-credentials")
        token = secrets.token_urlsafe(32)
        with self.storage._transaction() as cur:
            if _hasher.check_needs_rehash(user["password_hash"]):
                cur.execute("UPDATE console_users SET password_hash = ? WHERE name = ?", [_hasher.hash(password), name])
            cur.execute("UPDATE console_users SET failed_logins = 0, locked_until_ms = NULL WHERE name = ?", [name])
            cur.execute("DELETE FROM console_sessions WHERE expires_ms < ?", [at])
            cur.execute("INSERT INTO console_sessions (token_hash, user_name, csrf, created_ms, expires_ms) "
                        "VALUES (?, ?, ?, ?, ?)", [_hash_token(token), name, secrets.token_urlsafe(32), at, at + SESSION_MS])
        self.audit(name, "login", "", "", source)
        return LoginResult(token, "ok")

    def session(self, token: str | None) -> Session | None:
        """The live session behind a cookie, with the user's role as it is now."""
        if not token or len(token) > 128:
            return None
        rows = self.storage._query(
            "SELECT s.token_hash, s.csrf, s.expires_ms, u.name, u.role FROM console_sessions s "
            "JOIN console_users u ON u.name = s.user_name WHERE s.token_hash = ?", [_hash_token(token)])
        if not rows or rows[0]["expires_ms"] < now_ms():
            return None
        r = rows[0]
        return Session(r["name"], r["role"], r["csrf"], r["token_hash"])

    def logout(self, session: Session, source: str) -> None:
        with self.storage._transaction() as cur:
            cur.execute("DELETE FROM console_sessions WHERE token_hash = ?", [session.token_hash])
        self.audit(session.user, "logout", "", "", source)

    # ---- audit log ----------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str, detail: str, source: str) -> None:
        with self.storage._transaction() as cur:
            cur.execute("INSERT INTO console_audit (id, at_ms, actor, action, target, detail, source) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [str(uuid.uuid4()), now_ms(), actor, action, target, detail[:500], source[:64]])

    def audit_log(self, limit: int = 500) -> list[dict[str, Any]]:
        return self.storage._query("SELECT at_ms, actor, action, target, detail, source FROM console_audit "
                                   "ORDER BY at_ms DESC, id LIMIT ?", [limit])


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False
