"""Provisioning in one step: a verified provisioning code puts the device in service at its venue.

The pipeline verifies the code's signature (kiosk/credentials/provisioning.py) and emits a
``provisioning`` outcome; :class:`ProvisioningFlow` (a sink of ``kiosk run``) applies it:

* A device without a venue applies the first verified code: that is what its provisioning screen
  asked for. A device already in service applies a code for other settings only when it is shown a
  second time within :data:`CONFIRM_WITHIN_S` (the screen asks for that), so a code waved past the
  camera by accident does not move the kiosk to another venue.
* Applying writes venue, name and direction to the device-made settings in the state directory
  (the root file system may be read-only), so check-ins are recorded at once, then enrolls with the
  upstream (the uploader's ``provision``). If the upstream cannot be reached the enrollment is kept in
  ``pending-enrollment.json`` (0600, it holds the one-time token) and retried with backoff; check-ins
  queue meanwhile. An upstream that refuses the token is reported, not retried.

The outcome of each step is the ``provisioning`` status row, which the screen and ``kiosk status`` read.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kiosk.config import Config, save_overrides
from kiosk.credentials import Credential
from kiosk.events import PROVISIONING, Outcome
from kiosk.lifecycle import backoff_delays
from kiosk.privacy import write_private_file
from kiosk.store import StorageError, Store

log = logging.getLogger("kiosk.provisioning")

PENDING_FILE = "pending-enrollment.json"
CONFIRM_WITHIN_S = 60.0
RETRY_CAP_S = 600.0

# enroll(config, upstream_url, token, venue_id, direction=...) -> anything; raises on failure with
# ``reason`` ("unreachable" means: try again later). sync.enroll.provision has this shape.
Enroll = Callable[..., Any]


@dataclass(frozen=True)
class Applied:
    config: Config
    enrolled: bool
    problem: str = ""  # why not enrolled: "unreachable: ..." (retried) or the upstream's refusal


def _default_enroll() -> Enroll | None:
    try:
        from sync.enroll import provision  # the uploader's enrollment (issue 6)
    except ImportError:
        return None
    return provision


def settings_of(credential: Credential) -> dict[str, str]:
    code = credential.content
    if credential.kind != "provisioning" or not credential.accepted or code is None:
        raise ValueError("not a verified provisioning code")
    return {"venue_id": code.venue_id, "venue_name": code.venue_name, "direction": code.direction}


def apply_provisioning(config: Config, credential: Credential, enroll: Enroll | None = None) -> Applied:
    """Put the device in service at the code's venue and enroll it; returns the config now in force.

    Raises ValueError for a credential that is not a verified provisioning code and ConfigError if
    the settings cannot be saved (nothing is changed then).
    """
    config, pending = save_provisioning(config, credential)
    return _enroll(config, pending, enroll or _default_enroll())


def save_provisioning(config: Config, credential: Credential) -> tuple[Config, dict[str, str]]:
    """The local half: venue, name and direction saved in the state directory (fast, no network).

    Returns the config now in force and the enrollment still to do.
    """
    device = settings_of(credential)
    code = credential.content
    save_overrides(config.state_dir, {"device": device})
    config = config.replace(device=device)
    log.info("provisioned: venue %s (%s)", code.venue_id, code.direction)
    return config, {"upstream_url": code.upstream_url, "token": code.enrollment_token, "venue_id": code.venue_id,
                    "direction": code.direction}


def _enroll(config: Config, pending: dict[str, str], enroll: Enroll | None) -> Applied:
    path = config.state_dir / PENDING_FILE
    if enroll is None:
        _status(config, "no-uploader", pending)
        return Applied(config, False, "this installation has no uploader (sync) to enroll with")
    try:
        enroll(config, pending["upstream_url"], pending["token"], pending["venue_id"], direction=pending["direction"])
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the device stays in service
        reason = getattr(exc, "reason", "") or type(exc).__name__
        if reason == "unreachable":
            write_private_file(path, json.dumps(pending).encode())
            log.warning("enrollment with %s postponed: upstream unreachable; retrying", pending["upstream_url"])
            _status(config, "pending", pending, str(exc))
        else:
            path.unlink(missing_ok=True)
            log.error("enrollment refused by %s: %s", pending["upstream_url"], reason)
            _status(config, "refused", pending, str(exc))
        return Applied(config, False, str(exc))
    path.unlink(missing_ok=True)
    log.info("enrolled with %s", pending["upstream_url"])
    _status(config, "enrolled", pending)
    if hasattr(config, "sync"):  # the uploader saved its settings; mirror them in memory
        config = config.replace(sync={"upstream_url": pending["upstream_url"]})
    return Applied(config, True)


def _status(config: Config, state: str, pending: dict[str, str], error: str = "") -> None:
    detail = {"venue_id": pending["venue_id"], "upstream_url": pending["upstream_url"], **({"error": error} if error else {})}
    try:
        store = Store.open(config.state_dir)
        try:
            store.set_status("provisioning", state, detail)
        finally:
            store.close()
    except (StorageError, sqlite3.Error) as exc:
        log.warning("could not record provisioning status: %s", exc)


def load_pending(state_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((state_dir / PENDING_FILE).read_text())
        return data if isinstance(data, dict) and {"upstream_url", "token", "venue_id", "direction"} <= set(data) else None
    except (OSError, ValueError):
        return None


class ProvisioningFlow:
    """Applies provisioning codes to a running pipeline: as an outcome sink of ``kiosk run``
    (``auto``: the rules in this module's docstring) and as the screen's confirmation hook
    (:meth:`confirm`).

    The settings are saved at once, in the caller's thread (a file write), so the very next scan is
    checked in at the new venue; enrollment talks to the network and runs in a background thread
    (retried while postponed), so neither the scanner loop nor the screen waits for it.
    """

    def __init__(self, pipeline: Any, enroll: Enroll | None = None, monotonic: Callable[[], float] = time.monotonic,
                 auto: bool = True):
        self.pipeline = pipeline
        self.enroll = enroll  # None: the uploader's, imported only when a code is applied (not at start-up)
        self.monotonic = monotonic
        self.auto = auto
        self._offered: tuple[tuple[str, ...], float] | None = None
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        pending = load_pending(pipeline.config.state_dir)
        if pending is not None:  # postponed before a restart: keep trying
            self._start(lambda: self._retry(pending, first_delay=True))

    def __call__(self, outcome: Outcome) -> None:
        if not self.auto or outcome.event != PROVISIONING or outcome.credential is None:
            return
        settings = settings_of(outcome.credential)
        current = self.pipeline.config.device
        key = (settings["venue_id"], settings["direction"], outcome.credential.content.upstream_url)
        now = self.monotonic()
        if current.venue_id:
            if (current.venue_id, current.direction, current.venue_name) == (
                    settings["venue_id"], settings["direction"], settings["venue_name"]) and self._offered is None:
                log.info("provisioning code for the venue already set (%s); nothing to change", current.venue_id)
                return
            confirmed = self._offered is not None and self._offered[0] == key and now - self._offered[1] <= CONFIRM_WITHIN_S
            if not confirmed:
                self._offered = (key, now)
                log.warning("provisioning code for venue %s shown; show it again within %.0f s to move this kiosk "
                            "from %s", settings["venue_id"], CONFIRM_WITHIN_S, current.venue_id)
                _status(self.pipeline.config, "confirm", {"venue_id": key[0], "upstream_url": key[2]})
                return
        self._offered = None
        error = self.confirm(outcome.credential)
        if error:
            log.error("provisioning code not applied: %s", error)

    def confirm(self, credential: Credential) -> str | None:
        """Apply a code a person confirmed; None when applied, else the reason (for the screen)."""
        if self._busy.locked():
            return "an enrollment is still in progress; try again in a minute"
        try:
            config, pending = save_provisioning(self.pipeline.config, credential)
        except (ValueError, OSError) as exc:  # ConfigError is a ValueError
            return str(exc)
        self.pipeline.config = config  # the next scan is checked in at the new venue
        self._start(lambda: self._retry(pending, first_delay=False))
        return None

    def _start(self, job: Callable[[], None]) -> None:
        if not self._busy.acquire(blocking=False):
            return

        def run() -> None:
            try:
                job()
            except Exception:  # noqa: BLE001 - a failed enrollment must not take the kiosk down
                log.exception("enrollment failed")
            finally:
                self._busy.release()

        self.thread = threading.Thread(target=run, name="enrollment", daemon=True)
        self.thread.start()

    def _retry(self, pending: dict[str, str] | None, first_delay: bool) -> None:
        attempt = 0 if first_delay else -1
        while pending is not None and not self._stop.is_set():
            if attempt >= 0:
                delay = backoff_delays(5.0, RETRY_CAP_S)(attempt)
                if self._stop.wait(delay):
                    return
            attempt += 1
            applied = _enroll(self.pipeline.config, pending, self.enroll or _default_enroll())
            if applied.enrolled:
                self.pipeline.config = applied.config
                return
            pending = load_pending(self.pipeline.config.state_dir)

    def close(self) -> None:
        self._stop.set()
