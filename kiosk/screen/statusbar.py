"""The status bar: venue, local clock, sync, beacon and nearby phones, read from the state database.

The database is read by a background thread about once a second into a single "latest snapshot"
slot; drawing only ever reads that slot, so a slow disk or a locked database never stalls a frame.

What the screen reads: the component records of the status contract (kiosk/core/records.py), with
the readings defined there (``SYNC_UPLOADING``, ``BEACON_ON``, ``CAMERA_DOWN``); queue depth comes
from ``outbox_counts()``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygame

from kiosk.core.records import BEACON_ON, CAMERA_DOWN, SYNC_UPLOADING, Component, NearbyState
from kiosk.screen.catalogue import age_text, say
from kiosk.screen.fonts import Fonts
from kiosk.screen.icons import draw_icon
from kiosk.screen.layout import Layout
from kiosk.screen import text as textbox
from kiosk.core.clock import LOCAL_ZONE, local_time

log = logging.getLogger("kiosk.screen")

COUNT_INTERVAL_S = 10.0  # the day's count is refreshed this often (it scans the day's rows)
MIN_FREE_BYTES = 8 * 2**20  # below this SQLite will soon fail to commit: warn before it does

BAR_BACKGROUND = (10, 18, 30)
BAR_INK = (236, 240, 245)
BAR_DIM = (150, 160, 175)


@dataclass(frozen=True)
class StatusSnapshot:
    """What the state database and the system said at one moment."""

    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    disk_free_bytes: int | None = None
    clock_synced: bool = True
    storage_writable: bool | None = None  # None: not looked at
    problem: str = ""  # reading the database failed (shown on the maintenance screen)
    taken_utc_ms: int = 0
    checkins_today: int | None = None        # since local midnight, companions included
    checkins_since_start: int | None = None  # since this screen process started

    def state(self, component: str) -> str | None:
        entry = self.statuses.get(component)
        return str(entry.get("state")) if entry else None

    def detail(self, component: str) -> dict[str, Any]:
        entry = self.statuses.get(component) or {}
        detail = entry.get("detail")
        return detail if isinstance(detail, dict) else {}

    @property
    def camera_lost(self) -> bool:
        return self.state(Component.CAMERA) in CAMERA_DOWN

    @property
    def queue_depth(self) -> int:
        return int(self.outbox.get("pending", 0)) + int(self.outbox.get("inflight", 0))

    @property
    def sync_online(self) -> bool | None:
        state = self.state(Component.SYNC)
        return None if state is None else state in SYNC_UPLOADING

    @property
    def last_upload_ms(self) -> int | None:
        last = self.detail(Component.SYNC).get("last_success_ms")
        return int(last) if isinstance(last, (int, float)) else None

    @property
    def beacon_on(self) -> bool | None:
        state = self.state(Component.BEACON)
        return None if state is None else state in BEACON_ON

    @property
    def nearby_phones(self) -> int | None:
        phones = self.detail(Component.NEARBY).get("phones") if self.state(Component.NEARBY) == NearbyState.OK else None
        return phones if isinstance(phones, int) and not isinstance(phones, bool) and phones >= 0 else None

    @property
    def storage_low(self) -> bool:
        return self.disk_free_bytes is not None and self.disk_free_bytes < MIN_FREE_BYTES

    def errors(self) -> list[tuple[str, str]]:
        """(component, message) for every component that reports a problem."""
        found = [("status", self.problem)] if self.problem else []
        for component in sorted(self.statuses):  # an error detail is written only while it is true
            error = self.detail(component).get("error") or self.detail(component).get("last_error")
            if error and not (component == Component.SYNC and self.sync_online):
                found.append((component, str(error)))
        return found


def read_snapshot(store: Any, state_dir: Path, assume_synced: bool,
                  counts: tuple[int | None, int | None] = (None, None)) -> StatusSnapshot:
    from kiosk.core.clock import kernel_clock_synced

    try:
        stat = os.statvfs(state_dir)
        free: int | None = stat.f_bavail * stat.f_frsize
        writable: bool | None = not stat.f_flag & os.ST_RDONLY and os.access(state_dir, os.W_OK)
    except OSError:
        free = writable = None
    return StatusSnapshot(statuses=store.statuses(), outbox=store.outbox_counts(), disk_free_bytes=free,
                          storage_writable=writable,
                          clock_synced=assume_synced or kernel_clock_synced(), taken_utc_ms=time.time_ns() // 10**6,
                          checkins_today=counts[0], checkins_since_start=counts[1])


class StatusPoller:
    """Reads a snapshot about once a second in its own thread; ``latest`` is always ready to draw."""

    def __init__(self, state_dir: Path, assume_synced: bool, interval: float = 1.0):
        self.state_dir, self.assume_synced, self.interval = state_dir, assume_synced, interval
        self.started_utc_ms = time.time_ns() // 10**6
        self._counts: tuple[int | None, int | None] = (None, None)
        self._counted_at = -COUNT_INTERVAL_S
        self.latest = StatusSnapshot(clock_synced=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen-status", daemon=True)
        self._store: Any = None

    def start(self) -> "StatusPoller":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll_once(self) -> StatusSnapshot:
        from kiosk.core.store import DB_NAME, Store

        if self._store is None and not (self.state_dir / DB_NAME).exists():
            return self.latest  # the scanner creates the database; until then there is nothing to read
        try:
            if self._store is None:
                self._store = Store.reader(self.state_dir)
            if time.monotonic() - self._counted_at >= COUNT_INTERVAL_S:
                self._counts, self._counted_at = self._count(), time.monotonic()
            self.latest = read_snapshot(self._store, self.state_dir, self.assume_synced, self._counts)
        except Exception as exc:  # noqa: BLE001 - a status read must never take the screen down
            log.warning("screen: cannot read the state database: %s", exc)
            self.latest = StatusSnapshot(statuses=self.latest.statuses, outbox=self.latest.outbox,
                                         disk_free_bytes=self.latest.disk_free_bytes,
                                         storage_writable=self.latest.storage_writable,
                                         clock_synced=self.latest.clock_synced, problem=str(exc)[:200],
                                         taken_utc_ms=time.time_ns() // 10**6)
            self._close()
        return self.latest

    def _count(self) -> tuple[int, int]:
        """(today, since this process started): a scan of the day's rows, so not at every poll."""
        from kiosk.core.clock import local_day_start_ms

        today = local_day_start_ms(time.time_ns() // 10**6)
        return self._store.count_checkins_since(today), self._store.count_checkins_since(self.started_utc_ms)

    def _close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001
                pass
            self._store = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)
        self._close()


