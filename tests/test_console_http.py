"""The console over plain HTTP against a real upstream: lock-out, cookies behind https, sessions that
end, hostile and malformed requests, and the bearer-token API beside it, unchanged."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import run_kiosk
from console_helpers import PASSWORDS, add_user, form_token, login, start_console
from sync.upstream.storage import Storage
from upstream_helpers import start_upstream


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    rig = start_console(str(tmp_path_factory.mktemp("console") / "upstream.db"))
    yield rig
    rig.upstream.stop()


def try_login(url: str, name: str, password: str, ca: str | bool = True, **headers: str) -> requests.Response:
    session = requests.Session()
    page = session.get(url + "/login", timeout=30, headers=headers, verify=ca)
    # The form's cookie is sent by hand: requests keeps a Secure cookie from an http URL to itself.
    return session.post(url + "/login", data={"csrf": form_token(page.text), "username": name, "password": password},
                        cookies={"kiosk_login_csrf": page.cookies["kiosk_login_csrf"]}, timeout=30, headers=headers,
                        allow_redirects=False, verify=ca)


def test_five_wrong_passwords_lock_the_account(rig):
    for _ in range(4):
        assert "Sai tên người dùng" in try_login(rig.url, "locked", "wrong password!").text
    assert "Tài khoản tạm khoá" in try_login(rig.url, "locked", "wrong password!").text
    refused = try_login(rig.url, "locked", PASSWORDS["locked"])  # the right password, too late
    assert refused.status_code == 401 and "Tài khoản tạm khoá" in refused.text and "kiosk_console" not in refused.cookies
    users = {u["name"]: u for u in __import__("json").loads(run_kiosk("upstream", "user", "list", "--db", rig.db).stdout)["users"]}
    assert users["locked"]["locked_until"].endswith("+07:00") and "password_hash" not in users["locked"]
    audit = login(rig.url, "op").get(rig.url + "/audit", timeout=30).text
    assert "account locked" in audit and "locked for 15 min" in audit
    # What an unknown name typed into the form was is not kept (it may be someone's password).
    try_login(rig.url, "my-secret-typed-as-name", "whatever pw")
    assert "my-secret-typed-as-name" not in login(rig.url, "op").get(rig.url + "/audit", timeout=30).text


def test_parallel_guesses_all_count_towards_the_lock(rig):
    add_user(rig.db, "parallel", "viewer", "parallel password")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: try_login(rig.url, "parallel", "wrong guess!!").status_code, range(8)))
    assert answers == [401] * 8
    assert "Tài khoản tạm khoá" in try_login(rig.url, "parallel", "parallel password").text


def test_passwords_and_sessions_are_stored_as_hashes(rig):
    session = login(rig.url, "viewer")
    storage = Storage(rig.db)
    try:
        hashes = [r["password_hash"] for r in storage._query("SELECT password_hash FROM console_users")]
        sessions = [r["token_hash"] for r in storage._query("SELECT token_hash FROM console_sessions")]
    finally:
        storage.close()
    assert all(h.startswith("$argon2id$") for h in hashes) and not any(pw in h for h in hashes for pw in PASSWORDS.values())
    assert session.cookies["kiosk_console"] not in sessions


def test_cookie_flags_and_secure_only_behind_a_trusted_proxy(rig, tmp_path):
    plain = try_login(rig.url, "op", PASSWORDS["op"])
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    # A client cannot claim https for itself: the upstream trusts no proxy unless told.
    claimed = try_login(rig.url, "op", PASSWORDS["op"], **{"X-Forwarded-Proto": "https",
                                                             "X-Forwarded-For": "198.51.100.4"})
    assert "Secure" not in claimed.headers["set-cookie"]
    assert "198.51.100.4" not in login(rig.url, "op").get(rig.url + "/audit", timeout=30).text
    behind = start_console(str(tmp_path / "proxied.db"), "--forwarded-allow-ips", "127.0.0.1")
    try:
        proxied = try_login(behind.url, "op", PASSWORDS["op"], **{"X-Forwarded-Proto": "https",
                                                                  "X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 303 and "Secure" in proxied.headers["set-cookie"]
        audit = requests.get(behind.url + "/audit", cookies={"kiosk_console": proxied.cookies["kiosk_console"]},
                             timeout=30).text
        assert "203.0.113.9" in audit  # the person's address as the trusted proxy gave it
    finally:
        behind.upstream.stop()


def test_cookies_are_secure_when_uvicorn_speaks_tls_itself(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    tls = start_upstream(str(tmp_path / "tls.db"), "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        add_user(tls.db, "op", "operator", PASSWORDS["op"])
        assert tls.url.startswith("https://")
        answer = try_login(tls.url, "op", PASSWORDS["op"], ca=str(cert))
        assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]
    finally:
        tls.stop()


def test_logout_and_user_removal_end_sessions(rig):
    session = login(rig.url, "op2")
    stolen = session.cookies["kiosk_console"]
    page = session.get(rig.url + "/fleet", timeout=30)
    session.post(rig.url + "/logout", data={"csrf": form_token(page.text)}, timeout=30)
    replay = requests.get(rig.url + "/fleet", cookies={"kiosk_console": stolen}, timeout=30, allow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"] == "/login"
    run_kiosk("upstream", "user", "add", "--db", rig.db, "--name", "temp", "--role", "viewer", "--password-stdin",
              input="temporary password\n")
    temp = login(rig.url, "temp", "temporary password")
    assert run_kiosk("upstream", "user", "remove", "--db", rig.db, "--name", "temp").returncode == 0
    assert temp.get(rig.url + "/fleet", timeout=30).url.endswith("/login")


def test_hostile_and_malformed_requests_are_refused_cleanly(rig):
    url = rig.url
    assert requests.post(url + "/fleet/kiosk-cbt-1/revoke", data={"csrf": "x"}, timeout=30).status_code == 401
    assert requests.post(url + "/login", data={"csrf": "x", "username": "op", "password": "y"},
                         timeout=30).status_code == 403  # no login form token: refused before any password check
    op = login(url, "op")
    token = form_token(op.get(url + "/fleet", timeout=30).text)
    huge = op.post(url + "/venues/CHO-BEN-THANH/exposure", data={"csrf": token, "from": "x" * 20_000}, timeout=30)
    assert huge.status_code == 413
    for forged in ("ü" * 40, "", token[:-1]):
        assert op.post(url + "/logout", data={"csrf": forged}, timeout=30).status_code == 403
    assert requests.post(url + "/login", data={"csrf": "é", "username": "op", "password": "y"},
                         cookies={"kiosk_login_csrf": "abc"}, timeout=30).status_code == 403
    for far in ("0001-01-01T00:00%2B14:00", "9999-12-31T23:59", "1969-12-31T00:00"):
        assert op.get(url + f"/venues/CHO-BEN-THANH?from={far}", timeout=30).status_code == 422, far
        assert op.get(url + f"/venues/CHO-BEN-THANH/checkins.csv?from={far}&to=2100-01-01T00:00", timeout=30
                      ).status_code == 422, far
    as_json = op.post(url + "/logout", json={"csrf": token}, timeout=30)
    assert as_json.status_code == 415
    bad_window = op.post(url + "/venues/CHO-BEN-THANH/exposure", data={"csrf": token, "from": "2026-12-02T00:00",
                                                                     "to": "2026-12-01T00:00"}, timeout=30)
    assert bad_window.status_code == 422 and "Khoảng thời gian không hợp lệ" in bad_window.text
    page = op.get(url + "/venues/CHO-BEN-THANH?from=yesterday&to=2026-13-45", timeout=30)
    assert page.status_code == 422 and "Khoảng thời gian không hợp lệ" in page.text
    assert op.get(url + "/venues/NO-SUCH-VENUE", timeout=30).status_code == 404
    assert op.get(url + "/venues/" + "A" * 5000, timeout=30).status_code in (404, 414)
    csv = url + "/venues/CHO-BEN-THANH/checkins.csv"
    assert op.get(csv, timeout=30).status_code == 422
    assert op.get(csv + "?from=2026-12-02T00:00:00%2B07:00&to=2026-12-01T00:00:00%2B07:00", timeout=30).status_code == 422
    ok = op.get(csv + "?from=2000-01-01T00:00:00%2B07:00&to=2100-01-01T00:00:00%2B07:00", timeout=30)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/csv")
    assert "attachment" in ok.headers["content-disposition"] and len(ok.text.splitlines()) == 7
    assert "default-src 'none'" in ok.headers["content-security-policy"] and ok.headers["cache-control"] == "no-store"
    html = op.get(url + "/lang/en?back=//evil.example/x", timeout=30, allow_redirects=False)
    assert html.headers["location"] == "/fleet"  # no open redirect
    assert op.get(url + "/fleet", timeout=30).status_code == 200  # still serving, still logged in


def test_the_bearer_token_api_works_beside_the_console(rig):
    operator = run_kiosk("upstream", "token", "--db", rig.db, "--operator").stdout.strip()
    stats = requests.get(rig.url + "/v1/admin/stats", headers={"Authorization": f"Bearer {operator}"}, timeout=30)
    assert stats.status_code == 200 and stats.json()["total"] == 6
    console = login(rig.url, "op")
    refused = console.get(rig.url + "/v1/admin/stats", timeout=30)  # a console session is not an API token
    assert refused.status_code == 401 and refused.json()["reason"] == "operator-token-required"
    assert requests.get(rig.url + "/v1/no-such", timeout=30).json()["reason"] == "not-found"
