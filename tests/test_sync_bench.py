"""`kiosk bench sync`: the benchmark runs whole on a small backlog and its floor writes the same rows
the upstream stores (so a schema change that the floor misses fails here, not in a release's figures)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import run_kiosk


@pytest.mark.system
def test_bench_sync_delivers_the_backlog_and_measures_its_floor():
    result = run_kiosk("bench", "sync", "--backlog", "500", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    assert figures["upstream_stored"] == figures["upstream_distinct"] == 500
    assert figures["client"]["sent"] == 500 and figures["client"]["remaining"] == 0
    assert figures["floor_executemany_s"] > 0 and figures["ratio_to_floor"] > 0
    ingest = figures["upstream_ingest"]["sqlite"]
    assert ingest["stored"] == ingest["checkins"] and ingest["failed_requests"] == 0


def test_the_floor_inserts_every_column_of_the_upstreams_table(tmp_path):
    from kiosk.sync_bench import executemany_floor
    from sync.upstream.storage import CHECKIN_COLUMNS

    executemany_floor(tmp_path / "floor.db", 25)
    with sqlite3.connect(tmp_path / "floor.db") as conn:
        rows = conn.execute(f"SELECT {', '.join(CHECKIN_COLUMNS)} FROM checkins").fetchall()
    assert len(rows) == 25 and all(row[CHECKIN_COLUMNS.index("source")] == "camera" for row in rows)
