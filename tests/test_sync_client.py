"""The uploader against a real upstream: outbox states, dead letters, batch caps, waking on a commit,
Retry-After, TLS verification, enrollment rules, status for the screen."""

import datetime as dt
import gzip
import ipaddress
import json
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ROOT, kiosk_env, run_kiosk, wait_until
from faultproxy import FaultProxy
from kiosk.core.config import ConfigError, load_config
from kiosk.core.store import Store
from sync.backlog import seed_backlog
from upstream_helpers import provision, start_upstream, token, upstream_ids, write_device_config

FAST = dict(connect_timeout_s=2.0, read_timeout_s=5.0, backoff_base_s=0.05, backoff_cap_s=0.2, wake_check_s=0.05)


@pytest.fixture
def upstream(tmp_path):
    server = start_upstream(str(tmp_path / "upstream.db"))
    yield server
    server.stop()


def device(tmp_path, upstream, url=None, **sync):
    config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", **{**FAST, **sync})
    provision(config, upstream, url=url)
    return config


def sync_once(config, *extra):
    return run_kiosk("--config", str(config), "--log-level", "DEBUG", "sync", "--once", *extra)


def outbox(config):
    store = Store.open(load_config(config).state_dir)
    try:
        return store.outbox_counts(), dict(store.db.execute("SELECT checkin_id, last_error FROM outbox WHERE state = 'dead'"
                                                            ).fetchall()), store.statuses().get("sync")
    finally:
        store.close()


def seed(config, count, **row):
    store = Store.open(load_config(config).state_dir)
    try:
        return seed_backlog(store, count, row.get("venue", "VENUE-1"), row.get("device", "test-device"))
    finally:
        store.close()


def test_once_sends_the_queue_and_leaves_nothing_in_flight(tmp_path, upstream):
    config = device(tmp_path, upstream)
    ids = seed(config, 250)
    store = Store.open(tmp_path / "state")
    store.db.execute("UPDATE outbox SET state = 'inflight' WHERE checkin_id IN (SELECT checkin_id FROM outbox LIMIT 40)")
    store.close()  # as if an uploader had died mid-batch
    result = sync_once(config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sent"] == 250
    assert "were in flight" in result.stderr
    counts, _, status = outbox(config)
    assert counts == {"pending": 0, "inflight": 0, "acked": 250, "dead": 0}
    assert sorted(upstream_ids(upstream.db)) == sorted(ids)
    assert status["state"] == "online" and status["detail"]["queue_depth"] == 0 and status["detail"]["last_success_ms"]


def test_rows_the_upstream_refuses_for_good_become_dead_letters_with_its_reason(tmp_path, upstream):
    config = device(tmp_path, upstream, batch_max_items=16)
    good = seed(config, 40)
    store = Store.open(tmp_path / "state")
    malformed = seed_backlog(store, 2, "VENUE-1", "test-device")
    store.db.execute("UPDATE checkins SET kind = 'NOT A KIND' WHERE id IN (?, ?)", malformed)  # fails the schema: 422
    foreign = seed_backlog(store, 1, "VENUE-1", "someone-else")  # valid shape, but not this device's row
    store.close()
    result = sync_once(config)
    assert result.returncode == 0, result.stderr
    counts, dead, _ = outbox(config)
    assert counts == {"pending": 0, "inflight": 0, "acked": 40, "dead": 3}
    assert all(dead[i].startswith("invalid-field") for i in malformed)
    assert dead[foreign[0]] == "rejected: device-mismatch"
    assert sorted(upstream_ids(upstream.db)) == sorted(good)  # the bad batches were split, the good rows all went


def test_batches_are_capped_by_count_and_by_bytes(tmp_path, upstream):
    proxy = FaultProxy(int(upstream.url.rsplit(":", 1)[1])).start()
    try:
        config = device(tmp_path, upstream, url=proxy.url, batch_max_items=40, batch_max_bytes=8192)
        seed(config, 300)
        assert sync_once(config).returncode == 0
    finally:
        proxy.stop()
    batches = [json.loads(gzip.decompress(body))["checkins"] for path, body in proxy.stats.bodies if path == "/v1/checkins"]
    assert sum(len(b) for b in batches) == 300
    sizes = [sum(len(json.dumps(i, separators=(",", ":"))) + 1 for i in b) for b in batches]
    assert max(len(b) for b in batches) <= 40 and max(sizes) <= 8192
    assert min(len(b) for b in batches[:-1]) < 40  # the byte cap, not the count, ended these batches


def test_a_committed_checkin_wakes_the_uploader_without_waiting_for_the_poll(tmp_path, upstream):
    config = device(tmp_path, upstream, poll_interval_s=3600.0, heartbeat_interval_s=3600.0)
    client = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "sync"], env=kiosk_env(),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (outbox(config)[2] or {}).get("state") == "online", 20)
        time.sleep(0.5)  # now idle, with an hour until its next poll
        checkin = run_kiosk("--config", str(config), "checkin", "--payload", "DEMO-HQR-00000000C0DE")
        assert checkin.returncode == 0, checkin.stderr
        wait_until(lambda: checkin.stdout.strip() in upstream_ids(upstream.db), 20)
    finally:
        client.terminate()
        assert client.wait(20) == 0, client.stderr.read()


