"""The device's HTTP side: signed, gzip-compressed requests with explicit timeouts and verified TLS.

requests has no default timeout and urllib3 does not retry POSTs, so every call here has a
(connect, read) timeout and no hidden retry: the uploader decides about retries itself. Redirects
are not followed (a redirect could lead a signed upload to another host) and proxy variables from
the environment are ignored, so where check-ins go is decided by the config alone.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from requests.adapters import HTTPAdapter

from kiosk.core.urls import check_upstream_url
from sync import protocol as p


class Unreachable(Exception):
    """No HTTP answer: refused, reset, timed out, or the TLS certificate did not verify."""


class BadReply(Exception):
    """An HTTP answer where only a success would do (e.g. GET /v1/time answered 503)."""

    def __init__(self, reply: "Reply"):
        super().__init__(f"HTTP {reply.status} {reply.reason}")
        self.reply = reply


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    retry_after_s: float | None

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or f"http-{self.status}")

    @property
    def message(self) -> str:
        return str(self.body.get("message") or "")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamSession:
    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, ca_bundle: str = "",
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0):
        self.base_url = check_upstream_url(base_url)
        self.device_id = device_id
        self.key = key
        self.verify: bool | str = ca_bundle or True  # never False: TLS is always verified
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.offset_ms = 0
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=2)  # two batches on the wire
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def now_ms(self) -> int:
        """Local wall clock corrected by the offset measured against the upstream."""
        return time.time_ns() // 1_000_000 + self.offset_ms

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.base_url + path, timeout=self.timeout, verify=self.verify,
                                        allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"TLS verification failed: {_short(exc)}") from None
        except requests.exceptions.Timeout:
            raise Unreachable("timed out") from None
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"{type(exc).__name__}: {_short(exc)}") from None
        except OSError as exc:  # e.g. a CA bundle file that cannot be read
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None

    def sync_clock(self) -> int:
        """Measure the offset to the upstream's clock (midpoint of the round trip) and keep it."""
        before = time.time_ns() // 1_000_000
        response = self._send("GET", p.PATH_TIME)
        after = time.time_ns() // 1_000_000
        reply = self._reply(response)
        if reply.status != 200 or not isinstance(reply.body.get("utc_ms"), int):
            raise BadReply(reply)
        self.offset_ms = reply.body["utc_ms"] - (before + after) // 2
        return self.offset_ms

    def post(self, path: str, payload: Any) -> Reply:
        return self.post_json(path, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    def post_json(self, path: str, document: bytes) -> Reply:
        """POST an already encoded JSON document: signed, gzip-compressed."""
        return self.post_gzip(path, p.compress(document))

    def post_gzip(self, path: str, body: bytes) -> Reply:
        """POST a gzip-compressed JSON document, signed now."""
        headers = p.sign(self.key, "POST", path, self.device_id, body, self.now_ms())
        headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        return self._reply(self._send("POST", path, data=body, headers=headers))

    @staticmethod
    def _reply(response: requests.Response) -> Reply:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return Reply(response.status_code, body, parse_retry_after(response.headers.get("Retry-After")))


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
