"""``kiosk sync``: the uploader process. Drains the outbox to the upstream and reports its health.

It shares only the SQLite file with the scanner: a commit by another process changes
``PRAGMA data_version`` on this connection, so polling that pragma (a read of shared memory, no
disk I/O) every ``wake_check_s`` wakes the uploader within a fraction of a second of a check-in,
while the full look at the queue happens only every ``poll_interval_s``.

Failures: no answer, 5xx or 429 → rows back to pending, full-jitter exponential backoff, Retry-After
honoured. A 4xx about the content (400/413/422) → the batch is split in halves until the rows at
fault are found; those become dead letters carrying the upstream's reason. A 4xx about the device
(signature, revoked, unknown) leaves rows pending: it is not their fault, and an operator can fix it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from kiosk import __version__
from kiosk.core.clock import kernel_clock_synced
from kiosk.core.config import Config, SettingsWatch
from kiosk.core.lifecycle import backoff_delays
from kiosk.core.records import Component, NearbyState, SyncState, read_records
from kiosk.core.store import Store
from sync import protocol as p
from sync.enroll import INTENT_FILE, Completion
from sync.identity import Enrollment, load_enrollment, load_key
from sync.outbox import Claimed, Outbox, batch_document
from sync.transport import BadReply, Reply, Unreachable, UpstreamSession

log = logging.getLogger("kiosk.sync")

CLOCK_RESYNC_S = 3600.0
# The oldest unsent row's scan time joins every unsent row to its check-in (0.2 s of CPU at 100,000
# rows): the status refreshes it this often while uploading, and at every forced report.
OLDEST_EVERY_S = 15.0
SYNC_NOW_FILE = "sync-now"  # touched by the screen's "Sync now" button (kiosk/screen/app.py)
CONTENT_STATUSES = (400, 413, 422)
IN_FLIGHT = 2  # batches on the wire at once: the upstream validates one while it stores the other
BeaconRecord = Callable[[], "dict[str, Any] | None"]


class NotEnrolled(RuntimeError):
    """No device key or enrollment in the state directory: run ``kiosk provision`` first."""


@dataclass
class SyncResult:
    sent: int = 0          # acknowledged by the upstream (stored or already there)
    dead: int = 0          # refused for good
    failures: int = 0      # failed attempts (network, server, auth)
    remaining: int = 0     # not yet acknowledged when the run ended
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Uploader:
    def __init__(self, config: Config, store: Store | None = None, beacon_record: BeaconRecord | None = None):
        self.config = config
        self.settings = config.sync
        enrollment = load_enrollment(config.state_dir)
        key = load_key(config.state_dir)
        if enrollment is None or key is None:
            raise NotEnrolled(f"no enrollment in {config.state_dir}: run `kiosk provision --upstream URL "
                              "--token TOKEN --venue ID` first")
        self.enrollment: Enrollment = enrollment
        self._key = key
        self.session = self._new_session()
        self._settings_watch = SettingsWatch(config)
        self._completion = Completion(self.settings.backoff_base_s * 5, self.settings.backoff_cap_s)
        self.store = store or Store.open(config.state_dir)
        # This connection only moves outbox rows between states (and writes the "sync" status). A power
        # cut may roll the last of those moves back, to "pending" or "inflight": the rows go again and
        # the upstream answers "duplicate" (exactly once by UUID). Check-ins themselves are written by
        # the scanner's connection, which stays synchronous=FULL. So the uploader does not wait for an
        # fsync per batch (two per batch were a third of its time: docs/sync.md).
        self.store.conn.execute("PRAGMA synchronous = NORMAL")
        self.outbox = Outbox(self.store)
        self.beacon_record = beacon_record if beacon_record is not None else default_beacon_record(config)
        self.result = SyncResult()
        self._delay = backoff_delays(self.settings.backoff_base_s, self.settings.backoff_cap_s)
        self._failures = 0          # consecutive
        self._retry_after: float | None = None
        self._state = SyncState.STARTING
        previous = read_records(self.store.conn).get(Component.SYNC)
        self._last_success_ms: int | None = previous.get("last_success_ms") if previous else None  # kept across runs
        self._last_error_ms: int | None = None
        self._clock_synced_at = -CLOCK_RESYNC_S
        self._next_heartbeat = 0.0
        self._beacon_sent: str | None = None
        self._last_report = 0.0
        self._oldest: int | None = None  # scan time of the oldest unsent row, as of _oldest_at
        self._oldest_at = -OLDEST_EVERY_S
        self._sender = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="sync-send")
        self._alive: Callable[[], None] = lambda: None
        self._sync_now_seen = self._sync_now_mtime()

    def _new_session(self) -> UpstreamSession:
        url = self.settings.upstream_url or self.enrollment.upstream_url
        return UpstreamSession(url, self.enrollment.device_id, self._key, self.settings.ca_bundle,
                               self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def _follow_settings(self) -> bool:
        """Take up settings changed by another process between requests; True if the upstream changed."""
        fresh = self._settings_watch.poll()
        if fresh is None:
            return False
        self.config, self.settings = fresh, fresh.sync
        session = self._new_session()
        if (session.base_url, session.verify) != (self.session.base_url, self.session.verify):
            log.info("uploading to %s from now on", session.base_url)
            session.offset_ms, self._clock_synced_at = self.session.offset_ms, -CLOCK_RESYNC_S
            self.session.close()
            self.session = session
            return True
        session.close()
        return False

    def _complete_enrollment(self) -> bool:
        """A provisioning saved while running (the kiosk moved venue): enroll it, then upload as that."""
        if not (self.config.state_dir / INTENT_FILE).exists() or not self._completion.step(self.config):
            return False
        enrollment = load_enrollment(self.config.state_dir)
        if enrollment is None or enrollment == self.enrollment:
            return False
        self.enrollment = enrollment
        self.session.close()
        self.session = self._new_session()
        return True

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self.session.close()
        self.store.close()

    @property
    def state(self) -> str:
        """What the uploader is doing now ("online", "offline", ...), as its "sync" status says."""
        return self._state

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, once: bool = False, seconds: float | None = None,
            alive: Callable[[], None] = lambda: None) -> SyncResult:
        """Until ``stop`` (or ``seconds``); with ``once``: until the queue is empty or a failure.

        ``alive`` is called at least once a second while the loop is healthy, and after every batch
        (a hook for a service watchdog); a request blocks it for at most the connect + read timeouts.
        """
        self._alive = alive
        deadline = time.monotonic() + seconds if seconds else None
        recovered = self.outbox.recover()
        if recovered:
            log.info("%d check-ins were in flight when the uploader stopped; sending them again", recovered)
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            ok = self._cycle(stop)
            self._report(force=True)
            if once and (not ok or not self.outbox.has_pending()):
                break
            if not ok:
                wait = self._backoff()
                log.warning("upstream not reached (%s); retrying in %.1f s", self.result.last_error, wait)
                self._report(force=True, next_retry_s=round(wait, 1))
                self._sleep(stop, wait if deadline is None else max(0.0, min(wait, deadline - time.monotonic())))
                continue
            self._wait_for_work(stop, deadline)
        self.result.remaining = self.outbox.depth()[0]
        self._report(force=True)
        return self.result

    def _cycle(self, stop: threading.Event) -> bool:
        """One pass: clock, beacon key, the queue, the heartbeat. False after a failure."""
        try:
            if time.monotonic() - self._clock_synced_at > CLOCK_RESYNC_S:
                self._sync_clock()
            if not self._register_beacon_key():
                return False
            if not self._drain(stop):
                return False
            if time.monotonic() >= self._next_heartbeat:
                return self._heartbeat()
            return True
        except Unreachable as exc:
            self._failed(SyncState.OFFLINE, str(exc))
            return False
        except BadReply as exc:
            self._failed_reply(exc.reply)
            return False

    def _wait_for_work(self, stop: threading.Event, deadline: float | None) -> None:
        """Sleep until another process commits (data_version changes), the poll interval or the heartbeat."""
        version = self._data_version()
        until = min(time.monotonic() + self.settings.poll_interval_s, self._next_heartbeat)
        if deadline is not None:
            until = min(until, deadline)
        while not stop.wait(self.settings.wake_check_s):
            self._alive()
            if self._follow_settings() | self._complete_enrollment():
                return
            if self._sync_now_requested():
                return
            now_version = self._data_version()
            if now_version != version:
                if self.outbox.has_pending():
                    return
                version = now_version  # another process wrote something else (a status row)
            if time.monotonic() >= until:
                return

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """A backoff wait; "Sync now" on the screen ends it, and the backoff starts over."""
        end = time.monotonic() + seconds
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            self._alive()
            if self._sync_now_requested() or self._follow_settings() | self._complete_enrollment():
                self._failures = 0
                self._retry_after = None
                return
            stop.wait(min(left, 1.0))

    def _sync_now_mtime(self) -> int | None:
        try:
            return (self.config.state_dir / SYNC_NOW_FILE).stat().st_mtime_ns
        except OSError:
            return None

    def _sync_now_requested(self) -> bool:
        mtime = self._sync_now_mtime()
        if mtime is None or mtime == self._sync_now_seen:
            return False
        self._sync_now_seen = mtime
        log.info("sync requested on the screen")
        return True

    def _data_version(self) -> int:
        return self.store.conn.execute("PRAGMA data_version").fetchone()[0]

    def _backoff(self) -> float:
        wait = self._delay(max(0, self._failures - 1))
        if self._retry_after is not None:
            wait = max(wait, min(self._retry_after, self.settings.retry_after_max_s))
        return wait

    # ---- clock ---------------------------------------------------------------------------------
    def _sync_clock(self) -> None:
        offset = self.session.sync_clock()
        self._clock_synced_at = time.monotonic()
        if abs(offset) > 60_000:
            log.warning("device clock differs from the upstream's by %.0f s; signing with corrected time",
                        offset / 1000)

    def _clock_skew(self, reply: Reply) -> bool:
        """A clock-skew refusal carries the server's time: adopt it and say whether to retry at once."""
        server = reply.body.get("server_time_ms")
        if reply.reason != "clock-skew" or not isinstance(server, int):
            return False
        self.session.offset_ms = server - time.time_ns() // 1_000_000
        self._clock_synced_at = time.monotonic()
        return True

    # ---- check-ins -----------------------------------------------------------------------------
    def _drain(self, stop: threading.Event) -> bool:
        """Send batches until the queue is empty, ``IN_FLIGHT`` of them on the wire: the upstream parses
        and validates one while it stores (and fsyncs) another, and the device claims and writes down
        answers meanwhile. Answers are settled in the order the batches were claimed."""
        on_the_wire: deque[tuple[list[Claimed], Future]] = deque()
        while True:
            while len(on_the_wire) < IN_FLIGHT and not stop.is_set() and (batch := self._claim()):
                on_the_wire.append((batch, self._submit(batch)))
            if not on_the_wire:
                return True
            batch, future = on_the_wire.popleft()
            try:
                reply = future.result()
            except Unreachable as exc:
                self.outbox.release([c.id for c in batch], str(exc))
                self._failed(SyncState.OFFLINE, str(exc))
                self._settle_after_failure(on_the_wire)
                return False
            if not self._settle(batch, reply):
                self._settle_after_failure(on_the_wire)
                return False
            self._report()
            self._alive()

    def _settle_after_failure(self, on_the_wire: deque) -> None:
        """The batches still on the wire after a failure: each settled by its own answer (stored rows
        acknowledged, the rest back to pending), with no retry and without clearing the failure."""
        for batch, future in on_the_wire:
            ids = [c.id for c in batch]
            try:
                reply = future.result()
            except Unreachable as exc:
                self.outbox.release(ids, str(exc))
                continue
            if reply.status == 200:
                self._accept(ids, reply, healthy=False)
            else:
                self.outbox.release(ids, reply.reason)
        on_the_wire.clear()

    def _submit(self, batch: list[Claimed]) -> Future:
        # Encoded and compressed here, by the thread that claimed it: the sender threads only sign and
        # send, so their allocators do not each keep a batch's worth of memory (the uploader's peak).
        return self._sender.submit(self.session.post_gzip, p.PATH_CHECKINS, p.compress(batch_document(batch)))

    def _claim(self) -> list[Claimed]:
        if not self.outbox.has_pending():
            return []
        return self.outbox.claim(self.settings.batch_max_items, self.settings.batch_max_bytes)

    def _send(self, batch: list[Claimed], retried: bool = False) -> bool:
        try:
            reply = self.session.post_json(p.PATH_CHECKINS, batch_document(batch))
        except Unreachable as exc:
            self.outbox.release([c.id for c in batch], str(exc))
            self._failed(SyncState.OFFLINE, str(exc))
            return False
        return self._settle(batch, reply, retried)

    def _settle(self, batch: list[Claimed], reply: Reply, retried: bool = False) -> bool:
        """Act on the upstream's answer to one batch; False if the rows went back to pending."""
        ids = [c.id for c in batch]
        if reply.status == 200:
            self._accept(ids, reply)
            return True
        if self._clock_skew(reply) and not retried:
            return self._send(batch, retried=True)
        if reply.status in CONTENT_STATUSES:
            if len(batch) == 1:
                why = f"{reply.reason}: {reply.message}"[:500]
                self.outbox.kill({ids[0]: why})
                self.result.dead += 1
                log.error("upstream refused check-in %s for good (%s); kept as a dead letter", ids[0], reply.reason)
                return True
            half = len(batch) // 2  # find the rows at fault by halving
            if not self._send(batch[:half]):
                self.outbox.release(ids[half:], "not sent")
                return False
            return self._send(batch[half:])
        self.outbox.release(ids, reply.reason)
        self._failed_reply(reply)
        return False

    def _accept(self, ids: list[str], reply: Reply, healthy: bool = True) -> None:
        results = {r.get("id"): r for r in reply.body.get("results", []) if isinstance(r, dict)}
        acked = [i for i in ids if results.get(i, {}).get("status") in ("stored", "duplicate")]
        dead = {i: f"{results[i].get('status')}: {results[i].get('reason')}" for i in ids
                if i in results and results[i].get("status") == "rejected"}
        missing = [i for i in ids if i not in results]
        self.outbox.ack(acked)
        if dead:
            self.outbox.kill(dead)
            log.error("upstream rejected %d check-ins for good (%s)", len(dead), sorted(set(dead.values())))
        if missing:
            self.outbox.release(missing, "no result in the upstream's answer")
        self.result.sent += len(acked)
        self.result.dead += len(dead)
        if healthy:
            self._succeeded()
        log.info("uploaded %d check-ins (%s new)", len(acked), reply.body.get("stored"))

    # ---- heartbeat and beacon key --------------------------------------------------------------
    def _heartbeat(self) -> bool:
        reply = self.session.post(p.PATH_HEARTBEAT, self.heartbeat())
        if self._clock_skew(reply):
            reply = self.session.post(p.PATH_HEARTBEAT, self.heartbeat())
        self._next_heartbeat = time.monotonic() + self.settings.heartbeat_interval_s
        if reply.status == 200:
            self._succeeded()
            return True
        if reply.status in CONTENT_STATUSES:
            log.warning("upstream refused the heartbeat (%s: %s)", reply.reason, reply.message)
            return True  # a heartbeat it cannot read must not hold up the check-ins
        self._failed_reply(reply)
        return False

    def heartbeat(self) -> dict[str, Any]:
        depth, oldest = self.outbox.depth()
        now = time.time_ns() // 1_000_000
        statuses = self.store.statuses()
        components = {}
        nearby = None
        for name, status in list(statuses.items())[:16]:
            detail = _scalars(status["detail"])
            if name == Component.NEARBY and status["state"] == NearbyState.OK and isinstance(detail.get("phones"), int):
                nearby = detail["phones"]  # the beacon's scanner: distinct Bluezone phones in its window
            components[name[:32]] = {"state": str(status["state"])[:32] or "unknown", "detail": detail}
        try:
            disk_free = shutil.disk_usage(self.config.state_dir).free
        except OSError:
            disk_free = None
        return {"software_version": __version__, "sent_utc_ms": max(0, now), "queue_depth": depth,
                "oldest_unsent_age_s": None if oldest is None else max(0.0, (now - oldest) / 1000),
                "clock_offset_ms": self.session.offset_ms,
                "clock_synced": self.config.clock.assume_synced or kernel_clock_synced(),
                "disk_free_bytes": disk_free, "nearby_phones": nearby, "components": components}

    def _register_beacon_key(self) -> bool:
        try:
            record = self.beacon_record()
        except Exception as exc:  # noqa: BLE001 - the beacon's key is optional for uploading check-ins
            log.warning("beacon key unavailable: %s", exc)
            return True
        if not record:
            return True
        record = normalise_beacon_record(record)
        if record["base_key"] == self._beacon_sent:
            return True
        reply = self.session.post(p.PATH_BEACON_KEY, record)
        if self._clock_skew(reply):
            reply = self.session.post(p.PATH_BEACON_KEY, record)
        if reply.status == 200:
            self._beacon_sent = record["base_key"]
            log.info("beacon key for %s registered with the upstream", record["key_day"])
            return True
        if reply.status in CONTENT_STATUSES:
            log.error("upstream refused the beacon key (%s)", reply.reason)
            self._beacon_sent = record["base_key"]  # do not resend what it cannot accept
            return True
        self._failed_reply(reply)
        return False

    # ---- health --------------------------------------------------------------------------------
    def _succeeded(self) -> None:
        self._failures = 0
        self._retry_after = None
        self._state = SyncState.ONLINE
        self._last_success_ms = time.time_ns() // 1_000_000

    def _failed_reply(self, reply: Reply) -> None:
        self._retry_after = reply.retry_after_s
        if reply.status >= 500 or reply.status == 429:
            state = SyncState.OFFLINE
        else:
            state = SyncState.REVOKED if reply.reason == "device-revoked" else SyncState.ERROR
        self._failed(state, f"HTTP {reply.status} {reply.reason}")

    def _failed(self, state: SyncState, error: str) -> None:
        self._failures += 1
        self.result.failures += 1
        self.result.last_error = error
        self._state = state
        self._last_error_ms = time.time_ns() // 1_000_000

    def _report(self, force: bool = False, **extra: Any) -> None:
        if not force and time.monotonic() - self._last_report < 1.0:
            return
        self._last_report = time.monotonic()
        if force or self._last_report - self._oldest_at >= OLDEST_EVERY_S:
            depth, self._oldest = self.outbox.depth()
            self._oldest_at = self._last_report
        else:  # during a long upload: the count each second, the oldest scan time now and then
            depth = self.outbox.unsent()
        oldest = self._oldest if depth else None
        now = time.time_ns() // 1_000_000
        detail = {"upstream": self.session.base_url, "last_success_ms": self._last_success_ms,
                  "last_error": self.result.last_error, "last_error_ms": self._last_error_ms,
                  "queue_depth": depth, "oldest_unsent_age_s": None if oldest is None else round((now - oldest) / 1000, 1),
                  "clock_offset_ms": self.session.offset_ms, "sent": self.result.sent, "dead": self.result.dead, **extra}
        try:
            self.store.set_status(Component.SYNC, self._state, detail)
        except Exception as exc:  # noqa: BLE001 - status is best effort; the queue is not
            log.warning("could not record sync status: %s", exc)


def _scalars(detail: dict[str, Any]) -> dict[str, Any]:
    """A status detail cut to what a heartbeat carries: at most 32 short scalar fields."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if len(out) == 32:
            break
        if isinstance(value, str):
            out[str(key)[:64]] = value[:200]
        elif value is None or isinstance(value, (bool, int, float)):
            out[str(key)[:64]] = value
    return out


def normalise_beacon_record(record: dict[str, Any]) -> dict[str, str]:
    """The beacon package's record as the protocol wants it: {"base_key": hex, "key_day": "YYYY-MM-DD"}."""
    key = record.get("base_key") or record.get("base_key_hex") or record.get("key")
    day = record.get("key_day") or record.get("day") or record.get("created_day")
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).hex()
    if hasattr(day, "isoformat"):
        day = day.isoformat()
    return {"base_key": str(key).lower(), "key_day": str(day)[:10]}


def default_beacon_record(config: Config) -> BeaconRecord:
    """The beacon's registration record, once ``kiosk beacon`` has made its key (None before)."""

    def record() -> dict[str, Any] | None:
        from beacon.register import device_registration

        return device_registration(config.state_dir)

    return record
