"""The demo's sync: a local upstream on 127.0.0.1 (a free port, a database in the demo's state
directory), this device enrolled with it through the real protocol, and the real uploader alongside
the scanner. ``synced`` is counted in the upstream's own store, so it shows what really arrived."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from kiosk.core.config import Config

log = logging.getLogger("kiosk.sync")


class DemoSync:
    def __init__(self, config: Config):
        from sync.client import Uploader
        from sync.enroll import provision
        from sync.identity import load_enrollment
        from sync.upstream.server import bind, create_app, make_server
        from sync.upstream.storage import Storage

        self.storage = Storage(str(config.state_dir / "demo-upstream.db"))
        sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = make_server(create_app(self.storage))
        self._server_thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                               name="demo-upstream", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        venue = config.device.venue_id
        state, why = provision(config, self.url, self.storage.create_token("enroll", venue, ttl_s=600), venue)
        enrollment = load_enrollment(config.state_dir)
        if enrollment is None:
            raise RuntimeError(f"enrollment {state}: {why}")
        self.device_id = enrollment.device_id
        self.uploader = Uploader(config.replace(sync={"upstream_url": self.url, "wake_check_s": 0.1}))
        self._stop = threading.Event()
        self._uploader_thread = threading.Thread(target=self.uploader.run, args=(self._stop,), name="demo-sync",
                                                 daemon=True)
        self._uploader_thread.start()

    def synced(self) -> int:
        return len(self.storage.checkin_ids(self.device_id))

    def finish(self, expected: int, grace_s: float = 10.0) -> int:
        """Give the uploader a moment for the last check-ins, stop both, and count what arrived."""
        deadline = time.monotonic() + grace_s
        while self.synced() < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        synced = self.synced()
        self.stop()
        return synced

    def stop(self) -> None:
        self._stop.set()
        self._uploader_thread.join(30)
        self.uploader.close()
        self.server.should_exit = True
        self._server_thread.join(10)
        self.storage.close()


def start(config: Config) -> DemoSync | None:
    """The demo's upstream and uploader, or None (with a line saying why) if they cannot start."""
    try:
        demo = DemoSync(config)
    except Exception as exc:  # noqa: BLE001 - the demo goes on without sync, and says so
        print(f"demo: sync not started: {exc}", file=sys.stderr)
        return None
    print(f"demo: local upstream on {demo.url} (database {Path(demo.storage.url).name}); uploader running",
          file=sys.stderr)
    return demo
