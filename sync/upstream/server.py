"""The reference upstream: FastAPI app (the OpenAPI document's source) served by uvicorn.

Signed routes are served by their route class: the body is read with a size cap, the Ed25519
signature and timestamp are checked, the nonce is remembered, and only then is the gzip body
inflated (with a second cap) and validated by the endpoint's pydantic model.
Every refusal is a 4xx whose JSON body carries a machine-readable ``reason``.
"""

from __future__ import annotations

import base64
import inspect
import logging
import socket
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, get_type_hints

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiosk import __version__
from sync import protocol as p
from sync.upstream.console.pages import mount as mount_console
from sync.upstream.audit import audit, token_id
from sync.upstream.exposure import exposure_entries
from sync.protocol import ProtocolError
from sync.upstream.schema import (Ack, BatchReply, BeaconKey, BeaconKeyReply, CheckinBatch, EnrollReply, EnrollRequest,
                         Error, Exposure, Fleet, Heartbeat, Stats, TimeReply, Trace)
from sync.upstream.ratelimit import RateLimiter
from sync.upstream.shedding import error_response
from sync.upstream.shedding import install as install_shedding
from sync.upstream.storage import Device, Storage, now_ms, token_hash

log = logging.getLogger("sync.server")

ENROLL_MAX_BODY = 16 * 1024
ENROLL_MAX_JSON = 64 * 1024


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = p.MAX_BODY_BYTES
    max_json_bytes: int = p.MAX_JSON_BYTES
    clock_window_ms: int = p.CLOCK_WINDOW_MS
    silent_after_s: int = 900
    alert_webhook_url: str | None = None  # the console posts silent devices here, once per outage
    alert_check_s: float = 30.0
    enroll_per_minute: int = 30  # enrollment attempts per client address a minute (as a burst too); 0 = no limit
    max_inflight: int = 0  # requests in progress per worker beyond which it answers 503 at once; 0 = no limit
    shed_retry_after_s: int = 3  # a shed request's Retry-After is spread over 1..this many seconds


ERRORS = {code: {"model": Error} for code in (400, 401, 403, 413, 415, 422, 503)}
ENROLL_ERRORS = {**ERRORS, **{code: {"model": Error} for code in (409, 429)}}


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# ---- authentication in the route class ----------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, "body-too-large", f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, "body-too-large", f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_clock(timestamp_ms: int, window_ms: int) -> None:
    if abs(timestamp_ms - now_ms()) > window_ms:
        raise ProtocolError(401, "clock-skew", f"request timestamp is more than {window_ms // 1000} s from server "
                                               "time; correct the offset with GET /v1/time")


def _check_device(storage: Storage, signed: p.SignedRequest, signature: bytes, window_ms: int) -> Device:
    """Known, not revoked, signature, clock, nonce: in one trip to a worker thread (each trip costs)."""
    device = storage.device(signed.device_id)
    if device is None:
        raise ProtocolError(401, "unknown-device", "this device is not enrolled")
    if device.revoked_ms is not None:
        raise ProtocolError(403, "device-revoked", "this device was revoked by the operator")
    p.verify(device.public_key, signed, signature)
    _check_clock(signed.timestamp_ms, window_ms)
    if not storage.remember_nonce(device.device_id, signed.nonce, window_ms):
        raise ProtocolError(401, "replay", "this request was already received")
    return device


def _inflate(request: Request, raw: bytes, limit: int) -> bytes:
    if request.headers.get("content-encoding", "").strip().lower() != "gzip":
        raise ProtocolError(415, "gzip-required", "request bodies must be sent with Content-Encoding: gzip")
    return p.gunzip_limited(raw, limit)


SIGNED_HEADERS = ((p.H_DEVICE, "device id"), (p.H_TIMESTAMP, "ms since the epoch, server-corrected"),
                  (p.H_NONCE, "16 to 64 hex digits, never reused"),
                  (p.H_DIGEST, "SHA-256 (hex) of the gzip body as sent"),
                  (p.H_SIGNATURE, "Ed25519 over the canonical request, base64"), ("Content-Encoding", "must be gzip"))


def _signed_header_parameters() -> list[dict[str, Any]]:
    """The signed headers as OpenAPI parameters. Written into the document rather than declared as a
    FastAPI dependency: the route class has verified them already, and a dependency would validate six
    headers again on every request."""
    return [{"description": text, "in": "header", "name": name, "required": True,
             "schema": {"description": text, "title": name.title(), "type": "string"}}
            for name, text in SIGNED_HEADERS]


