"""Enrollment that is never lost: the intent is saved before the first attempt, then completed.

``kiosk provision`` and a provisioning code shown to the camera both end here. First the venue and
direction go to the device-made settings and the enrollment intent (upstream, one-time token, venue,
direction) to ``pending-enrollment.json`` (0600, written atomically): a power cut one second later
loses nothing. Then :func:`complete_intent` talks to the upstream; it is called again, with backoff,
by whichever process runs (the uploader ``kiosk sync`` always; ``kiosk run`` right after a code is
shown), under a lock so that only one of them spends the token at a time. The device makes its
Ed25519 key pair itself (the private key never leaves the state directory) and signs the request
with it (proof of possession). The token is never logged.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, field
from pathlib import Path
from typing import Iterator

from kiosk import __version__
from kiosk.core.frozen import Frozen, frozen
from kiosk.core.config import Config, save_overrides
from kiosk.core.privacy import write_private_file
from kiosk.core.records import Component, EnrollmentState
from kiosk.core.urls import check_upstream_url
from sync import protocol as p
from kiosk.core.statefiles import DamagedStateFile
from sync.identity import Enrollment, load_enrollment, load_or_create_key, save_enrollment

log = logging.getLogger("kiosk.sync")

INTENT_FILE = "pending-enrollment.json"
LOCK_FILE = "enrollment.lock"
UNREACHABLE = "unreachable"  # EnrollError.reason when trying again later may work


class EnrollError(RuntimeError):
    """``reason`` is the upstream's refusal (bad-token, token-used, ...) or "unreachable" (retry later)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class IntentDamaged(ValueError):
    """The saved enrollment intent cannot be read: the device must be provisioned again."""


@frozen
class EnrollmentIntent(Frozen):
    """An enrollment asked for and not yet done: where, with which one-time token, for which venue."""

    upstream_url: str
    token: str = field(repr=False)  # a one-time secret: never in a log line or a status record
    venue_id: str
    direction: str = ""
    ca_bundle: str = ""
    venue_name: str | None = None  # None: keep the name set (the command line gives none)


def save_intent(state_dir: Path, intent: EnrollmentIntent) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(state_dir / INTENT_FILE, (json.dumps(asdict(intent)) + "\n").encode("utf-8"))


