"""The one real path: payload → credential → duplicate check → one durable transaction → outcome event.

Privacy at rest: a check-in row holds the visitor's identity only sealed to the health authority's
public key (``privacy.authority_public_key``); without that key the kiosk refuses check-ins rather
than record ones nobody could ever trace. Repeat detection uses a keyed hash, which is blanked once
the row is uploaded and past the repeat window; uploaded rows are deleted after the retention.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Iterable

from kiosk.core.clock import Clock, Instant, new_checkin_id
from kiosk.core.config import Config
from kiosk.credentials import Credential, FormatContext, Registry, default_registry
from kiosk.credentials.base import rejected
from kiosk.events import ACCEPTED, DUPLICATE, ERROR, PROVISIONING, REJECTED, Outcome, OutcomeSink
from kiosk.core.privacy import load_or_create_secret, read_key, seal_subject, visitor_ref
from kiosk.core.statefiles import DamagedStateFile
from kiosk.core.store import CheckinRow, StorageError, Store

log = logging.getLogger("kiosk.pipeline")


def device_id(config: Config) -> str:
    """The configured id, or one generated on first start and kept in the state directory.

    A device-id file that is empty or torn raises DamagedStateFile: rows with a made-up or empty id
    could never be uploaded."""
    if config.device.id:
        return config.device.id
    from kiosk.core.privacy import write_private_file
    from kiosk.core.statefiles import DEVICE_ID_FILE, parse_device_id, private_dir, read_state_file

    path = config.state_dir / DEVICE_ID_FILE
    existing = read_state_file(path, parse_device_id)
    if existing is not None:
        return existing
    private_dir(config.state_dir)
    new = "kiosk-" + new_checkin_id()[:8]
    write_private_file(path, (new + "\n").encode("ascii"))
    return new


class Pipeline:
    """Turns payloads (and camera frames) into committed check-ins and outcome events.

    One instance per process; not thread-safe (the scanner thread owns it).
    """

    def __init__(self, config: Config, sinks: Iterable[OutcomeSink] = (), clock: Clock | None = None,
                 registry: Registry | None = None):
        self.config = config
        self.sinks = list(sinks)
        self.clock = clock or Clock(config.clock.assume_synced)
        self.registry = registry or default_registry(config)
        self.authority_key = read_key(config.privacy.authority_public_key, "privacy.authority_public_key")
        if self.authority_key is None:
            log.warning("privacy.authority_public_key is not set: check-ins are refused until it is")
        self._identity: tuple[bytes, str] | None = None  # (secret, device id), loaded on first check-in
        self._store: Store | None = None
        self._recent: dict[bytes, float] = {}  # payload digest -> monotonic seconds last seen in a frame
        self._decoder: Any = None  # scanner.live.LiveDecoder, made at the first frame (numpy only then)

    # ---- storage -----------------------------------------------------------------------------
    def identity(self) -> tuple[bytes, str]:
        """The device secret and id from the state directory; StorageError if it cannot be read or made."""
        if self._identity is None:
            try:
                self._identity = (load_or_create_secret(self.config.state_dir), device_id(self.config))
            except DamagedStateFile as exc:
                raise StorageError(str(exc)) from exc
            except OSError as exc:
                raise StorageError(f"state directory {self.config.state_dir}: {exc.strerror or exc}") from exc
        return self._identity

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.config.state_dir)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- entry points ------------------------------------------------------------------------
    def handle_frame(self, frame: Any) -> list[Outcome]:
        """Decode a frame and handle each new code; a code still in view is handled once."""
        from scanner.decode import FrameError
        from scanner.live import LiveDecoder

        if self._decoder is None:
            self._decoder = LiveDecoder()
        try:
            payloads = self._decoder.decode(frame)
        except FrameError as exc:
            if self._quiet(b"frame-error:" + str(exc).encode()):
                return []
            log.warning("unreadable frame: %s", exc)
            return [self._emit(self._outcome(REJECTED, rejected("unknown", "unreadable-frame")))]
        return [self.handle_payload(p) for p in payloads if not self._quiet(p)]

    def handle_payload(self, payload: bytes, source: str = "camera") -> Outcome:
        """Classify, check for a repeat, commit; the event goes out only after the commit."""
        instant = self.clock.now()
        credential = self.registry.classify(payload, FormatContext(now_utc_ms=instant.utc_ms, config=self.config))
        return self.handle_credential(credential, source, instant)

    def handle_typed(self, number: str, birth_year: str = "", source: str = "manual") -> Outcome:
        """An ID number typed on the screen's keypad: the QR's checks, then the same path as a scan."""
        from kiosk.credentials.typed import typed_credential

        instant = self.clock.now()
        return self.handle_credential(typed_credential(number, birth_year, instant.utc_ms), source, instant)

    def handle_companion(self, adult_checkin_id: str) -> Outcome:
        """A child without an ID of their own, checked in with the adult whose check-in it links to."""
        from kiosk.credentials.typed import companion_credential

        instant = self.clock.now()
        return self.handle_credential(companion_credential(adult_checkin_id), "companion", instant,
                                      companion_of=adult_checkin_id)

    def handle_credential(self, credential: Credential, source: str, instant: Instant,
                          companion_of: str | None = None) -> Outcome:
        """Commit an accepted credential (or announce a refusal); a companion is never a repeat."""
        if not credential.accepted:
            return self._emit(self._outcome(REJECTED, credential, source=source, at=instant.utc_ms))
        if credential.kind == "provisioning":  # a setting for the device, never a visitor
            return self._emit(self._outcome(PROVISIONING, credential, source=source, at=instant.utc_ms))
        if not self.config.device.venue_id:
            return self._emit(self._outcome(ERROR, credential, reason="not-provisioned", source=source, at=instant.utc_ms))
        if self.authority_key is None:
            return self._emit(self._outcome(ERROR, credential, reason="no-authority-key", source=source, at=instant.utc_ms))
        try:
            secret, this_device = self.identity()
            row = CheckinRow(
                id=new_checkin_id(), venue_id=self.config.device.venue_id, device_id=this_device,
                direction=self.config.device.direction, utc_ms=instant.utc_ms, monotonic_ns=instant.monotonic_ns,
                boot_id=instant.boot_id, clock_synced=instant.clock_synced, kind=credential.kind,
                visitor_ref=visitor_ref(secret, credential.kind, credential.subject),
                sealed_subject=seal_subject(credential.subject, self.authority_key),
                source=source, companion_of=companion_of,
            )
            # a companion is never a repeat: several children may come with one adult
            stored = self.store.record_checkin(row, 0 if companion_of else self.config.scan.duplicate_window_s)
        except StorageError as exc:
            log.error("check-in refused, storage unavailable: %s", exc)
            self.close()  # reopen on the next scan: space or permissions may come back
            return self._emit(self._outcome(ERROR, credential, reason="storage-unavailable", source=source,
                                            at=instant.utc_ms))
        if not stored:
            return self._emit(self._outcome(DUPLICATE, credential, reason="already-checked-in", source=source, at=row.utc_ms))
        log.info("check-in %s recorded (%s, %s)", row.id, row.kind, row.direction)
        return self._emit(self._outcome(ACCEPTED, credential, checkin_id=row.id, source=source, at=row.utc_ms))

    def maintain(self) -> dict[str, int]:
        """Forget what is no longer needed: called now and then by the run loop (cheap when idle)."""
        instant = self.clock.now()
        window = self.config.scan.duplicate_window_s
        return self.store.forget_synced(
            retention_cutoff_ms=instant.utc_ms - self.config.privacy.retention_days * 86_400_000,
            boot_id=instant.boot_id, ref_cutoff_mono_ns=instant.monotonic_ns - int(window * 1e9),
            ref_cutoff_utc_ms=instant.utc_ms - int(window * 1000),
        )

    # ---- helpers -----------------------------------------------------------------------------
    def _outcome(self, event: str, credential: Credential, reason: str | None = None, checkin_id: str | None = None,
                 source: str = "camera", at: int | None = None) -> Outcome:
        return Outcome(event=event, reason=reason or credential.reason, kind=credential.kind,
                       direction=self.config.device.direction, at_utc_ms=at or time.time_ns() // 1_000_000,
                       checkin_id=checkin_id, source=source, credential=credential)

    def _emit(self, outcome: Outcome) -> Outcome:
        for sink in self.sinks:
            try:
                sink(outcome)
            except Exception:  # a broken consumer must not stop check-ins
                log.exception("outcome sink %r failed", sink)
        return outcome

    def _quiet(self, payload: bytes) -> bool:
        """True if this code was in view moments ago (a visitor holds a code for a second or more)."""
        key = hashlib.blake2b(payload, digest_size=16).digest()
        now = time.monotonic()
        quiet = self.config.scan.repeat_quiet_s
        last = self._recent.get(key)
        self._recent[key] = now
        if len(self._recent) > 256:
            self._recent = {k: t for k, t in self._recent.items() if now - t < quiet}
        return last is not None and now - last < quiet
