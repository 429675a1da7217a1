"""Which storage engine a ``--db`` value names: a SQLite file, or a PostgreSQL URL.

Kept apart from both engines so that neither imports the other (tests/test_layers.py).
"""

from __future__ import annotations

from typing import Any

from sync.upstream.storage import Storage


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_storage(url: str, **options: Any) -> Storage:
    """The pooled, partitioned PostgreSQL storage for a ``postgresql://`` URL, else SQLite at that path."""
    if is_postgres(url):
        from sync.upstream.pg_storage import PgStorage

        return PgStorage(url, **options)
    return Storage(url, **options)
