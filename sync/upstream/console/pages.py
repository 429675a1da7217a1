"""The console's pages: FastAPI routes rendering Jinja2 templates, mounted on the upstream's app.

Every page but /login needs a session cookie; every form carries the session's CSRF token (the
login form a token of its own, double-submitted in a short-lived cookie). Revoking a device, making
exposure entries and reading the audit log are for operators; viewers read the fleet, the venues
and their traces. Reading a trace or downloading its CSV is written to the audit log.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from sync.upstream.console import localtime as lt
from sync.upstream.console import overview
from sync.upstream.console.alerts import attach as attach_alerts
from sync.upstream.console.accounts import Accounts, Session
from sync.upstream.console.chart import per_day_svg
from sync.upstream.console.csvout import trace_csv
from sync.upstream.console.i18n import LANGUAGES, translator
from sync.upstream.exposure import exposure_entries
from sync.upstream.storage import now_ms

SESSION_COOKIE = "kiosk_console"
LOGIN_CSRF_COOKIE = "kiosk_login_csrf"
LANG_COOKIE = "kiosk_lang"
MAX_FORM_BYTES = 16 * 1024
TRACE_ROWS_SHOWN = 1000
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))


class Refused(Exception):
    """A console request that cannot go on: shown as a page, or a redirect to /login."""

    def __init__(self, status: int, key: str):
        self.status, self.key = status, key


# ---- request helpers ----------------------------------------------------------------------------
def _accounts(request: Request) -> Accounts:
    return request.app.state.console_accounts


def _source(request: Request) -> str:
    return request.client.host if request.client else "?"


def _lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "vi")
    return lang if lang in LANGUAGES else "vi"


def _secure(request: Request) -> bool:
    """Cookies are Secure when the page came over https (direct TLS, or a trusted proxy's
    X-Forwarded-Proto, as uvicorn's --forwarded-allow-ips decides)."""
    return request.url.scheme == "https"


def current_session(request: Request) -> Session:
    session = _accounts(request).session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise Refused(401, "login")
    return session


def operator_session(session: Session = Depends(current_session)) -> Session:
    if not session.operator:
        raise Refused(403, "operator_only")
    return session


async def posted_form(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise Refused(411, "expired_form")
    if int(declared) > MAX_FORM_BYTES:
        raise Refused(413, "expired_form")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise Refused(415, "expired_form")
    return await request.form(max_files=0, max_fields=20)


def checked_form(request: Request, form: FormData = Depends(posted_form),
                 session: Session = Depends(current_session)) -> FormData:
    """The form, once its CSRF token is this session's: a page of another site, or another user's
    session cookie under this page's token, is refused."""
    if not same_token(form.get("csrf"), session.csrf):
        _accounts(request).audit(session.user, "csrf-refused", request.url.path, "form token does not match the session",
                                 _source(request))
        raise Refused(403, "expired_form")
    return form


def same_token(sent: Any, expected: str) -> bool:
    """Constant-time comparison of a posted token (any text a client sends) with the expected one."""
    return isinstance(sent, str) and secrets.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def render(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    return templates.TemplateResponse(request, name, {
        "t": translator(lang), "lang": lang, "session": session, "shown": lt.shown, "path": request.url.path,
        **context}, status_code=status, headers=SECURITY_HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def parse_window(start: str | None, end: str | None, at_ms: int) -> tuple[int, int]:
    """A [start, end] window in ms from ISO 8601 or datetime-local values (no offset = Vietnam time).
    An end given to the minute takes in that whole minute. Default: today, local time."""
    lo = lt.parse_local_ms(start) if start else lt.day_start_ms(at_ms)
    hi = lt.parse_local_ms(end) if end else lt.day_start_ms(at_ms, -1) - 1
    if end and len(end.strip()) == len("2026-12-01T08:00"):
        hi += 59_999
    if hi < lo:
        raise ValueError("end before start")
    return lo, hi


# ---- routes -------------------------------------------------------------------------------------
router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    return _redirect("/fleet")


@router.get("/console.css")
def stylesheet() -> Response:
    return Response((HERE / "console.css").read_text(encoding="utf-8"), media_type="text/css",
                    headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


@router.get("/lang/{code}")
def choose_language(code: str, request: Request, back: str = "/fleet") -> Response:
    response = _redirect(back if back.startswith("/") and not back.startswith("//") else "/fleet")
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", secure=_secure(request))
    return response


@router.get("/login")
def login_page(request: Request) -> Response:
    if _accounts(request).session(request.cookies.get(SESSION_COOKIE)):
        return _redirect("/fleet")
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status, csrf=token, error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=_secure(request), path="/login")
    return response


@router.post("/login")
def login(request: Request, form: FormData = Depends(posted_form)) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same_token(form.get("csrf"), expected):
        return _login_form(request, "expired_form", 403)
    result = _accounts(request).login(str(form.get("username", "")), str(form.get("password", "")), _source(request))
    if result.token is None:
        return _login_form(request, "locked" if result.reason == "locked" else "bad_credentials", 401)
    response = _redirect("/fleet")
    response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="strict", secure=_secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, form: FormData = Depends(checked_form),
           session: Session = Depends(current_session)) -> Response:
    _accounts(request).logout(session, _source(request))
    response = _redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/fleet")
def fleet_page(request: Request, session: Session = Depends(current_session), revoked: str | None = None) -> Response:
    after = request.app.state.settings.silent_after_s
    devices = overview.fleet(request.app.state.storage, after)
    return render(request, "fleet.html", session, devices=devices, silent_after_s=after, revoked=revoked,
                  silent=sum(1 for d in devices if d["silent"]))


@router.get("/fleet/{device_id}/revoke")
def revoke_confirm(device_id: str, request: Request, session: Session = Depends(operator_session)) -> Response:
    device = request.app.state.storage.device(device_id)
    if device is None:
        raise Refused(404, "not_found")
    return render(request, "revoke.html", session, device=device)


@router.post("/fleet/{device_id}/revoke")
def revoke(device_id: str, request: Request, form: FormData = Depends(checked_form),
           session: Session = Depends(operator_session)) -> Response:
    if request.app.state.storage.device(device_id) is None:
        raise Refused(404, "not_found")
    done = request.app.state.storage.revoke(device_id)
    _accounts(request).audit(session.user, "revoke", device_id, "revoked" if done else "already revoked",
                             _source(request))
    return _redirect(f"/fleet?revoked={device_id}")


@router.get("/venues")
def venues_page(request: Request, session: Session = Depends(current_session)) -> Response:
    t = translator(_lang(request))
    venues = overview.venues(request.app.state.storage)
    charts = {v.venue_id: per_day_svg(v.per_day, f"{v.venue_id}: {t('per_day')}") for v in venues}
    return render(request, "venues.html", session, venues=venues, charts=charts)


def _window_query(request: Request) -> tuple[str | None, str | None]:
    """?from=&to= (``from`` is a Python keyword, so not a parameter name)."""
    return request.query_params.get("from") or None, request.query_params.get("to") or None


def _known_venue(request: Request, venue_id: str) -> str:
    if len(venue_id) > 64 or not overview.venue_known(request.app.state.storage, venue_id):
        raise Refused(404, "not_found")
    return venue_id


@router.get("/venues/{venue_id}")
def venue_page(venue_id: str, request: Request, session: Session = Depends(current_session)) -> Response:
    start, end = _window_query(request)
    _known_venue(request, venue_id)
    at = now_ms()
    try:
        lo, hi = parse_window(start, end, at)
    except ValueError:
        return render(request, "venue.html", session, 422, venue=overview.venues(request.app.state.storage, venue_id)[0],
                      error="bad_window", rows=[], total=0, start=start or "", end=end or "", lo=None, hi=None)
    rows = request.app.state.storage.trace(venue_id, lo, hi)
    _accounts(request).audit(session.user, "view-trace", venue_id, f"{lt.iso_local(lo)} .. {lt.iso_local(hi)}: "
                                                                     f"{len(rows)} check-ins", _source(request))
    venue = overview.venues(request.app.state.storage, venue_id)[0]
    return render(request, "venue.html", session, venue=venue, rows=rows[:TRACE_ROWS_SHOWN], total=len(rows),
                  start=lt.input_value(lo), end=lt.input_value(hi), lo=lt.iso_local(lo), hi=lt.iso_local(hi),
                  chart=per_day_svg(venue.per_day, venue_id), error=None)


@router.get("/venues/{venue_id}/checkins.csv")
def venue_csv(venue_id: str, request: Request, session: Session = Depends(current_session)) -> Response:
    start, end = _window_query(request)
    _known_venue(request, venue_id)
    if not start or not end:
        return PlainTextResponse("from= and to= are required (ISO 8601, e.g. 2026-12-01T00:00:00+07:00)\n", 422,
                                 headers=SECURITY_HEADERS)
    try:
        lo, hi = parse_window(start, end, now_ms())
    except ValueError:
        return PlainTextResponse("from= and to= must be ISO 8601 times with from <= to\n", 422, headers=SECURITY_HEADERS)
    rows = request.app.state.storage.trace(venue_id, lo, hi)
    _accounts(request).audit(session.user, "download-csv", venue_id, f"{lt.iso_local(lo)} .. {lt.iso_local(hi)}: "
                                                                       f"{len(rows)} check-ins", _source(request))
    name = f"{venue_id}_{lt.local(lo):%Y%m%dT%H%M}_{lt.local(hi):%Y%m%dT%H%M}.csv"
    return Response(trace_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/venues/{venue_id}/exposure")
def exposure(venue_id: str, request: Request, form: FormData = Depends(checked_form),
             session: Session = Depends(operator_session)) -> Response:
    _known_venue(request, venue_id)
    storage = request.app.state.storage
    venue = overview.venues(storage, venue_id)[0]
    try:
        lo, hi = parse_window(str(form.get("from", "")) or None, str(form.get("to", "")) or None, now_ms())
    except ValueError:
        return render(request, "exposure.html", session, 422, venue=venue, error="bad_window", f0=None)
    keys = storage.beacon_keys(venue_id)
    entries = exposure_entries(keys, lo, hi)
    _accounts(request).audit(session.user, "exposure", venue_id,
                             f"{lt.iso_local(lo)} .. {lt.iso_local(hi)}: {len(entries)} F0 entries", _source(request))
    return render(request, "exposure.html", session, venue=venue, error=None, lo=lt.iso_local(lo), hi=lt.iso_local(hi),
                  f0=json.dumps(entries, indent=2), count=len(entries),
                  devices=sorted({k["device_id"] for k in keys}))


@router.get("/audit")
def audit_page(request: Request, session: Session = Depends(operator_session)) -> Response:
    return render(request, "audit.html", session, entries=_accounts(request).audit_log())


def mount(app: FastAPI) -> None:
    """Adds the console to the upstream's app (the storage must be set; the OpenAPI document, made
    without one, leaves the console out)."""
    if app.state.storage is None:
        return
    app.state.console_accounts = Accounts(app.state.storage)
    app.include_router(router)
    if app.state.settings.alert_webhook_url:
        attach_alerts(app)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return await run_in_threadpool(_refusal_page, request, exc)


def _refusal_page(request: Request, exc: Refused) -> Response:
    if exc.status == 401:
        if request.method == "GET":
            return _redirect("/login")
        return PlainTextResponse("log in first\n", 401, headers=SECURITY_HEADERS)
    session = _accounts(request).session(request.cookies.get(SESSION_COOKIE))
    if exc.key == "operator_only" and session:
        _accounts(request).audit(session.user, "refused", request.url.path, "operator only", _source(request))
    return render(request, "refused.html", session, exc.status, message=exc.key)
