"""What every long-running service shares: a clean stop on signals, and full-jitter backoff.

Kept apart from the scanner loop so the uploader and the beacon do not import the camera stack.
"""

from __future__ import annotations

import random
import signal
import threading
from typing import Callable


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (systemd stop) and SIGINT end the loop cleanly after the current step."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())


def backoff_delays(base: float = 0.5, cap: float = 30.0) -> Callable[[int], float]:
    """Full-jitter exponential backoff: attempt n waits uniformly in [0, min(cap, base * 2**n)]."""
    return lambda attempt: random.uniform(0, min(cap, base * 2 ** attempt))
