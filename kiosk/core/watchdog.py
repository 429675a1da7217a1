"""Tell systemd we are up and still working: the sd_notify protocol, without libsystemd.

systemd passes ``$NOTIFY_SOCKET`` (a unix datagram socket; a leading ``@`` means the abstract
namespace) to ``Type=notify`` services, and ``$WATCHDOG_USEC`` when the unit has ``WatchdogSec=``.
A service sends ``READY=1`` once, then ``WATCHDOG=1`` at least every ``WATCHDOG_USEC``; we ping at
half that, as sd_watchdog_enabled(3) recommends. Outside systemd (no ``$NOTIFY_SOCKET``) every call
is a no-op, so the same code runs on a laptop and in tests.

Pings are driven by the service's own main loop (:class:`LoopWatch`), never by a timer thread: a
camera driver that hangs inside ``read()`` stops the loop, the pings stop, and systemd restarts the
service. A free-running timer would keep a wedged kiosk "healthy" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Protocol

log = logging.getLogger("kiosk.watchdog")


class StopEvent(Protocol):
    """The part of threading.Event that :meth:`LoopWatch.wait` needs."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Notifier:
    """One service's channel to systemd's notify socket."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None):
        self.address = address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Notifier":
        """Read ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (honouring ``$WATCHDOG_PID``) as systemd sets them."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "")) or None
        except ValueError:
            usec = None
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            usec = None  # the watchdog belongs to another process of the unit
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False (and a debug line) if systemd is not listening."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, target)
            return True
        except OSError as exc:  # systemd gone or socket full: never a reason to stop checking people in
            log.debug("notify socket %s: %s", self.address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def ping(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class LoopWatch:
    """The main loop's heartbeat: READY on the first beat, then WATCHDOG=1 at most every half period.

    Call :meth:`beat` once per loop iteration (and while waiting, from inside the wait). Nothing else
    sends pings, so when the loop stops turning the pings stop too.
    """

    def __init__(self, notifier: Notifier | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.notifier = notifier or Notifier.from_env()
        self.monotonic = monotonic
        self.ready = False
        self._last_ping = float("-inf")
        self._status = ""

    @property
    def interval(self) -> float | None:
        """Seconds between pings, or None when systemd set no watchdog."""
        return self.notifier.watchdog_interval

    def beat(self, status: str | None = None) -> None:
        now = self.monotonic()
        lines = []
        if status is not None and status != self._status:
            self._status = status
            lines.append(f"STATUS={status}")
        if not self.ready:
            self.ready = True
            lines.insert(0, "READY=1")
        if self.interval is not None and now - self._last_ping >= self.interval:
            self._last_ping = now
            lines.append("WATCHDOG=1")
        if lines:
            self.notifier.send(*lines)

    def wait(self, stop: "StopEvent", seconds: float, status: str | None = None) -> bool:
        """Wait up to ``seconds`` (or until ``stop``), still beating: a deliberate pause is healthy."""
        end = self.monotonic() + seconds
        step = min(self.interval or seconds, 1.0)
        while not stop.is_set():
            self.beat(status)
            left = end - self.monotonic()
            if left <= 0:
                return False
            stop.wait(min(step, left))
        return True

    def stopping(self, status: str = "stopping") -> None:
        self.notifier.stopping(status)




async def heartbeat_while(watch: LoopWatch, ready: Callable[[], bool], done: Callable[[], bool], status: str) -> None:
    """Beat from inside an asyncio event loop (the upstream server): each ping proves the loop still
    turns; a handler that blocks the loop stops them. READY waits until ``ready()`` (listening);
    STOPPING goes out as soon as ``done()`` (shutdown begins)."""
    import asyncio

    while not done():
        if ready():
            watch.beat(status)
        await asyncio.sleep(min(0.25, watch.interval or 0.25))
    watch.stopping()
