"""Provisioning in one step: a verified provisioning code puts the device in service at its venue.

The pipeline verifies the code's signature (kiosk/credentials/provisioning.py) and emits a
``provisioning`` outcome; :class:`ProvisioningFlow` (a sink of ``kiosk run``) applies it:

* A device without a venue applies the first verified code: that is what its provisioning screen
  asked for. A device already in service applies a code for other settings only when it is shown a
  second time within :data:`CONFIRM_WITHIN_S` (the screen asks for that), so a code waved past the
  camera by accident does not move the kiosk to another venue.
* Applying commits venue, name and direction to the device-made settings and the enrollment intent
  to the state directory before anything else (sync/enroll.py), so a power cut a second later loses
  neither. Every service sees the new settings through its settings watch (kiosk/core/config.py); this
  module never hands a config to the pipeline itself. Enrollment then runs in a background thread,
  retried with backoff while the upstream cannot be reached (the uploader retries it too); an
  upstream that refuses the token is reported, not retried.

The outcome of each step is the ``enrollment`` status record, which the screen and ``kiosk status`` read.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from kiosk.credentials import Credential
from kiosk.events import PROVISIONING, Outcome
from kiosk.core.records import EnrollmentState

log = logging.getLogger("kiosk.provisioning")

CONFIRM_WITHIN_S = 60.0
RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0


def settings_of(credential: Credential) -> dict[str, str]:
    code = credential.content
    if credential.kind != "provisioning" or not credential.accepted or code is None:
        raise ValueError("not a verified provisioning code")
    return {"venue_id": code.venue_id, "venue_name": code.venue_name, "direction": code.direction}


class ProvisioningFlow:
    """Applies provisioning codes for a running pipeline: as an outcome sink of ``kiosk run``
    (``auto``: the rules in this module's docstring) and as the screen's confirmation hook
    (:meth:`confirm`).

    The settings and the intent are saved at once, in the caller's thread (two small file writes);
    enrollment talks to the network in a background thread, so neither the scanner loop nor the
    screen waits for it.
    """

    def __init__(self, pipeline: Any, monotonic: Callable[[], float] = time.monotonic, auto: bool = True):
        self.pipeline = pipeline
        self.monotonic = monotonic
        self.auto = auto
        self._offered: tuple[tuple[str, ...], float] | None = None
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        if self._has_intent():  # saved before a restart or a power cut: keep trying
            self._start()

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
                from sync.enroll import EnrollmentIntent, record

                record(self.pipeline.config, EnrollmentState.CONFIRM, EnrollmentIntent(key[2], "-", key[0]))
                return
        self._offered = None
        error = self.confirm(outcome.credential)
        if error:
            log.error("provisioning code not applied: %s", error)

    def confirm(self, credential: Credential) -> str | None:
        """Apply a code a person confirmed; None when saved, else the reason (for the screen)."""
        from sync.enroll import EnrollmentIntent, begin

        try:
            settings = settings_of(credential)
            code = credential.content
            begin(self.pipeline.config, EnrollmentIntent(code.upstream_url, code.enrollment_token, code.venue_id,
                                                         code.direction, venue_name=settings["venue_name"]))
        except (ValueError, OSError) as exc:  # ConfigError is a ValueError
            return str(exc)
        self._start()
        return None

    def _has_intent(self) -> bool:
        from sync.enroll import IntentDamaged, load_intent

        try:
            return load_intent(self.pipeline.config.state_dir) is not None
        except IntentDamaged as exc:
            log.error("%s", exc)
            return False

    def _start(self) -> None:
        if not self._busy.acquire(blocking=False):
            return  # the running thread picks up the newest intent itself

        def run() -> None:
            try:
                self._complete()
            except Exception:  # a failed enrollment must not take the kiosk down
                log.exception("enrollment failed")
            finally:
                self._busy.release()

        self.thread = threading.Thread(target=run, name="enrollment", daemon=True)
        self.thread.start()

    def _complete(self) -> None:
        """Try the saved intent until it is done, refused, damaged or the process stops."""
        from sync.enroll import Completion

        completion = Completion(RETRY_BASE_S, RETRY_CAP_S)
        while not completion.step(self.pipeline.config):
            if self._stop.wait(max(0.0, completion.next_at - time.monotonic())):
                return

    def close(self) -> None:
        self._stop.set()