class _SignedRoute(APIRoute):
    """Signed routes are served here rather than by FastAPI's request handler (the route stays
    FastAPI's for routing and the OpenAPI document). Authentication, inflating, validating the JSON
    body (pydantic, from the bytes in one pass) and the endpoint itself run in one trip to a worker
    thread; FastAPI's handler would add a second trip and validate the body from Python objects. With
    the headers no longer a dependency, a worker spends about a quarter less CPU per request under a
    fleet's load (docs/scale.md). Signed endpoints are therefore plain functions, run in that thread."""

    enrolled = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "openapi_extra": {"parameters": _signed_header_parameters()}})
        if inspect.iscoroutinefunction(self.endpoint):
            raise TypeError(f"{self.path}: a signed endpoint runs in a worker thread; define it with def")
        self.body_model: type[BaseModel] = get_type_hints(self.endpoint)["body"]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def signed_handler(request: Request) -> Response:
            settings: ServerSettings = request.app.state.settings
            if not self.enrolled:
                source = client_address(request)
                wait = request.app.state.enroll_limiter.wait_s(source or "unknown")
                if wait:
                    audit("enrollment-rate-limited", source, logging.WARNING, path=request.url.path)
                    return error_response(429, "rate-limited", "too many enrollment attempts from this address",
                                          headers={"Retry-After": str(max(1, round(wait)))})
            try:  # what needs no database is checked here, before a worker thread is taken
                raw = await _read_body(request, settings.max_body_bytes if self.enrolled else ENROLL_MAX_BODY)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                signed, signature = p.parse_signed_headers(request.method, target, request.headers, raw)
                if not self.enrolled:
                    _check_clock(signed.timestamp_ms, settings.clock_window_ms)
            except ProtocolError as exc:
                return self._refused(request, exc)
            return await run_in_threadpool(self._serve, request, raw, signed, signature)

        return signed_handler

    def _serve(self, request: Request, raw: bytes, signed: p.SignedRequest, signature: bytes) -> Response:
        settings: ServerSettings = request.app.state.settings
        try:
            if self.enrolled:
                request.state.device = _check_device(request.app.state.storage, signed, signature,
                                                     settings.clock_window_ms)
            else:
                request.state.signed = (signed, signature)
            body = _inflate(request, raw, settings.max_json_bytes if self.enrolled else ENROLL_MAX_JSON)
        except ProtocolError as exc:
            return self._refused(request, exc)
        try:
            model = self.body_model.model_validate_json(body)
        except ValidationError as exc:  # answered by the app's handler, as FastAPI's own would be
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None
        reply = self.endpoint(body=model, request=request)
        return reply if isinstance(reply, Response) else JSONResponse(reply.model_dump(mode="json"))

    def _refused(self, request: Request, exc: ProtocolError) -> Response:
        audit("enrollment-refused" if not self.enrolled else "request-refused", client_address(request),
              logging.WARNING, device=request.headers.get(p.H_DEVICE, "")[:80], path=request.url.path,
              reason=exc.reason)
        return error_response(exc.status, exc.reason, exc.message)


class DeviceRoute(_SignedRoute):
    """Signed by an enrolled, unrevoked device's key."""


class EnrollRoute(_SignedRoute):
    """Signed by the key being enrolled (proof of possession); the one-time token authorises it."""

    enrolled = False


def _device(request: Request) -> Device:
    return request.state.device


bearer = HTTPBearer(auto_error=False, description="operator token from `kiosk upstream token --operator`")


