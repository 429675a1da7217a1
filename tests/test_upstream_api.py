"""The reference upstream as a real process on loopback: enrollment, signatures, replays, limits,
exactly-once storage, operator views; every refusal a 4xx with a reason, nothing stored partially."""

import base64
import datetime as dt
import gzip
import json
import os
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import ROOT, run_kiosk
from sync import protocol as p
from upstream_helpers import RawDevice, start_upstream, token, upstream_ids


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("upstream") / "upstream.db")
    server = start_upstream(db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def device(upstream):
    dev = RawDevice(upstream.url, "api-device")
    assert dev.enroll(upstream.db).status_code == 200
    return dev


def count(upstream) -> int:
    return len(upstream_ids(upstream.db))


def refused(response, status, reason):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["reason"] == reason, body
    assert isinstance(body["server_time_ms"], int) and body["message"]
    return body


def test_committed_openapi_document_is_what_the_app_produces():
    from sync.upstream.server import create_app

    committed = json.loads((ROOT / "sync" / "upstream" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == create_app(None).openapi(), \
        "sync/upstream/openapi.json is stale: run `kiosk upstream openapi > sync/upstream/openapi.json`"
    assert {"/v1/enroll", "/v1/checkins", "/v1/heartbeat", "/v1/beacon-key", "/v1/time"} <= set(committed["paths"])


def test_server_time(upstream):
    before = time.time_ns() // 1_000_000
    utc = requests.get(upstream.url + p.PATH_TIME, timeout=5).json()["utc_ms"]
    assert before - 1000 <= utc <= time.time_ns() // 1_000_000 + 1000


def test_each_checkin_is_stored_exactly_once(upstream, device):
    items = [device.item() for _ in range(5)]
    first = device.send(p.PATH_CHECKINS, {"checkins": items})
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 5 and {r["status"] for r in first.json()["results"]} == {"stored"}
    # The client retries after a lost answer: the same UUIDs again, plus one new one.
    again = device.send(p.PATH_CHECKINS, {"checkins": items + [device.item()]})
    body = again.json()
    assert (body["stored"], body["duplicates"]) == (1, 5)
    ids = upstream_ids(upstream.db)
    assert len(ids) == len(set(ids))
    assert {i["id"] for i in items} <= set(ids)


def test_rows_that_are_not_the_signers_are_rejected_one_by_one(upstream, device):
    mine, other_device, other_venue = device.item(), device.item(device_id="someone-else"), device.item(venue="ELSEWHERE")
    body = device.send(p.PATH_CHECKINS, {"checkins": [mine, other_device, other_venue]}).json()
    status = {r["id"]: (r["status"], r["reason"]) for r in body["results"]}
    assert status[mine["id"]] == ("stored", None)
    assert status[other_device["id"]] == ("rejected", "device-mismatch")
    assert status[other_venue["id"]] == ("rejected", "venue-mismatch")
    stored = set(upstream_ids(upstream.db))
    assert mine["id"] in stored and other_device["id"] not in stored and other_venue["id"] not in stored


def test_an_id_already_used_by_another_device_is_a_conflict_not_a_duplicate(upstream, device):
    other = RawDevice(upstream.url, "api-device-2")
    assert other.enroll(upstream.db).status_code == 200
    item = device.item()
    device.send(p.PATH_CHECKINS, {"checkins": [item]})
    body = other.send(p.PATH_CHECKINS, {"checkins": [other.item(id=item["id"])]}).json()
    assert body["results"][0] == {"id": item["id"], "status": "rejected", "reason": "id-conflict"}


@pytest.mark.parametrize("case, status, reason", [
    ("missing signature", 401, "missing-signature"),
    ("wrong key", 401, "bad-signature"),
    ("tampered body", 401, "bad-signature"),
    ("tampered path", 401, "bad-signature"),
    ("garbage signature", 401, "bad-signature"),
    ("unknown device", 401, "unknown-device"),
    ("clock hours off", 401, "clock-skew"),
    ("not gzip", 415, "gzip-required"),
    ("malformed gzip", 400, "malformed-gzip"),
    ("truncated gzip", 400, "malformed-gzip"),
    ("malformed json", 400, "malformed-json"),
    ("json not an object", 422, "invalid-field"),
    ("wrong type", 422, "invalid-field"),
    ("string too long", 422, "invalid-field"),
    ("unknown field", 422, "invalid-field"),
    ("bad uuid", 422, "invalid-field"),
    ("too many items", 422, "invalid-field"),
    ("empty batch", 422, "invalid-field"),
    ("oversized body", 413, "body-too-large"),
    ("gzip bomb", 413, "body-too-large"),
])
def test_bad_input_is_refused_with_a_reason_and_nothing_is_stored(upstream, device, case, status, reason):
    good = device.item()
    batch = {"checkins": [good]}
    send = {
        "missing signature": lambda: device.send(p.PATH_CHECKINS, batch, drop=(p.H_SIGNATURE,)),
        "wrong key": lambda: device.send(p.PATH_CHECKINS, batch, key=Ed25519PrivateKey.generate()),
        "tampered body": lambda: requests.post(upstream.url + p.PATH_CHECKINS, data=gzip.compress(b'{"checkins": []}'),
                                               headers=_headers_for(device, gzip.compress(json.dumps(batch).encode())),
                                               timeout=10),
        "tampered path": lambda: requests.post(upstream.url + p.PATH_CHECKINS, data=(b := gzip.compress(json.dumps(batch).encode())),
                                               headers=_headers_for(device, b, path=p.PATH_HEARTBEAT), timeout=10),
        "garbage signature": lambda: device.send(p.PATH_CHECKINS, batch, tamper={p.H_SIGNATURE: "!!not base64!!"}),
        "unknown device": lambda: RawDevice(upstream.url, "never-enrolled").send(p.PATH_CHECKINS, batch),
        "clock hours off": lambda: device.send(p.PATH_CHECKINS, batch, timestamp_ms=time.time_ns() // 1_000_000 - 3 * 3600_000),
        "not gzip": lambda: device.send(p.PATH_CHECKINS, batch, compress=False),
        "malformed gzip": lambda: device.send(p.PATH_CHECKINS, raw=b"\x1f\x8b not really", compress=False,
                                              headers={"Content-Encoding": "gzip"}),
        "truncated gzip": lambda: device.send(p.PATH_CHECKINS, raw=gzip.compress(json.dumps(batch).encode())[:-9],
                                              compress=False, headers={"Content-Encoding": "gzip"}),
        "malformed json": lambda: device.send(p.PATH_CHECKINS, raw=b'{"checkins": [{"id": '),
        "json not an object": lambda: device.send(p.PATH_CHECKINS, [good]),
        "wrong type": lambda: device.send(p.PATH_CHECKINS, {"checkins": [{**good, "utc_ms": str(good["utc_ms"])}]}),
        "string too long": lambda: device.send(p.PATH_CHECKINS, {"checkins": [{**good, "boot_id": "b" * 65}]}),
        "unknown field": lambda: device.send(p.PATH_CHECKINS, {"checkins": [{**good, "name": "Nguyễn Văn A"}]}),
        "bad uuid": lambda: device.send(p.PATH_CHECKINS, {"checkins": [{**good, "id": "not-a-uuid"}]}),
        "too many items": lambda: device.send(p.PATH_CHECKINS, {"checkins": [good] + [device.item() for _ in range(1000)]}),
        "empty batch": lambda: device.send(p.PATH_CHECKINS, {"checkins": []}),
        "oversized body": lambda: device.send(p.PATH_CHECKINS, raw=os.urandom(2 << 20), compress=False,
                                              headers={"Content-Encoding": "gzip"}),
        "gzip bomb": lambda: device.send(p.PATH_CHECKINS, raw=b'{"checkins": [' + b" " * (64 << 20) + b"]}"),
    }[case]
    before = count(upstream)
    body = refused(send(), status, reason)
    if reason == "invalid-field" and case != "json not an object":
        assert body["fields"], body
        assert "Nguyễn" not in json.dumps(body)  # refused input is never echoed back
    assert count(upstream) == before
    assert good["id"] not in upstream_ids(upstream.db)
    # ... and the server keeps serving.
    assert device.send(p.PATH_CHECKINS, {"checkins": [device.item()]}).status_code == 200


def _headers_for(device, body: bytes, path: str = p.PATH_CHECKINS) -> dict:
    headers = p.sign(device.key, "POST", path, device.device_id, body, time.time_ns() // 1_000_000)
    return {**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}


def test_a_replayed_request_is_refused(upstream, device):
    body = gzip.compress(json.dumps({"checkins": [device.item()]}).encode())
    headers = _headers_for(device, body)
    assert requests.post(upstream.url + p.PATH_CHECKINS, data=body, headers=headers, timeout=10).status_code == 200
    refused(requests.post(upstream.url + p.PATH_CHECKINS, data=body, headers=headers, timeout=10), 401, "replay")


def test_revoked_device_is_refused_and_cannot_re_enroll(upstream):
    dev = RawDevice(upstream.url, "to-revoke")
    assert dev.enroll(upstream.db).status_code == 200
    assert dev.send(p.PATH_CHECKINS, {"checkins": [dev.item()]}).status_code == 200
    result = run_kiosk("upstream", "revoke", "--db", upstream.db, "--device", "to-revoke")
    assert result.returncode == 0, result.stderr
    item = dev.item()
    refused(dev.send(p.PATH_CHECKINS, {"checkins": [item]}), 403, "device-revoked")
    assert item["id"] not in upstream_ids(upstream.db)
    refused(dev.enroll(upstream.db), 403, "device-revoked")


def test_enrollment_tokens_are_one_time_per_venue_and_need_the_key_holder(upstream):
    dev = RawDevice(upstream.url, "enroll-me")
    tok = token(upstream.db, "VENUE-7")
    enroll = {"token": tok, "device_id": dev.device_id, "venue_id": "VENUE-7", "public_key": dev.public_key_b64,
              "software_version": "test"}
    refused(dev.send(p.PATH_ENROLL, {**enroll, "venue_id": "VENUE-8"}), 403, "venue-mismatch")
    refused(dev.send(p.PATH_ENROLL, {**enroll, "token": "kt_made-up-token"}), 403, "bad-token")
    # Signed by a key other than the one being registered: no proof of possession.
    refused(dev.send(p.PATH_ENROLL, enroll, key=Ed25519PrivateKey.generate()), 401, "bad-signature")
    assert dev.send(p.PATH_ENROLL, enroll).status_code == 200
    assert dev.send(p.PATH_ENROLL, enroll).status_code == 200  # the same device retrying after a lost answer
    thief = RawDevice(upstream.url, "thief")
    refused(thief.send(p.PATH_ENROLL, {**enroll, "device_id": "thief", "public_key": thief.public_key_b64}),
            403, "token-used")
    refused(thief.send(p.PATH_CHECKINS, {"checkins": [thief.item()]}), 401, "unknown-device")


def test_heartbeat_and_beacon_key_reach_the_fleet_view(upstream, device):
    heartbeat = {"software_version": "9.9", "sent_utc_ms": time.time_ns() // 1_000_000, "queue_depth": 3,
                 "oldest_unsent_age_s": 12.5, "clock_offset_ms": -250, "clock_synced": True, "disk_free_bytes": 10**9,
                 "nearby_phones": 4, "components": {"camera": {"state": "ok", "detail": {"fps": 15.0}}}}
    assert device.send(p.PATH_HEARTBEAT, heartbeat).status_code == 200
    refused(device.send(p.PATH_HEARTBEAT, {**heartbeat, "queue_depth": -1}), 422, "invalid-field")
    key = {"base_key": "4C5224B397F8AB3896781D5AA0F3119F280513F1B592CA280EBDED6357E21084", "key_day": "2020-08-08"}
    assert device.send(p.PATH_BEACON_KEY, key).json()["registered"] is True
    assert device.send(p.PATH_BEACON_KEY, key).json()["registered"] is False
    refused(device.send(p.PATH_BEACON_KEY, {**key, "base_key": "zz"}), 422, "invalid-field")
    # The authority publishes a venue exposure: F0 entries from the registered key, as phones expect them.
    from beacon.register import f0_entries

    window = ["--venue", "VENUE-1", "--from", "2020-08-08T06:00:00Z", "--to", "2020-08-09T01:00:00Z"]
    exposure = json.loads(run_kiosk("upstream", "exposure", "--db", upstream.db, *window).stdout)
    assert exposure["devices"] == [device.device_id]
    assert exposure["f0"] == f0_entries(bytes.fromhex(key["base_key"]), dt.date(2020, 8, 8),
                                        1596866400000, 1596934800000)
    assert len(exposure["f0"]) == 2 and exposure["f0"][0]["time_start"] == 1596844800
    fleet = json.loads(run_kiosk("upstream", "fleet", "--db", upstream.db).stdout)
    mine = next(d for d in fleet["devices"] if d["device_id"] == device.device_id)
    assert mine["heartbeat"]["queue_depth"] == 3 and mine["heartbeat"]["nearby_phones"] == 4
    assert mine["silent"] is False
    assert "api-device-2" in fleet["silent"]  # enrolled, never sent a heartbeat


def test_operator_views_need_an_operator_token(upstream, device):
    start = time.time_ns() // 1_000_000
    item = device.item(utc_ms=start + 5)
    device.send(p.PATH_CHECKINS, {"checkins": [item]})
    url = f"{upstream.url}/v1/admin/trace?venue_id=VENUE-1&start_ms={start}&end_ms={start + 10}"
    refused(requests.get(url, timeout=10), 401, "operator-token-required")
    refused(requests.get(url, headers={"Authorization": "Bearer ko_wrong"}, timeout=10), 403, "bad-operator-token")
    refused(requests.get(url, headers={"Authorization": f"Bearer {token(upstream.db)}"}, timeout=10),
            403, "bad-operator-token")  # an enrollment token is not an operator token
    operator = run_kiosk("upstream", "token", "--db", upstream.db, "--operator").stdout.strip()
    auth = {"Authorization": f"Bearer {operator}"}
    trace = requests.get(url, headers=auth, timeout=10).json()
    assert [c["id"] for c in trace["checkins"]] == [item["id"]]
    stats = requests.get(upstream.url + "/v1/admin/stats", headers=auth, timeout=10).json()
    assert stats["total"] == stats["distinct"] == count(upstream)
    fleet = requests.get(upstream.url + "/v1/admin/fleet?silent_after_s=3600", headers=auth, timeout=10).json()
    assert device.device_id in {d["device_id"] for d in fleet["devices"]}
    refused(requests.get(upstream.url + "/v1/admin/trace?venue_id=V&start_ms=x&end_ms=1", headers=auth, timeout=10),
            422, "invalid-field")
    exposure = requests.get(f"{upstream.url}/v1/admin/exposure?venue_id=VENUE-1&start_ms=1596866400000"
                            "&end_ms=1596934800000", headers=auth, timeout=10).json()
    assert [e["time_start"] for e in exposure["f0"]] == [1596844800, 1596931200]


def test_trace_and_authority_export_unseal_only_with_the_authority_key(upstream, device, tmp_path):
    from nacl.public import PrivateKey

    from kiosk.core.privacy import seal_subject

    authority = PrivateKey.generate()
    (tmp_path / "authority.key").write_text(base64.b64encode(bytes(authority)).decode() + "\n")
    (tmp_path / "wrong.key").write_bytes(bytes(PrivateKey.generate()))
    t0 = 1_700_000_000_000
    inside = [device.item(venue="VENUE-1", utc_ms=t0 + i * 60_000,
                          sealed_subject=base64.b64encode(seal_subject(f"0790000000{i:02d}|Trần Thị {i}",
                                                                       bytes(authority.public_key))).decode())
              for i in range(3)]
    outside = device.item(venue="VENUE-1", utc_ms=t0 + 3 * 3600_000)
    assert device.send(p.PATH_CHECKINS, {"checkins": inside + [outside]}).json()["stored"] == 4
    window = ["--venue", "VENUE-1", "--from", "2023-11-14T22:13:20Z", "--to", str(t0 + 3_600_000)]
    trace = json.loads(run_kiosk("upstream", "trace", "--db", upstream.db, *window).stdout)
    assert [c["id"] for c in trace["checkins"]] == [i["id"] for i in inside]
    assert "Trần" not in json.dumps(trace)  # the trace carries sealed identities only
    export = run_kiosk("upstream", "export", "--db", upstream.db, *window, "--authority-key", str(tmp_path / "authority.key"))
    assert export.returncode == 0, export.stderr
    rows = json.loads(export.stdout)["checkins"]
    assert [r["subject"] for r in rows] == [f"0790000000{i:02d}|Trần Thị {i}" for i in range(3)]
    wrong = run_kiosk("upstream", "export", "--db", upstream.db, *window, "--authority-key", str(tmp_path / "wrong.key"))
    assert wrong.returncode == 1 and "wrong authority key" in wrong.stderr and "Trần" not in wrong.stdout


@pytest.mark.system
def test_serve_refuses_a_bad_listen_address(tmp_path):
    result = run_kiosk("upstream", "serve", "--db", str(tmp_path / "u.db"), "--listen", "nowhere")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr


def test_retention_on_sqlite_deletes_check_ins_scanned_before_the_kept_days(tmp_path):
    """`kiosk upstream retention` (daily, by kiosk-upstream-retention.timer) on the single-process SQLite
    upstream: rows scanned more than --keep-days UTC days ago go, the rest stay."""
    from sync.upstream.storage import Device, Storage

    db = tmp_path / "upstream.db"
    storage = Storage(str(db))
    dev = RawDevice("http://unused", "retention-device")
    storage.enroll(storage.create_token("enroll", "VENUE-1"), dev.device_id, "VENUE-1", b"k" * 32, "test")
    device = Device(dev.device_id, "VENUE-1", b"k" * 32, None)
    today = dt.datetime.now(dt.timezone.utc).date()
    midnight_ms = (today - dt.date(1970, 1, 1)).days * 86_400_000
    day = 86_400_000
    old = [dev.item(utc_ms=midnight_ms - 21 * day - 1), dev.item(utc_ms=midnight_ms - 400 * day)]
    kept = [dev.item(utc_ms=midnight_ms - 21 * day), dev.item(utc_ms=midnight_ms + 3600_000)]
    assert {r["status"] for r in storage.store_checkins(device, old + kept)} == {"stored"}
    storage.close()

    result = run_kiosk("upstream", "retention", "--db", str(db), "--keep-days", "21")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"deleted": 2, "kept_from_ms": midnight_ms - 21 * day}
    assert sorted(upstream_ids(str(db))) == sorted(i["id"] for i in kept)
    again = run_kiosk("upstream", "retention", "--db", str(db), "--keep-days", "21")
    assert json.loads(again.stdout)["deleted"] == 0
    refused = run_kiosk("upstream", "retention", "--db", str(db), "--keep-days", "0")
    assert refused.returncode == 2 and "--keep-days must be at least 1" in refused.stderr
