"""Load shedding: when a worker or its database is saturated, answer 503 with Retry-After at once.

A request the server cannot serve soon is better refused in a millisecond than left to wait until the
device's read timeout: the device then knows to come back later (it honours Retry-After with its own
jitter), the connection is freed, and a reconnect storm drains instead of piling up. Two triggers:

- more than ``max_inflight`` requests in this worker (an ASGI middleware, before the body is read);
- no database connection free within the pool's wait (sync/pg_storage.py's ``Overloaded``).

The Retry-After value is spread over 1..``retry_after_s`` seconds so that refused devices do not all
come back in the same second.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sync.upstream.storage import now_ms

log = logging.getLogger("sync.shedding")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def error_response(status: int, reason: str, message: str, fields: list | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error the upstream answers: a reason code, a message for people, the server's time."""
    body: dict[str, Any] = {"reason": reason, "message": message, "server_time_ms": now_ms()}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


def shed_response(retry_after_s: int, why: str) -> JSONResponse:
    wait = random.randint(1, max(1, retry_after_s))
    return error_response(503, "overloaded", f"the upstream is saturated ({why}); retry after {wait} s",
                          headers={"Retry-After": str(wait)})


class InflightLimit:
    """Pure ASGI middleware: at most ``limit`` requests in progress in this worker; 0 = no limit."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int, retry_after_s: int):
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self.shed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            self.shed += 1
            await shed_response(self.retry_after_s, f"{self.inflight} requests in progress")(scope, receive, send)
            return
        self.inflight += 1
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            # Server-Timing: how long this worker held the request, so a client (the fleet bench) can tell
            # the server's time from its own queueing and the kernel's accept queue.
            if message["type"] == "http.response.start":
                spent = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", spent)]}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.inflight -= 1


def install(app: FastAPI, max_inflight: int, retry_after_s: int) -> None:
    """The in-flight limit and the pool-saturation handler, on an app made by sync.upstream.server.create_app."""
    from sync.upstream.pg_storage import Overloaded

    async def overloaded(request: Request, exc: Exception) -> JSONResponse:
        log.warning("shedding %s: %s", request.url.path, exc)
        return shed_response(retry_after_s, str(exc))

    app.add_exception_handler(Overloaded, overloaded)

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        # Sync handlers run in anyio's worker threads (40 by default). More threads than database
        # connections only queue on the pool while contending for the GIL with the event loop.
        import anyio.to_thread

        storage = application.state.storage
        if getattr(storage, "dialect", None) == "postgresql" and getattr(storage, "pool_size", None):
            anyio.to_thread.current_default_thread_limiter().total_tokens = max(4, 2 * storage.pool_size)
        async with inner(application) as state:
            yield state

    app.router.lifespan_context = lifespan
    if max_inflight > 0:
        app.add_middleware(InflightLimit, limit=max_inflight, retry_after_s=retry_after_s)
