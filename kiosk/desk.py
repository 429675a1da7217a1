"""Check-ins made on the screen (a typed ID number, a companion), off the screen's thread.

The scanner thread owns its pipeline; these check-ins get their own pipeline and database connection
on one worker thread, so the screen never waits for a commit and the scanner is never interrupted.
The duplicate check and the commit are one SQLite transaction either way, so a typed number and a
scan of the same card cannot both be recorded. Outcomes go to the same sinks as the scanner's (the
screen, the events file), after the commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from kiosk.core.config import Config, SettingsWatch
from kiosk.events import OutcomeSink

log = logging.getLogger("kiosk.desk")



class CheckinDesk:
    def __init__(self, config: Config, sinks: list[OutcomeSink]):
        self.config = config
        self.settings = SettingsWatch(config)  # settings saved by anyone (maintenance, provisioning) reach the desk
        self.sinks = sinks  # shared with the scanner's pipeline: the screen and the events file
        self._jobs: queue.SimpleQueue[Callable | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="checkin-desk", daemon=True)
        self._thread.start()

    def typed(self, number: str, birth_year: str, source: str) -> None:
        """Queue a typed ID number (``source`` manual = staff, keypad = the visitor)."""
        self._jobs.put(lambda pipeline: pipeline.handle_typed(number, birth_year, source))

    def companion(self, adult_checkin_id: str) -> None:
        """Queue a companion's check-in linked to the adult's."""
        self._jobs.put(lambda pipeline: pipeline.handle_companion(adult_checkin_id))

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from kiosk.pipeline import Pipeline

        pipeline: Pipeline | None = None
        while True:
            job = self._jobs.get()
            if job is None:
                break
            try:
                if pipeline is None:
                    pipeline = Pipeline(self.config, self.sinks)
                    pipeline.sinks = self.sinks
                self.config = self.settings.poll() or self.config  # one stat: venue or direction changed
                pipeline.config = self.config
                job(pipeline)
            except Exception:  # a failed entry must not end the desk; the pipeline reports storage faults itself
                log.exception("desk: a check-in typed on the screen failed")
        if pipeline is not None:
            pipeline.close()
