"""``kiosk upstream serve --workers N``: N stateless uvicorn worker processes on one listening socket.

The parent binds the socket, migrates the database and creates the console's tables once, then
hands over to uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``: it restarts a worker
that dies and stops them all on SIGTERM). Each worker is a fresh process (spawned, not forked) that
builds its own app and its own connection pool from the environment, so nothing is shared between
workers but the database: which is the point (docs/scale.md, "where state lives").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
from typing import Any, AsyncIterator

from fastapi import FastAPI

ENV_DB = "KIOSK_UPSTREAM_DB"
ENV_SETTINGS = "KIOSK_UPSTREAM_SETTINGS"
ENV_POOL = "KIOSK_UPSTREAM_POOL"
ENV_LOG_LEVEL = "KIOSK_UPSTREAM_LOG_LEVEL"


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn calls this factory in each worker process)."""
    from kiosk.core.logs import setup_logging
    from sync.upstream.server import ServerSettings, create_app
    from sync.upstream.engines import open_storage

    setup_logging(os.environ.get(ENV_LOG_LEVEL, "INFO"))
    settings = ServerSettings(**json.loads(os.environ[ENV_SETTINGS]))
    storage = open_storage(os.environ[ENV_DB], **json.loads(os.environ.get(ENV_POOL, "{}")))
    app = create_app(storage, settings)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(application) as state:
                yield state
        finally:
            storage.close()  # the pool's connections end with the worker, not by the server's timeout

    app.router.lifespan_context = lifespan
    return app


def serve_workers(db: str, settings: Any, pool: dict[str, Any], sock: socket.socket, workers: int,
                  tls_cert: str | None, tls_key: str | None, log_level: str, app_log_level: str,
                  forwarded_allow_ips: str | None) -> None:
    """Run ``workers`` processes on ``sock`` until SIGTERM/SIGINT; the caller has migrated the database."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ[ENV_DB] = db
    # Silent-device alerts are watched once, here in the supervisor, not by every worker (each would
    # post the same outage).
    os.environ[ENV_SETTINGS] = json.dumps(dataclasses.asdict(dataclasses.replace(settings, alert_webhook_url=None)))
    os.environ[ENV_POOL] = json.dumps(pool)
    os.environ[ENV_LOG_LEVEL] = app_log_level
    config = uvicorn.Config("sync.upstream.workers:worker_app", factory=True, workers=workers, log_level=log_level,
                            access_log=False, timeout_keep_alive=30, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                            server_header=False, proxy_headers=bool(forwarded_allow_ips),
                            forwarded_allow_ips=forwarded_allow_ips)
    logging.getLogger("sync.workers").info("starting %d workers", workers)
    stop = threading.Event()
    if settings.alert_webhook_url:
        from sync.upstream.console.alerts import SilentDeviceAlerts
        from sync.upstream.engines import open_storage

        watcher = SilentDeviceAlerts(open_storage(db, pool_size=1), settings.silent_after_s, settings.alert_webhook_url)
        threading.Thread(target=watcher.run, args=(stop, settings.alert_check_s), daemon=True,
                         name="silent-device-alerts").start()
    supervisor = Multiprocess(config, sockets=[sock])
    threading.Thread(target=_notify_systemd, args=(supervisor, workers, stop), daemon=True,
                     name="systemd-watchdog").start()
    try:
        supervisor.run()
    finally:
        stop.set()


def _notify_systemd(supervisor: Any, workers: int, stop: threading.Event) -> None:
    """READY once the workers run, then WATCHDOG pings while at least one lives (the unit is
    Type=notify with WatchdogSec); uvicorn's supervisor itself restarts a worker that dies or hangs."""
    from kiosk.core.watchdog import LoopWatch

    watch = LoopWatch()
    while not stop.wait(0.5):
        alive = sum(1 for worker in list(supervisor.processes) if worker.process.is_alive())
        if alive:
            watch.beat(f"serving with {alive} of {workers} workers")
    watch.stopping()
