"""Helpers for the sync tests: a real upstream process on loopback, provisioned devices, a raw signer."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import ROOT, kiosk_env, run_kiosk
from kiosk.core.privacy import new_sealing_keypair
from sync import protocol as p
from sync.upstream.pgtemp import PostgresServer, free_port  # noqa: F401  (the fleet benchmark starts one too; re-exported for the tests)


AUTHORITY_KEYS = new_sealing_keypair()  # (private, public) of the health authority, for these tests


@dataclass
class Upstream:
    process: subprocess.Popen
    url: str
    db: str

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None


def start_upstream(db: str, listen: str = "127.0.0.1:0", *extra: str, log: Any = None) -> Upstream:
    """``kiosk upstream serve`` as a subprocess; returns once it announced its address.

    Its log (one audit line per refusal) goes to ``log``, an open file, or to an anonymous one: a
    pipe nobody reads would fill up and stall the server."""
    log = log or tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "upstream", "serve", "--db", db, "--listen", listen, *extra],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=kiosk_env(), cwd=ROOT)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        log.seek(0)
        raise RuntimeError(f"upstream did not start: {line} {log.read()}")
    url = line.split()[4]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with warnings.catch_warnings():  # readiness only: TLS is verified by the tests that are about it
                warnings.simplefilter("ignore")
                requests.get(url + p.PATH_TIME, timeout=1, verify=False)
            return Upstream(proc, url, db)
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("upstream did not answer")


def token(db: str, venue: str = "VENUE-1") -> str:
    result = run_kiosk("upstream", "token", "--db", db, "--venue", venue)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def write_device_config(path: Path, state_dir: Path, **sync: Any) -> Path:
    """A device config with the test pattern and the given [sync] settings."""
    lines = [f'[device]\nid = "test-device"\nstate_dir = "{state_dir}"\n', "[clock]\nassume_synced = true\n",
             f'[privacy]\nauthority_public_key = "{base64.b64encode(AUTHORITY_KEYS[1]).decode()}"\n',
             "[[formats.personal]]\nname = \"demo-health-qr\"\npattern = 'DEMO-HQR-[0-9A-F]{12}'\n"]
    if sync:
        lines.append("[sync]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in sync.items()))
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def provision(config_file: Path, upstream: Upstream, venue: str = "VENUE-1", url: str | None = None) -> None:
    result = run_kiosk("--config", str(config_file), "provision", "--upstream", url or upstream.url,
                       "--token", token(upstream.db, venue), "--venue", venue)
    assert result.returncode == 0, result.stderr


def upstream_ids(db: str) -> list[str]:
    """Every stored check-in id, with repeats if any were stored twice (they must not be)."""
    from sync.upstream.engines import open_storage

    storage = open_storage(db)
    try:
        return [r["id"] for r in storage._query("SELECT id FROM checkins")]
    finally:
        storage.close()


class RawDevice:
    """A device key and a signer that can also break the rules on purpose."""

    def __init__(self, url: str, device_id: str = "raw-device"):
        self.url = url
        self.device_id = device_id
        self.key = Ed25519PrivateKey.generate()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(p.public_key_bytes(self.key)).decode()

    def enroll(self, db: str, venue: str = "VENUE-1") -> requests.Response:
        return self.send(p.PATH_ENROLL, {"token": token(db, venue), "device_id": self.device_id, "venue_id": venue,
                                         "public_key": self.public_key_b64, "software_version": "test"})

    def send(self, path: str, obj: Any = None, *, raw: bytes | None = None, compress: bool = True,
             timestamp_ms: int | None = None, nonce: str | None = None, key: Ed25519PrivateKey | None = None,
             device_id: str | None = None, drop: tuple[str, ...] = (), tamper: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        if raw is None:
            raw = json.dumps(obj).encode()
        body = gzip.compress(raw) if compress else raw
        signed = p.sign(key or self.key, "POST", path, device_id or self.device_id, body,
                        timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000, nonce)
        signed.update(tamper or {})
        for name in drop:
            signed.pop(name, None)
        signed.update({"Content-Type": "application/json", **({"Content-Encoding": "gzip"} if compress else {})})
        signed.update(headers or {})
        return requests.post(self.url + path, data=body, headers=signed, timeout=30)

    def item(self, venue: str = "VENUE-1", **override: Any) -> dict[str, Any]:
        item = {"id": str(uuid.uuid4()), "venue_id": venue, "device_id": self.device_id, "direction": "entry",
                "utc_ms": time.time_ns() // 1_000_000, "monotonic_ns": time.monotonic_ns(),
                "boot_id": "b0e5d1a2-0000-4000-8000-000000000001", "clock_synced": True, "kind": "personal",
                "visitor_ref": os.urandom(32).hex(), "sealed_subject": None}
        item.update(override)
        return item