def operator(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """Every operator request is audited: who (the token's id), what (path and query), from where."""
    source, query = client_address(request), request.url.query[:300] or None
    if credentials is None:
        audit("operator-refused", source, logging.WARNING, path=request.url.path, reason="operator-token-required")
        raise ProtocolError(401, "operator-token-required", "send Authorization: Bearer <operator token>")
    who = token_id(token_hash(credentials.credentials))
    if not request.app.state.storage.operator_token_valid(credentials.credentials):
        audit("operator-refused", source, logging.WARNING, token=who, path=request.url.path, reason="bad-operator-token")
        raise ProtocolError(403, "bad-operator-token", "operator token is not valid")
    audit("operator-query", source, token=who, path=request.url.path, query=query)


# ---- the app ------------------------------------------------------------------------------------
DESCRIPTION = """Reference upstream for venue check-in kiosks.

Every device request is signed with the device's Ed25519 key over the canonical text
`KIOSK-SYNC-V1\\nMETHOD\\nPATH[?QUERY]\\nTIMESTAMP_MS\\nNONCE\\nDEVICE_ID\\nSHA256_HEX(body as sent)`
(headers X-Kiosk-Device, X-Kiosk-Timestamp, X-Kiosk-Nonce, X-Kiosk-Content-SHA256, X-Kiosk-Signature),
and its JSON body is sent gzip-compressed (Content-Encoding: gzip). Timestamps must be within five
minutes of server time (GET /v1/time gives it); a nonce is accepted once. Check-ins are identified by
the UUID made at scan time: a repeat is answered `duplicate` and never stored twice.
Every error body is `{"reason", "message", "server_time_ms"}` with a machine-readable reason.
"""


def create_app(storage: Storage | None, settings: ServerSettings = ServerSettings()) -> FastAPI:
    app = FastAPI(title="Kiosk upstream", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)
    app.state.storage = storage
    app.state.settings = settings
    app.state.enroll_limiter = RateLimiter(settings.enroll_per_minute, max(1, settings.enroll_per_minute))
    _install_error_handlers(app)
    install_shedding(app, settings.max_inflight, settings.shed_retry_after_s)  # sync/shedding.py

    public = APIRouter(prefix=p.API, tags=["device"])

    @public.get("/time", response_model=TimeReply, summary="Server time, for the device's clock offset")
    def server_time() -> TimeReply:
        return TimeReply(utc_ms=now_ms())

    enroll_router = APIRouter(prefix=p.API, tags=["device"], route_class=EnrollRoute,
                              responses=ENROLL_ERRORS)

    @enroll_router.post("/enroll", response_model=EnrollReply,
                        summary="Register the device's public key with a one-time enrollment token")
    def enroll(body: EnrollRequest, request: Request) -> EnrollReply:
        signed, signature = request.state.signed
        source, who = client_address(request), {"device": body.device_id, "venue": body.venue_id}
        try:
            try:
                public_key = base64.b64decode(body.public_key, validate=True)
            except ValueError:
                raise ProtocolError(422, "invalid-field", "public_key is not base64") from None
            if len(public_key) != 32:
                raise ProtocolError(422, "invalid-field", "public_key must be 32 bytes")
            if signed.device_id != body.device_id:
                raise ProtocolError(401, "bad-signature", f"{p.H_DEVICE} differs from the body's device_id")
            p.verify(public_key, signed, signature)
            enrolled = request.app.state.storage.enroll(body.token, body.device_id, body.venue_id, public_key,
                                                        body.software_version)
        except ProtocolError as exc:
            audit("enrollment-refused", source, logging.WARNING, **who, reason=exc.reason)
            raise
        audit("enrollment", source, logging.WARNING if enrolled.action.startswith("re-") else logging.INFO,
              action=enrolled.action, **who, key=base64.b64encode(public_key).decode("ascii"))
        return EnrollReply(device_id=body.device_id, venue_id=body.venue_id, enrolled_ms=enrolled.enrolled_ms,
                           server_time_ms=now_ms())

    device = APIRouter(prefix=p.API, tags=["device"], route_class=DeviceRoute,
                       responses=ERRORS)

    @device.post("/checkins", response_model=BatchReply, summary="Upload a batch of check-ins (idempotent per UUID)")
    def upload(body: CheckinBatch, request: Request) -> JSONResponse:
        items = body.model_dump()["checkins"]  # one call for the whole batch: pydantic-core, not a Python loop
        for row in items:
            row["clock_synced"] = int(row["clock_synced"])
            if row["sealed_subject"] is not None:
                try:
                    row["sealed_subject"] = base64.b64decode(row["sealed_subject"], validate=True)
                except ValueError:
                    raise ProtocolError(422, "invalid-field", f"check-in {row['id']}: sealed_subject is not base64") from None
        results = request.app.state.storage.store_checkins(_device(request), items)
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("stored", "duplicate", "rejected")}
        # Built here rather than through BatchReply: validating a reply we just made costs more than storing.
        return JSONResponse({"results": results, "stored": counts["stored"], "duplicates": counts["duplicate"],
                             "rejected": counts["rejected"], "server_time_ms": now_ms()})

    @device.post("/heartbeat", response_model=Ack, summary="Device health: queue, clock, components")
    def heartbeat(body: Heartbeat, request: Request) -> Ack:
        request.app.state.storage.record_heartbeat(_device(request), body.model_dump())
        return Ack(ok=True, server_time_ms=now_ms())

    @device.post("/beacon-key", response_model=BeaconKeyReply,
                 summary="Register the venue beacon's Bluezone base key, for exposure notices")
    def beacon_key(body: BeaconKey, request: Request) -> BeaconKeyReply:
        new = request.app.state.storage.register_beacon_key(_device(request), body.base_key, body.key_day.isoformat())
        return BeaconKeyReply(registered=new, server_time_ms=now_ms())

    admin = APIRouter(prefix=f"{p.API}/admin", tags=["operator"], dependencies=[Depends(operator)],
                      responses={c: {"model": Error} for c in (401, 403, 422, 503)})

    @admin.get("/stats", response_model=Stats, summary="Total and distinct check-ins")
    def stats(request: Request) -> Stats:
        return Stats(**request.app.state.storage.stats())

    @admin.get("/fleet", response_model=Fleet, summary="Last heartbeat per device; devices silent too long")
    def fleet(request: Request, silent_after_s: int | None = Query(None, ge=1, le=30 * 86400)) -> Fleet:
        after = silent_after_s or request.app.state.settings.silent_after_s
        return Fleet(server_time_ms=now_ms(), silent_after_s=after, devices=request.app.state.storage.fleet(after))

    @admin.get("/trace", response_model=Trace, summary="Check-ins at a venue with scan time in [start_ms, end_ms]")
    def trace(request: Request, venue_id: str = Query(pattern=r"^[A-Za-z0-9._-]{1,64}$"),
              start_ms: int = Query(ge=0, le=2**53), end_ms: int = Query(ge=0, le=2**53)) -> Trace:
        rows = request.app.state.storage.trace(venue_id, start_ms, end_ms)
        for r in rows:
            if r["sealed_subject"] is not None:
                r["sealed_subject"] = base64.b64encode(r["sealed_subject"]).decode("ascii")
        return Trace(venue_id=venue_id, start_ms=start_ms, end_ms=end_ms, checkins=rows)

    @admin.get("/exposure", response_model=Exposure,
               summary="Bluezone F0 entries for a venue exposure window, from its registered beacon keys")
    def exposure(request: Request, venue_id: str = Query(pattern=r"^[A-Za-z0-9._-]{1,64}$"),
                 start_ms: int = Query(ge=0, le=2**53), end_ms: int = Query(ge=0, le=2**53)) -> Exposure:
        if end_ms < start_ms:
            raise ProtocolError(422, "invalid-field", "end_ms is before start_ms")
        keys = request.app.state.storage.beacon_keys(venue_id)
        return Exposure(venue_id=venue_id, start_ms=start_ms, end_ms=end_ms,
                        devices=sorted({k["device_id"] for k in keys}), f0=exposure_entries(keys, start_ms, end_ms))

    for router in (public, enroll_router, device, admin):
        app.include_router(router)
    mount_console(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed-json", "body is not valid JSON")
        # Never echo the input back: it could be a visitor's data in a misbehaving client's request.
        fields = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in errors[:20]]
        if request.url.path == p.PATH_ENROLL:  # a refused enrollment leaves a trace whatever refused it
            audit("enrollment-refused", client_address(request), logging.WARNING,
                  device=request.headers.get(p.H_DEVICE, "")[:80], path=request.url.path, reason="invalid-field")
        return error_response(422, "invalid-field", "request does not match the schema", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        return error_response(exc.status_code, reason, str(exc.detail), headers=getattr(exc, "headers", None))

    async def storage_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("storage unavailable: %s", exc)
        return error_response(503, "storage-unavailable", "storage is unavailable; retry later",
                              headers={"Retry-After": "5"})

    app.add_exception_handler(sqlite3.OperationalError, storage_down)
    try:
        import psycopg

        app.add_exception_handler(psycopg.OperationalError, storage_down)
    except ImportError:
        pass


# ---- serving ------------------------------------------------------------------------------------
def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {listen!r} must be HOST:PORT (port 0 = any free port)")
    return host.strip("[]"), int(port)


def bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so port 0 works and the real port can be announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)  # a reconnect storm waits in the accept queue, not in SYN retries (capped by somaxconn)
    sock.set_inheritable(True)
    return sock


def make_server(app: FastAPI, tls_cert: str | None = None, tls_key: str | None = None,
                log_level: str = "warning", forwarded_allow_ips: str | None = None) -> Any:
    """Proxy headers (X-Forwarded-For/-Proto) are believed only from ``forwarded_allow_ips``; without
    it, from nobody, so no client can fake its address in the console's audit log."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_keep_alive=30,
                            ssl_certfile=tls_cert, ssl_keyfile=tls_key, server_header=False,
                            proxy_headers=bool(forwarded_allow_ips), forwarded_allow_ips=forwarded_allow_ips)
    return uvicorn.Server(config)
