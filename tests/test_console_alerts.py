"""Silent-device alerts: a real upstream posts to a real HTTP receiver on loopback, once per outage,
retrying a receiver that fails, and again only after the device has spoken and gone silent anew."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_kiosk
from console_helpers import HEARTBEAT
from sync import protocol as p
from upstream_helpers import RawDevice, start_upstream


class Receiver:
    """A webhook receiver that answers 500 to its first ``fail_first`` posts."""

    def __init__(self, fail_first: int = 0):
        self.posts: list[dict] = []
        self.failures_left = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                else:
                    receiver.posts.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.posts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    hook = Receiver(fail_first=2)
    yield hook
    hook.close()


def beat(device: RawDevice) -> None:
    heartbeat = {**HEARTBEAT, "sent_utc_ms": time.time_ns() // 1_000_000}
    assert device.send(p.PATH_HEARTBEAT, heartbeat).status_code == 200


def test_one_alert_per_outage_delivered_through_failures(tmp_path, receiver):
    db = str(tmp_path / "upstream.db")
    upstream = start_upstream(db, "127.0.0.1:0", "--silent-after-s", "2", "--alert-webhook", receiver.url,
                              "--alert-check-s", "0.2")
    try:
        device = RawDevice(upstream.url, "kiosk-quiet")
        assert device.enroll(db, "CHO-LON").status_code == 200
        beat(device)
        first = time.time_ns() // 1_000_000
        posts = receiver.wait_for(1)
        assert len(posts) == 1 and receiver.failures_left == 0  # two refusals, then delivered
        alert = posts[0]
        assert alert["event"] == "device-silent" and alert["device_id"] == "kiosk-quiet"
        assert alert["venue_id"] == "CHO-LON" and alert["last_heartbeat"].endswith("+07:00")
        assert abs(alert["last_heartbeat_ms"] - first) < 2000 and alert["silent_after_s"] == 2
        time.sleep(1.5)  # still silent: no second post for the same outage
        assert len(receiver.posts) == 1
        beat(device)  # the device speaks, then goes silent again: a new outage, a new alert
        assert len(receiver.wait_for(2)) == 2 and receiver.posts[1]["last_heartbeat_ms"] > alert["last_heartbeat_ms"]
        # A revoked device is not an outage to chase.
        assert run_kiosk("upstream", "revoke", "--db", db, "--device", "kiosk-quiet").returncode == 0
        beat_after = time.monotonic()
        time.sleep(3)
        assert len(receiver.posts) == 2 and time.monotonic() - beat_after >= 3
    finally:
        upstream.stop()
    # The upstream restarted does not repeat a delivered alert.
    upstream = start_upstream(db, "127.0.0.1:0", "--silent-after-s", "2", "--alert-webhook", receiver.url,
                              "--alert-check-s", "0.2")
    try:
        time.sleep(1.5)
        assert len(receiver.posts) == 2
    finally:
        upstream.stop()


def test_a_bad_webhook_url_is_refused_at_start(tmp_path):
    result = run_kiosk("upstream", "serve", "--db", str(tmp_path / "u.db"), "--alert-webhook", "file:///etc/passwd")
    assert result.returncode == 2 and "http:// or https://" in result.stderr