def test_retry_after_is_honoured(tmp_path, upstream):
    proxy = FaultProxy(int(upstream.url.rsplit(":", 1)[1]), retry_after_s=2).start()
    try:
        config = device(tmp_path, upstream, url=proxy.url)
        ids = seed(config, 5)
        proxy.set_faults({"http503": 0.999})
        client = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "sync"], env=kiosk_env(),
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: proxy.stats.modes["http503"] >= 3, 30)
            proxy.set_faults({})
            wait_until(lambda: set(ids) <= set(upstream_ids(upstream.db)), 20)
        finally:
            client.terminate()
            client.wait(20)
    finally:
        proxy.stop()
    refused = [t for t, _, mode in proxy.stats.arrivals if mode == "http503"]
    gaps = [b - a for a, b in zip(refused, refused[1:])]
    assert gaps and min(gaps) >= 1.9, gaps  # backoff alone (cap 0.2 s) would have retried at once


def test_sync_now_on_the_screen_ends_a_long_wait(tmp_path, upstream):
    proxy = FaultProxy(int(upstream.url.rsplit(":", 1)[1]), retry_after_s=600).start()
    try:
        config = device(tmp_path, upstream, url=proxy.url)
        ids = seed(config, 5)
        proxy.set_faults({"http503": 0.999})  # "come back in ten minutes"
        client = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(config), "sync"], env=kiosk_env(),
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: proxy.stats.modes["http503"] >= 1 and (outbox(config)[2] or {}).get("state") == "offline", 20)
            proxy.set_faults({})
            time.sleep(1.5)
            assert set(ids).isdisjoint(upstream_ids(upstream.db))  # still waiting as told
            (tmp_path / "state" / "sync-now").write_text("1\n")  # what the maintenance screen's button does
            wait_until(lambda: set(ids) <= set(upstream_ids(upstream.db)), 20)
        finally:
            client.terminate()
            client.wait(20)
    finally:
        proxy.stop()


def test_not_enrolled_revoked_and_second_instance(tmp_path, upstream):
    config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", **FAST)
    result = sync_once(config)
    assert result.returncode == 2 and "kiosk provision" in result.stderr
    provision(config, upstream)
    seed(config, 3)
    lock = open(tmp_path / "state" / "sync.lock", "a")
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    assert "another `kiosk sync` is running" in sync_once(config).stderr
    lock.close()
    assert run_kiosk("upstream", "revoke", "--db", upstream.db, "--device", "test-device").returncode == 0
    result = sync_once(config)
    assert result.returncode == 1
    counts, _, status = outbox(config)
    assert counts["pending"] == 3 and counts["dead"] == 0  # not the rows' fault: kept for when it is sorted out
    assert status["state"] == "revoked" and "device-revoked" in status["detail"]["last_error"]
    report = run_kiosk("--config", str(config), "status")
    assert report.returncode == 1 and "ATTENTION: sync: this kiosk was revoked by the health authority" in report.stdout


def test_plain_http_only_to_loopback(tmp_path, upstream):
    config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state")
    result = run_kiosk("--config", str(config), "provision", "--upstream", "http://192.0.2.10:8443",
                       "--token", "kt_whatever", "--venue", "VENUE-1")
    assert result.returncode == 2 and "plain http is allowed only to a loopback" in result.stderr
    assert not (tmp_path / "state" / "sync-enrollment.json").exists()
    (tmp_path / "bad.toml").write_text('[sync]\nupstream_url = "http://example.org/"\n')
    with pytest.raises(ConfigError, match="sync.upstream_url"):
        load_config(tmp_path / "bad.toml")
    provision(config, upstream, url=upstream.url.replace("127.0.0.1", "localhost"))


def _tls_files(tmp_path):
    """A CA and a certificate for 127.0.0.1 signed by it, like an operator's private PKI."""
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("kiosk test CA")).issuer_name(name("kiosk test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2)).add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("upstream")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "other-ca.pem").write_bytes(
        x509.CertificateBuilder().subject_name(name("someone else")).issuer_name(name("someone else"))
        .public_key(other.public_key()).serial_number(3).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2)).sign(other, hashes.SHA256()).public_bytes(pem))


