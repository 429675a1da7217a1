"""Every check-in arrives exactly once through any network failure: real upstream process, real
``kiosk sync`` process, and a fault-injecting proxy between them (tests/faultproxy.py)."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, kiosk_env, require_file, run_kiosk, wait_until
from faultproxy import FaultProxy
from kiosk.core.store import Store
from sync.backlog import seed_backlog
from upstream_helpers import provision, start_upstream, upstream_ids, write_device_config

# Short timeouts and backoff caps so faults cost seconds, not minutes.
FAST = dict(batch_max_items=100, connect_timeout_s=1.0, read_timeout_s=1.0, wake_check_s=0.05, poll_interval_s=1.0,
            heartbeat_interval_s=2.0, backoff_base_s=0.05, backoff_cap_s=0.5, retry_after_max_s=2.0)
MIX = {"refuse": 0.07, "http500": 0.06, "http503": 0.05, "stall": 0.03, "cut_request": 0.07, "cut_response": 0.08}


class Rig:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.db = str(tmp_path / "upstream.db")
        self.upstream = start_upstream(self.db)
        self.upstream_port = int(self.upstream.url.rsplit(":", 1)[1])
        self.proxy = FaultProxy(self.upstream_port).start()
        self.state = tmp_path / "state"
        self.config = write_device_config(tmp_path / "kiosk.toml", self.state, **FAST)
        try:
            provision(self.config, self.upstream, url=self.proxy.url)
        except BaseException:  # a failed set-up must not leave the upstream and the proxy running
            self.proxy.stop()
            self.upstream.stop()
            raise
        self.client: subprocess.Popen | None = None
        self.client_log = tmp_path / "sync.log"
        self.closed = False

    def store(self) -> Store:
        return Store.open(self.state)

    def seed(self, count: int) -> list[str]:
        store = self.store()
        try:
            return seed_backlog(store, count, "VENUE-1", "test-device")
        finally:
            store.close()

    def start_client(self, **env: str) -> None:
        with open(self.client_log, "w") as log:
            self.client = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(self.config),
                                            "--log-level", "DEBUG", "sync"], env=kiosk_env(**env), cwd=ROOT,
                                           stdout=subprocess.DEVNULL, stderr=log)

    def counts(self) -> dict[str, int]:
        store = self.store()
        try:
            return store.outbox_counts()
        finally:
            store.close()

    def sync_status(self) -> dict:
        store = self.store()
        try:
            return store.statuses().get("sync", {})
        finally:
            store.close()

    def wait(self, predicate, timeout: float, what: str) -> None:
        def done() -> bool:
            assert self.client is None or self.client.poll() is None, "the sync client died:\n" + self.log()
            return predicate()

        wait_until(done, timeout, lambda: f"{what}; outbox {self.counts()}; proxy {self.proxy.stats.modes}\n"
                   + self.log()[-3000:], every=0.2)

    def log(self) -> str:
        return self.client_log.read_text(errors="replace") if self.client_log.exists() else ""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.client is not None and self.client.poll() is None:
            self.client.send_signal(signal.SIGTERM)
            try:
                assert self.client.wait(20) in (0, 1)
            finally:
                if self.client.poll() is None:
                    self.client.kill()
        self.proxy.stop()
        self.upstream.stop()


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def assert_exactly_once(rig: Rig, expected: set[str]) -> None:
    stored = upstream_ids(rig.db)
    assert len(stored) == len(set(stored)), "a check-in was stored twice"
    assert set(stored) == expected
    stats = json.loads(run_kiosk("upstream", "stats", "--db", rig.db).stdout)
    assert stats["total"] == stats["distinct"] == len(expected)
    counts = rig.counts()
    assert counts == {"pending": 0, "inflight": 0, "acked": len(expected), "dead": 0}


@pytest.mark.system
def test_ten_thousand_checkins_arrive_exactly_once_through_a_third_of_requests_faulted(rig):
    ids = rig.seed(10_000)
    rig.proxy.set_faults(MIX)
    rig.start_client()
    rig.wait(lambda: rig.counts()["acked"] == 10_000, 100, "all 10,000 check-ins acknowledged")
    rig.close()
    stats = rig.proxy.stats
    assert stats.faulted / stats.total >= 0.30, stats.modes
    for mode in MIX:
        assert stats.modes[mode] > 0, f"fault {mode} never happened: {stats.modes}"
    assert_exactly_once(rig, set(ids))
    # The cuts after commit made the client resend batches the upstream already had: answered as duplicates.
    uploads = [tuple(map(int, m)) for m in re.findall(r"uploaded (\d+) check-ins \((\d+) new\)", rig.log())]
    assert sum(sent for sent, _ in uploads) == 10_000  # each row acknowledged once on the device
    assert any(new < sent for sent, new in uploads), "no resend was ever answered as a duplicate"
    # No visitor data in the client's log, even at DEBUG.
    store = rig.store()
    refs = [r[0] for r in store.db.execute("SELECT visitor_ref FROM checkins LIMIT 200")]
    store.close()
    assert not any(ref in rig.log() for ref in refs)


@pytest.mark.system
def test_upstream_down_for_a_while_then_back(rig):
    rig.start_client()
    first = run_kiosk("--config", str(rig.config), "checkin", "--payload", "DEMO-HQR-0000000000A1").stdout.strip()
    # Acknowledged on the device too: taking the proxy down between the server's commit and the
    # client reading the answer would rightly leave it queued, and the count below would be 4.
    rig.wait(lambda: first in upstream_ids(rig.db) and rig.counts()["acked"] == 1, 30, "the first check-in acknowledged")
    rig.proxy.down()
    later = [run_kiosk("--config", str(rig.config), "checkin", "--payload", f"DEMO-HQR-0000000000B{i}").stdout.strip()
             for i in range(3)]
    rig.wait(lambda: rig.sync_status().get("state") == "offline" and rig.sync_status()["detail"]["queue_depth"] == 3,
             30, "the sync status to say offline, three queued")
    assert rig.sync_status()["detail"]["last_error"]
    time.sleep(2)  # several failed attempts while down
    assert set(later).isdisjoint(upstream_ids(rig.db))
    rig.proxy.up()
    rig.wait(lambda: rig.counts()["acked"] == 4, 30, "the queued check-ins after the upstream came back")
    rig.wait(lambda: rig.sync_status().get("state") == "online", 10, "the sync status to say online")
    assert_exactly_once(rig, {first, *later})


@pytest.mark.system
def test_device_clock_wrong_by_hours(rig):
    faketime = require_file("/usr/lib/*/faketime/libfaketime.so.1", "libfaketime", "libfaketime")  # any architecture
    ids = rig.seed(300)
    rig.start_client(LD_PRELOAD=str(faketime), FAKETIME="-3h", DONT_FAKE_MONOTONIC="1")
    rig.wait(lambda: rig.counts()["acked"] == 300, 60, "check-ins from a device three hours behind")
    rig.wait(lambda: _heartbeat(rig) is not None, 20, "a heartbeat")
    rig.close()
    assert_exactly_once(rig, set(ids))
    offset_h = _heartbeat(rig)["clock_offset_ms"] / 3_600_000
    assert 2.9 < offset_h < 3.1, offset_h  # the upstream sees how far off the device is


def _heartbeat(rig: Rig):
    fleet = json.loads(run_kiosk("upstream", "fleet", "--db", rig.db).stdout)
    return fleet["devices"][0]["heartbeat"]


@pytest.mark.system
def test_upstream_restarted_mid_run(rig):
    ids = rig.seed(4000)
    rig.start_client()
    rig.wait(lambda: rig.counts()["acked"] >= 800, 60, "the upload to be under way")
    rig.upstream.stop(signal.SIGKILL)  # no graceful shutdown: whatever was committed is all there is
    assert rig.counts()["acked"] < 4000
    time.sleep(1.0)
    rig.upstream = start_upstream(rig.db, f"127.0.0.1:{rig.upstream_port}")
    rig.wait(lambda: rig.counts()["acked"] == 4000, 60, "the rest after the restart")
    rig.close()
    assert_exactly_once(rig, set(ids))


@pytest.mark.system
def test_uploader_killed_mid_run_resumes_without_loss_or_repeat(rig):
    ids = rig.seed(3000)
    rig.start_client()
    rig.wait(lambda: rig.counts()["acked"] >= 500, 60, "the upload to be under way")
    rig.client.kill()  # SIGKILL: no chance to tidy up; claimed rows stay "inflight" in the database
    rig.client.wait()
    stranded = rig.counts()["inflight"]
    assert stranded > 0  # mid-drain one batch is on the wire and the next already claimed
    rig.start_client()
    rig.wait(lambda: rig.counts()["acked"] == 3000, 60, "the rest after the restart")
    rig.close()
    assert f"{stranded} check-ins were in flight when the uploader stopped" in rig.log()
    assert_exactly_once(rig, set(ids))