# ---- what the bar says ------------------------------------------------------------------------
def bar_items(snapshot: StatusSnapshot, venue: str, lang: str, now_utc_ms: int) -> dict[str, tuple[str | None, str]]:
    """Cell -> (icon or None, text): compared frame to frame, so the bar is redrawn only on change."""
    parts = []
    online = snapshot.sync_online
    parts.append(say("status.online" if online else "status.offline", lang))
    last = snapshot.last_upload_ms
    if last is None:
        parts.append(say("status.never_synced", lang))
    elif now_utc_ms - last < 60_000:
        parts.append(say("status.sent_now", lang))
    else:
        parts.append(say("status.sent_ago", lang, age=age_text((now_utc_ms - last) / 1000, lang)))
    if snapshot.queue_depth:
        parts.append(say("status.queued", lang, n=snapshot.queue_depth))
    beacon = [say("status.beacon_on" if snapshot.beacon_on else "status.beacon_off", lang)]
    if snapshot.nearby_phones is not None:
        beacon.append(say("status.nearby", lang, n=snapshot.nearby_phones))
    clock = local_time(now_utc_ms, LOCAL_ZONE).strftime("%H:%M") if snapshot.clock_synced else "--:--"
    return {
        "venue": ("pin", venue or say("status.no_venue", lang)),
        "sync": ("cloud" if online else "cloud-off", " · ".join(parts)),
        "beacon": ("beacon" if snapshot.beacon_on else "beacon-off", " · ".join(beacon)),
        "clock": (None, clock),
        "lang": (None, say("lang.switch", lang)),
    }


def draw_bar(surface: pygame.Surface, layout: Layout, fonts: Fonts, items: dict[str, tuple[str | None, str]]) -> pygame.Rect:
    surface.fill(BAR_BACKGROUND, layout.status)
    cells = layout.status_cells()
    em = layout.status_px
    for name, cell in cells.items():
        icon, words = items[name]
        box = cell.copy()
        if name == "lang":
            pygame.draw.rect(surface, BAR_DIM, cell, max(1, em // 10), border_radius=em // 3)
            textbox.draw(surface, fonts, words, cell.inflate(-em // 2, -4), em, BAR_INK, align="center")
            continue
        if icon:
            side = min(cell.height, round(em * 1.5))
            draw_icon(surface, icon, pygame.Rect(cell.x, cell.centery - side // 2, side, side), BAR_INK, BAR_BACKGROUND)
            box = pygame.Rect(cell.x + side + em // 2, cell.y, max(0, cell.width - side - em // 2), cell.height)
        if name == "clock":
            textbox.draw(surface, fonts, words, box, layout.clock_px, BAR_INK, bold=True, align="right")
        elif name == "venue":  # one line, a little smaller if need be; two lines when it must
            one_line = textbox.fit(fonts, words, box, layout.venue_px, True, 1, round(em * 0.85))
            lines = 2 if "".join(one_line.lines).endswith("…") else 1
            textbox.draw(surface, fonts, words, box, layout.venue_px, BAR_INK, bold=True, max_lines=lines,
                         min_size=round(em * (0.7 if lines == 2 else 0.85)))
        else:
            textbox.draw(surface, fonts, words, box, layout.status_small_px, BAR_INK, max_lines=2,
                         min_size=round(em * 0.7))
    return layout.status
