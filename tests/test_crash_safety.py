"""kill -9 at any moment: every check-in whose event was emitted is in the database afterwards."""

import random
import signal
import time

from conftest import start_kiosk
from kiosk.events import read_events
from kiosk.core.store import Store


def test_kill_9_never_loses_an_announced_checkin(tmp_path, config_file, state_dir):
    config_file.write_text(config_file.read_text().replace("fps = 30", "fps = 120\nsynthetic_script = \"unique\""))
    rng = random.Random(20211)
    announced: set[str] = set()
    for attempt in range(12):
        events = tmp_path / f"events-{attempt}.jsonl"
        proc = start_kiosk("--config", str(config_file), "--log-level", "ERROR", "run", "--headless",
                           "--events", str(events))
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        # Killed before it opened the events file: nothing was announced, which is fine too.
        emitted = list(read_events(events)) if events.exists() else []
        accepted = {e["checkin_id"] for e in emitted if e["event"] == "accepted"}
        announced |= accepted
        store = Store.open(state_dir)  # what the restarted service does first
        try:
            stored = store.checkin_ids()
            assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert store.statuses().get("store", {}).get("state") != "recovered"
            outbox = {r[0] for r in store.db.execute("SELECT checkin_id FROM outbox")}
        finally:
            store.close()
        missing = announced - stored
        assert not missing, f"attempt {attempt}: {len(missing)} announced check-ins lost"
        assert stored == outbox, "every check-in has its outbox entry, and no entry is orphaned"
    assert len(announced) > 50, "the kiosk should have checked in many visitors before being killed"
