"""`kiosk run --events`: one JSON line per outcome, written only after the commit."""

import json

from conftest import run_kiosk
from kiosk.core.store import Store


def test_run_emits_events_for_scripted_visitors(config_file, state_dir):
    result = run_kiosk("--config", str(config_file), "run", "--headless", "--seconds", "8", "--events", "-")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert "accepted" in kinds and "duplicate" in kinds and "rejected" in kinds
    store = Store.open(state_dir)
    accepted = [e["checkin_id"] for e in events if e["event"] == "accepted"]
    assert set(accepted) == store.checkin_ids()
    assert store.statuses()["camera"]["state"] == "ok"
    store.close()
    for e in events:  # nothing about the visitor travels in the event stream
        assert "DEMO-HQR" not in json.dumps(e)
        assert {"event", "reason", "kind", "direction", "at_utc_ms"} <= e.keys()


def test_missing_camera_is_reported_and_retried_not_a_crash(config_file, state_dir, tmp_path):
    config_file.write_text(config_file.read_text().replace('backend = "synthetic"',
                                                           f'backend = "replay"\nreplay_path = "{tmp_path}/none"'))
    result = run_kiosk("--config", str(config_file), "run", "--headless", "--seconds", "3")
    assert result.returncode == 0
    assert "camera unavailable" in result.stderr and "Traceback" not in result.stderr
    store = Store.open(state_dir)
    assert store.statuses()["camera"]["state"] == "lost"
    store.close()