def load_intent(state_dir: Path) -> EnrollmentIntent | None:
    """The saved intent, None when there is none; IntentDamaged when the file cannot be used."""
    path = state_dir / INTENT_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IntentDamaged(f"{path}: cannot read the saved enrollment ({exc.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        intent = EnrollmentIntent(**data)
        check_upstream_url(intent.upstream_url)
        if not all(isinstance(v, str) for k, v in asdict(intent).items() if k != "venue_name") \
                or not isinstance(intent.venue_name, (str, type(None))) or not intent.token or not intent.venue_id:
            raise ValueError("empty or non-text fields")
    except (ValueError, TypeError) as exc:
        kind = "empty" if not raw.strip() else "damaged"
        raise IntentDamaged(f"{path}: the saved enrollment is {kind} ({type(exc).__name__}); "
                            "provision this kiosk again") from None
    return intent


def enrollment_problem(config: Config) -> tuple[EnrollmentState | None, str]:
    """What stands between this device and uploading, as ``kiosk status`` and the uploader see it:
    (None, "") when enrolled for the venue it is set to."""
    state_dir = config.state_dir
    try:
        intent = load_intent(state_dir)
    except IntentDamaged as exc:
        return EnrollmentState.DAMAGED, str(exc)
    if intent is not None:
        return EnrollmentState.PENDING, f"enrollment with {intent.upstream_url} for venue {intent.venue_id} is saved " \
                                        "and not completed yet (retried while the uploader runs)"
    try:
        enrollment = load_enrollment(state_dir)
    except DamagedStateFile as exc:  # kept as it is, never replaced (kiosk/core/statefiles.py)
        return EnrollmentState.DAMAGED, str(exc)
    if enrollment is None:
        return None, "not enrolled with an upstream: nothing will upload (scan a provisioning code or run `kiosk provision`)"
    if config.device.venue_id and enrollment.venue_id != config.device.venue_id:
        return None, (f"enrolled for venue {enrollment.venue_id} but set to venue {config.device.venue_id}: "
                      "provision this kiosk again for its venue")
    return None, ""


def _device_settings(config: Config, intent: EnrollmentIntent) -> dict[str, str]:
    device = {"venue_id": intent.venue_id, **({"direction": intent.direction} if intent.direction else {})}
    if intent.venue_name is not None or intent.venue_id != config.device.venue_id:
        device["venue_name"] = intent.venue_name or ""  # another venue: its old name would be wrong
    return device


def begin(config: Config, intent: EnrollmentIntent) -> None:
    """Commit the provisioning locally, before any network: the intent, then venue and direction
    (a power cut between the two is mended by :func:`complete_intent`, which lays the intent's
    venue over the settings first).

    Raises ValueError (ConfigError) for a bad URL, venue or direction; nothing is changed then.
    """
    check_upstream_url(intent.upstream_url)
    device = _device_settings(config, intent)
    config.replace(device=device)  # refuse a bad venue id or direction before saving anything
    save_intent(config.state_dir, intent)
    save_overrides(config.state_dir, {"device": device})
    log.info("provisioned: venue %s%s; enrollment with %s saved", intent.venue_id,
             f" ({intent.direction})" if intent.direction else "", intent.upstream_url)


@contextlib.contextmanager
def _exclusive(state_dir: Path) -> Iterator[bool]:
    """True when this process may spend the token now; False while another one is doing it."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def complete_intent(config: Config) -> tuple[EnrollmentState | None, str]:
    """Try the saved enrollment once: (None, "") when nothing is pending; ENROLLED; PENDING with the
    reason to try later (unreachable, or another process is at it); REFUSED (the intent is dropped:
    a new code is needed) or DAMAGED with the reason."""
    state_dir = config.state_dir
    with _exclusive(state_dir) as mine:
        if not mine:
            return EnrollmentState.PENDING, "another process is enrolling this kiosk right now"
        try:
            intent = load_intent(state_dir)
        except IntentDamaged as exc:
            record(config, EnrollmentState.DAMAGED, None, str(exc))
            return EnrollmentState.DAMAGED, str(exc)
        if intent is None:
            return None, ""
        # The settings half cut off by a power cut: lay the intent's venue over the settings, only if
        # they hold another venue (a direction changed since on the maintenance page stays as it is).
        device = {"venue_id": intent.venue_id, "venue_name": intent.venue_name or "",
                  **({"direction": intent.direction} if intent.direction else {})}
        if save_overrides(state_dir, {"device": device},
                          unless=lambda current: current.get("device", {}).get("venue_id") == intent.venue_id):
            log.warning("provisioning for venue %s completed from the saved enrollment", intent.venue_id)
        try:
            enrollment = _enroll(config, intent)
        except EnrollError as exc:
            if exc.reason == UNREACHABLE:
                record(config, EnrollmentState.PENDING, intent, exc.message)
                return EnrollmentState.PENDING, exc.message
            (state_dir / INTENT_FILE).unlink(missing_ok=True)
            log.error("enrollment refused by %s: %s", intent.upstream_url, exc)
            record(config, EnrollmentState.REFUSED, intent, str(exc))
            return EnrollmentState.REFUSED, str(exc)
        save_enrollment(state_dir, enrollment)
        save_overrides(state_dir, {"sync": {"upstream_url": enrollment.upstream_url,
                                            **({"ca_bundle": intent.ca_bundle} if intent.ca_bundle else {})}})
        (state_dir / INTENT_FILE).unlink(missing_ok=True)
        log.info("enrolled as %s at venue %s with %s", enrollment.device_id, enrollment.venue_id, enrollment.upstream_url)
        record(config, EnrollmentState.ENROLLED, intent)
        return EnrollmentState.ENROLLED, ""


class Completion:
    """Completes the saved intent with full-jitter backoff, for a process's loop (one per process)."""

    def __init__(self, base_s: float = 5.0, cap_s: float = 600.0):
        from kiosk.core.lifecycle import backoff_delays  # here: `kiosk status` reads the enrollment, never retries it

        self.delays = backoff_delays(base_s, cap_s)
        self.attempts = 0
        self.next_at = 0.0
        self._said = ""

    def step(self, config: Config) -> bool:
        """Try if due; True once nothing is left to try (enrolled, refused, damaged, or no intent)."""
        if time.monotonic() < self.next_at:
            return False
        state, why = complete_intent(config)
        if state != EnrollmentState.PENDING:
            if state == EnrollmentState.DAMAGED and why != self._said:
                log.error("%s", why)
            self._said = why
            return True
        wait = self.delays(self.attempts)
        self.attempts += 1
        self.next_at = time.monotonic() + wait
        log.warning("enrollment postponed (%s); trying again in %.0f s", why, wait)
        return False


def _enroll(config: Config, intent: EnrollmentIntent) -> Enrollment:
    from kiosk.pipeline import device_id
    from sync.transport import BadReply, Unreachable, UpstreamSession  # requests: only when enrolling

    url = check_upstream_url(intent.upstream_url)
    key = load_or_create_key(config.state_dir)  # saved before the request: a retry proves the same key
    me = device_id(config)
    session = UpstreamSession(url, me, key, intent.ca_bundle or config.sync.ca_bundle,
                              config.sync.connect_timeout_s, config.sync.read_timeout_s)
    public_key = base64.b64encode(p.public_key_bytes(key)).decode("ascii")
    try:
        session.sync_clock()
        reply = session.post(p.PATH_ENROLL, {"token": intent.token, "device_id": me, "venue_id": intent.venue_id,
                                             "public_key": public_key, "software_version": __version__})
    except Unreachable as exc:
        raise EnrollError(UNREACHABLE, str(exc)) from None
    except BadReply as exc:
        reply = exc.reply
    finally:
        session.close()
    if reply.status >= 500 or reply.status == 429:  # the upstream's trouble, not a refusal: try again later
        raise EnrollError(UNREACHABLE, f"HTTP {reply.status} {reply.reason}")
    if reply.status != 200:
        raise EnrollError(reply.reason, reply.message)
    return Enrollment(device_id=me, venue_id=intent.venue_id, upstream_url=url, public_key=public_key,
                      enrolled_ms=int(reply.body.get("enrolled_ms", 0)))


def record(config: Config, state: EnrollmentState, intent: EnrollmentIntent | None, error: str = "") -> None:
    """The ``enrollment`` status record (best effort: the intent file is what counts)."""
    from kiosk.core.store import StorageError, Store

    detail = {"venue_id": intent.venue_id, "upstream_url": intent.upstream_url} if intent else {}
    if error:
        detail["error"] = error[:300]
    try:
        store = Store.open(config.state_dir)
        try:
            store.set_status(Component.ENROLLMENT, state, detail)
        finally:
            store.close()
    except (StorageError, sqlite3.Error) as exc:
        log.warning("could not record the enrollment status: %s", exc)


def provision(config: Config, upstream_url: str, token: str, venue_id: str, ca_bundle: str = "",
              direction: str | None = None) -> tuple[EnrollmentState, str]:
    """Save the provisioning, then try to enroll once; raises ValueError for bad input (nothing is
    saved then). PENDING means saved: the uploader completes it when the upstream answers."""
    intent = EnrollmentIntent(upstream_url, token, venue_id, direction or "", ca_bundle)
    begin(config, intent)
    state, why = complete_intent(config)
    return state or EnrollmentState.ENROLLED, why
