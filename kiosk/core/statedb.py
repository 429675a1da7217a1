"""A read-only look at the state database, with the standard library only.

For ``kiosk status`` and the screen's status poller: it never creates, migrates or sets aside the
database (that is the writer's job, kiosk/core/store.py), and it costs no import of sqlite-utils, so a
health check stays cheap. With no ``-wal`` file no process has the database open and everything is
in the main file: it is then opened as immutable, so not even ``-wal``/``-shm`` files are created
(they would be root's when root runs ``kiosk status``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_NAME = "kiosk.db"


def read_only_connection(state_dir: Path) -> sqlite3.Connection:
    """sqlite3.Error when the file cannot be opened."""
    path = state_dir / DB_NAME
    uri = f"{path.resolve().as_uri()}?mode=ro"
    if not Path(str(path) + "-wal").exists():
        uri += "&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=2, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 2000")
    return conn