def test_tls_is_always_verified_against_the_configured_ca(tmp_path):
    _tls_files(tmp_path)
    db = str(tmp_path / "upstream.db")
    server = start_upstream(db, "127.0.0.1:0", "--tls-cert", str(tmp_path / "cert.pem"),
                            "--tls-key", str(tmp_path / "key.pem"))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        config = write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", **FAST)
        args = ["--config", str(config), "provision", "--upstream", server.url, "--venue", "VENUE-1"]
        untrusted = run_kiosk(*args, "--token", token(db), "--ca-bundle", str(tmp_path / "other-ca.pem"))
        assert untrusted.returncode == 75 and "TLS verification failed" in untrusted.stderr  # saved, retried
        system_cas = run_kiosk(*args, "--token", token(db))
        assert system_cas.returncode == 75 and "TLS verification failed" in system_cas.stderr
        trusted = run_kiosk(*args, "--token", token(db), "--ca-bundle", str(tmp_path / "ca.pem"))
        assert trusted.returncode == 0, trusted.stderr
        ids = seed(config, 20)
        assert sync_once(config).returncode == 0
        assert sorted(upstream_ids(db)) == sorted(ids)
        # The certificate changes to one the device does not trust: nothing is sent, nothing is lost.
        more = seed(config, 5)
        with open(config, "a") as fh:
            fh.write(f'ca_bundle = "{tmp_path / "other-ca.pem"}"\n')
        (tmp_path / "state" / "settings.toml").write_text(
            (tmp_path / "state" / "settings.toml").read_text().replace(str(tmp_path / "ca.pem"), str(tmp_path / "other-ca.pem")))
        result = sync_once(config)
        assert result.returncode == 1
        counts, _, status = outbox(config)
        assert counts["pending"] == 5 and "TLS verification failed" in status["detail"]["last_error"]
        assert set(more).isdisjoint(upstream_ids(db))
    finally:
        server.stop()


def test_heartbeat_and_beacon_key_from_the_device(tmp_path, upstream):
    from sync.client import Uploader

    config = device(tmp_path, upstream)
    seed(config, 2)
    store = Store.open(tmp_path / "state")
    store.set_status("camera", "ok", {"backend": "synthetic", "fps": 14.8, "frames": [1, 2]})
    store.set_status("nearby", "ok", {"phones": 7, "window_s": 300})
    uploader = Uploader(load_config(config), store=store, beacon_record=lambda: {
        "scheme": "bluezone", "base_key": "4C5224B397F8AB3896781D5AA0F3119F280513F1B592CA280EBDED6357E21084",
        "created_day": "2020-08-08", "time": 1596844800, "slots_per_day": 96})
    pings = []
    try:
        result = uploader.run(threading.Event(), once=True, alive=lambda: pings.append(1))
    finally:
        uploader.close()
    assert result.sent == 2 and result.remaining == 0
    assert pings  # the watchdog hook was called while the loop did its work
    fleet = json.loads(run_kiosk("upstream", "fleet", "--db", upstream.db).stdout)
    heartbeat = fleet["devices"][0]["heartbeat"]
    assert heartbeat["nearby_phones"] == 7 and heartbeat["queue_depth"] == 0
    assert heartbeat["components"]["camera"] == {"state": "ok", "detail": {"backend": "synthetic", "fps": 14.8}}
    assert heartbeat["disk_free_bytes"] > 0 and heartbeat["software_version"]
    from sync.upstream.storage import Storage

    keys = Storage(upstream.db).beacon_keys("VENUE-1")
    assert keys == [{"device_id": "test-device", "key_day": "2020-08-08",
                     "base_key": "4c5224b397f8ab3896781d5aa0f3119f280513f1b592ca280ebded6357e21084"}]


def test_enrollment_says_unreachable_when_the_upstream_is_in_trouble(tmp_path, upstream):
    """5xx or no answer keeps the enrollment saved for later (PENDING); a refusal drops it, with its reason."""
    from sync.enroll import INTENT_FILE, provision as enroll

    config = load_config(write_device_config(tmp_path / "kiosk.toml", tmp_path / "state", **FAST))
    proxy = FaultProxy(int(upstream.url.rsplit(":", 1)[1]), {"http503": 0.999}).start()
    try:
        assert enroll(config, proxy.url, token(upstream.db), "VENUE-1")[0] == "pending"
    finally:
        proxy.stop()
    assert (tmp_path / "state" / INTENT_FILE).exists()
    state, why = enroll(config, "http://127.0.0.1:9", token(upstream.db), "VENUE-1")  # nothing listens on port 9
    assert state == "pending" and "ConnectionError" in why
    state, why = enroll(config, upstream.url, "kt_not-issued-here", "VENUE-1")
    assert state == "refused" and why.startswith("bad-token")
    assert not (tmp_path / "state" / INTENT_FILE).exists()
    assert not (tmp_path / "state" / "sync-enrollment.json").exists()
    assert enroll(config, upstream.url, token(upstream.db), "VENUE-1") == ("enrolled", "")
    assert (tmp_path / "state" / "sync-enrollment.json").exists()
