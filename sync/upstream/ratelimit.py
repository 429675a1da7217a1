"""A token bucket per client address, so one source cannot hammer enrollment (signature checks,
token look-ups) while others still get through.

It lives in the upstream process's memory: each process counts on its own (the reference upstream
runs one uvicorn worker; behind several workers or hosts, put a shared limit in the reverse proxy).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RateLimiter:
    """``burst`` attempts at once, then ``per_minute`` a minute; ``per_minute`` 0 means no limit."""

    def __init__(self, per_minute: float, burst: int, max_sources: int = 10_000):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # source -> (tokens, monotonic time)
        self._lock = threading.Lock()

    def wait_s(self, source: str) -> float:
        """0 if this attempt may proceed (and it is counted), else the seconds until the next one may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(source, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                tokens -= 1
                wait = 0.0
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[source] = (tokens, now)
            while len(self._buckets) > self.max_sources:  # a flood of addresses forgets the oldest
                self._buckets.popitem(last=False)
            return wait
