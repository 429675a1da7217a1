"""Fuzz the upstream from its committed OpenAPI document (schemathesis): whatever arrives, the answer
is documented, never a 5xx, and the server keeps serving. One pass sends the generated requests as
they are (hostile headers); the other signs and gzips them like a real device, so the fuzzing
reaches the body validation and storage behind the signature check."""

import gzip
import json
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from conftest import ROOT, run_kiosk
from sync import protocol as p
from upstream_helpers import RawDevice, start_upstream

schema = schemathesis.openapi.from_path(str(ROOT / "sync" / "upstream" / "openapi.json"))
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("fuzz") / "upstream.db")
    server = start_upstream(db)
    device = RawDevice(server.url, "fuzz-device")
    assert device.enroll(db).status_code == 200
    operator = run_kiosk("upstream", "token", "--db", db, "--operator").stdout.strip()
    yield server, device, operator
    assert server.alive(), "the upstream died under fuzzing"
    server.stop()


def _still_serving(url: str) -> None:
    assert requests.get(url + p.PATH_TIME, timeout=10).status_code == 200


@schema.parametrize()
@SETTINGS
def test_generated_requests_as_sent(case, live):
    server, _, _ = live
    response = case.call(base_url=server.url, timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["reason"]
    case.validate_response(response, transport_kwargs={"base_url": server.url})
    _still_serving(server.url)


@schema.parametrize()
@SETTINGS
def test_generated_requests_signed_like_a_device(case, live):
    server, device, operator = live
    kwargs = case.as_transport_kwargs(base_url=server.url)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if not k.lower().startswith("x-kiosk")}
    if kwargs["method"].upper() == "POST":
        if "json" in kwargs:
            raw = json.dumps(kwargs["json"]).encode()
        else:
            raw = kwargs.get("data") or b""
            raw = raw.encode() if isinstance(raw, str) else raw
        body = gzip.compress(raw)
        path = kwargs["url"][len(server.url):]
        headers.update(p.sign(device.key, "POST", path, device.device_id, body, time.time_ns() // 1_000_000))
        headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        response = requests.post(kwargs["url"], data=body, headers=headers, params=kwargs.get("params"), timeout=30)
    else:
        headers["Authorization"] = f"Bearer {operator}"
        response = requests.request(kwargs["method"], kwargs["url"], headers=headers, params=kwargs.get("params"),
                                    timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["reason"]
    case.validate_response(response, excluded_checks=_not_applicable())
    _still_serving(server.url)


def _not_applicable():
    """Checks that judge the generated request, which this test rewrote (signed, compressed)."""
    from schemathesis.checks import load_all_checks
    from schemathesis.specs.openapi import checks

    load_all_checks()
    return [c for c in (getattr(checks, "negative_data_rejection", None), getattr(checks, "positive_data_acceptance", None),
                        getattr(checks, "missing_required_header", None), getattr(checks, "ignored_auth", None),
                        getattr(checks, "unsupported_method", None)) if c is not None]
