"""Silent-device alerts: a device without a heartbeat for longer than the threshold is posted to a
webhook once per outage (an outage is named by the device and its last heartbeat before the
silence), retried until the receiver answers 2xx, and recorded in the database so a restarted
upstream does not post it again."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any, AsyncIterator

from sync.upstream.console.localtime import iso_local
from sync.upstream.storage import Storage, now_ms

log = logging.getLogger("sync.console.alerts")

MAX_ATTEMPTS = 20
TIMEOUT_S = 10


def check_webhook_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise ValueError("--alert-webhook must be an http:// or https:// URL")
    return url


class SilentDeviceAlerts:
    def __init__(self, storage: Storage, silent_after_s: int, webhook_url: str):
        self.storage = storage
        self.silent_after_s = silent_after_s
        self.webhook_url = check_webhook_url(webhook_url)

    def check_once(self) -> int:
        """Records new outages and posts every undelivered one; returns how many were delivered."""
        at = now_ms()
        for d in self.storage.fleet(self.silent_after_s):
            if d["silent"]:
                with self.storage._transaction() as cur:
                    cur.execute("INSERT INTO console_alerts (device_id, outage_since_ms, created_ms) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING",
                                [d["device_id"], d["last_heartbeat_ms"] or d["enrolled_ms"], at])
        pending = self.storage._query(
            "SELECT a.device_id, a.outage_since_ms, a.attempts, d.venue_id, d.last_heartbeat_ms FROM console_alerts a "
            "JOIN devices d ON d.device_id = a.device_id WHERE a.delivered_ms IS NULL AND a.attempts < ? "
            "AND d.revoked_ms IS NULL", [MAX_ATTEMPTS])
        delivered = 0
        for alert in pending:
            error = self._post(alert)
            with self.storage._transaction() as cur:
                cur.execute("UPDATE console_alerts SET attempts = attempts + 1, last_error = ?, delivered_ms = ? "
                            "WHERE device_id = ? AND outage_since_ms = ?",
                            [error, None if error else now_ms(), alert["device_id"], alert["outage_since_ms"]])
            delivered += error is None
        return delivered

    def _post(self, alert: dict[str, Any]) -> str | None:
        body = json.dumps({
            "event": "device-silent", "device_id": alert["device_id"], "venue_id": alert["venue_id"],
            "last_heartbeat_ms": alert["last_heartbeat_ms"], "last_heartbeat": iso_local(alert["last_heartbeat_ms"]),
            "silent_after_s": self.silent_after_s, "sent_at": iso_local(now_ms())}).encode("utf-8")
        request = urllib.request.Request(self.webhook_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                answer.read(65536)
            return None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("silent-device alert for %s not delivered: %s", alert["device_id"], exc)
            return str(exc)[:300]

    def run(self, stop: threading.Event, every_s: float) -> None:
        """Checks every ``every_s`` until ``stop``; storage trouble is logged and tried again later."""
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:  # the watcher must outlive a database restart
                log.exception("silent-device check failed")
            stop.wait(every_s)


def attach(app: Any) -> None:
    """Runs the watcher in a thread for the app's lifetime (uvicorn's lifespan)."""
    settings = app.state.settings
    watcher = SilentDeviceAlerts(app.state.storage, settings.silent_after_s, settings.alert_webhook_url)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop, settings.alert_check_s), daemon=True,
                                  name="silent-device-alerts")
        thread.start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            stop.set()

    app.router.lifespan_context = lifespan
