"""The scanner loop of ``kiosk run``: camera → pipeline, surviving camera faults with backoff."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from kiosk import __version__
from kiosk.core.config import SettingsWatch
from kiosk.events import ACCEPTED, Outcome
from kiosk.health import ScannerHealth
from kiosk.core.lifecycle import backoff_delays
from kiosk.pipeline import Pipeline
from kiosk.core.records import Component, ConfigState
from kiosk.core.store import StorageError
from scanner.camera import Camera, open_camera
from scanner.feed import CameraFeed

log = logging.getLogger("kiosk.service")

MAINTENANCE_INTERVAL_S = 300.0  # privacy housekeeping (kiosk/pipeline.py: Pipeline.maintain)


@dataclass
class LoopStats:
    frames: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    camera_failures: int = 0
    dropped: int = 0  # frames the camera delivered while the loop was still busy with an older one

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.event] = self.outcomes.get(outcome.event, 0) + 1


def run_scanner(pipeline: Pipeline, stop: threading.Event, seconds: float | None = None,
                camera_factory: Callable[[], Camera] | None = None,
                on_frame: Callable[[object], None] | None = None, health: ScannerHealth | None = None) -> LoopStats:
    """Decode frames until ``stop`` is set (or ``seconds`` pass, or a finite source ends).

    The camera is read on its own thread keeping only the newest frame (scanner/feed.py): a slow
    decoder or a slow ``on_frame`` drops frames, never queues them. Camera faults are retried with
    backoff and shown as the store's "camera" status. ``health`` pings systemd's watchdog only while
    this loop turns and frames flow (kiosk/health.py).
    """
    config = pipeline.config
    camera_factory = camera_factory or (lambda: open_camera(config.camera))
    deadline = time.monotonic() + seconds if seconds else None
    stats = LoopStats()
    health = health or ScannerHealth(pipeline)
    log.info("scanner started: kiosk %s, device %s, venue %s (%s)", __version__, _device_name(pipeline),
             config.device.venue_id or "not provisioned", config.device.direction)
    next_maintenance = time.monotonic()
    settings = SettingsWatch(pipeline.config)
    _report_settings(pipeline)

    def housekeeping() -> None:  # runs with or without a camera
        nonlocal next_maintenance
        health.tick()
        fresh = settings.poll()  # one stat; settings saved by any thread or process take effect here
        if fresh is not None:
            pipeline.config = fresh  # in the thread that owns the pipeline
            _report_settings(pipeline)
        if time.monotonic() >= next_maintenance:
            next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
            _maintain(pipeline)

    def report(state: str, detail: dict) -> None:
        _report(pipeline, Component.CAMERA, state, detail)
        health.camera(state, detail)

    feed = CameraFeed(camera_factory, config.camera.read_timeout_s, stop, backoff_delays(), report=report,
                      tick=housekeeping)
    health.stuck_reads = lambda: feed.abandoned
    for frame in feed.frames(deadline):
        stats.frames += 1
        health.frame()
        if on_frame is not None:
            on_frame(frame)
        started = time.perf_counter()
        for outcome in pipeline.handle_frame(frame):
            stats.count(outcome)
            if outcome.event == ACCEPTED:
                health.accepted()
        feed.decoded(time.perf_counter() - started)
    stats.camera_failures, stats.dropped = feed.camera_failures, feed.dropped
    log.info("scanner stopped after %d frames", stats.frames)
    return stats


def _device_name(pipeline: Pipeline) -> str:
    try:
        return pipeline.identity()[1]
    except StorageError as exc:
        return f"unknown ({exc})"


def _maintain(pipeline: Pipeline) -> None:
    try:
        done = pipeline.maintain()
        if any(done.values()):
            log.info("housekeeping: %(deleted)d old uploaded check-ins deleted, %(blanked)d repeat hashes blanked", done)
    except (StorageError, sqlite3.Error) as exc:  # retried at the next interval; scanning goes on
        log.warning("housekeeping failed: %s", exc)


def _report_settings(pipeline: Pipeline) -> None:
    problem = pipeline.config.settings_problem
    _report(pipeline, Component.CONFIG, ConfigState.DAMAGED if problem else ConfigState.OK,
            {"file": pipeline.config.source, **({"error": problem, "kept": "the last good settings"} if problem else {})})


def _report(pipeline: Pipeline, component: str, state: str, detail: dict) -> None:
    try:
        pipeline.store.set_status(component, state, detail)
    except (StorageError, sqlite3.Error) as exc:  # status is best effort; check-ins are not
        log.warning("could not record %s status: %s", component, exc)
