"""The wire rules both sides share: paths, signed headers, compression, limits, error reasons.

Every device request carries an Ed25519 signature over one canonical text: method, path (with the
query string), timestamp, nonce, device id and the SHA-256 of the body *as sent* (gzip bytes). The
server can therefore reject a forged or replayed request before it decompresses anything, which is
what keeps a gzip bomb from an unauthenticated sender harmless.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import TYPE_CHECKING, Any

from kiosk.core.frozen import Frozen, frozen


if TYPE_CHECKING:  # cryptography is loaded by the first signature, not by every command that imports this
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

API = "/v1"
PATH_TIME = f"{API}/time"
PATH_ENROLL = f"{API}/enroll"
PATH_CHECKINS = f"{API}/checkins"
PATH_HEARTBEAT = f"{API}/heartbeat"
PATH_BEACON_KEY = f"{API}/beacon-key"

H_DEVICE = "X-Kiosk-Device"
H_TIMESTAMP = "X-Kiosk-Timestamp"
H_NONCE = "X-Kiosk-Nonce"
H_DIGEST = "X-Kiosk-Content-SHA256"
H_SIGNATURE = "X-Kiosk-Signature"
SIGNED_HEADERS = (H_DEVICE, H_TIMESTAMP, H_NONCE, H_DIGEST, H_SIGNATURE)

SIGNATURE_DOMAIN = "KIOSK-SYNC-V1"

# Defaults of the reference upstream; the client keeps its batches well below them.
MAX_BODY_BYTES = 1 << 20         # gzip bytes on the wire
MAX_JSON_BYTES = 8 << 20         # after decompression (a gzip bomb stops here)
MAX_BATCH_ITEMS = 1000
CLOCK_WINDOW_MS = 5 * 60 * 1000  # a signed request older or newer than this is refused

# Machine-readable reasons in every 4xx/5xx body: {"reason": ..., "message": ..., "server_time_ms": ...}
REASONS_AUTH = frozenset({"missing-signature", "bad-signature", "unknown-device", "device-revoked",
                          "clock-skew", "replay"})
REASONS_CONTENT = frozenset({"malformed-gzip", "malformed-json", "gzip-required", "body-too-large",
                             "invalid-field"})
REASONS_ENROLL = frozenset({"bad-token", "token-used", "token-expired", "venue-mismatch", "device-revoked"})


class ProtocolError(Exception):
    """A request the protocol refuses; ``status`` and ``reason`` go into the 4xx answer."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@frozen
class SignedRequest(Frozen):
    """The fields one request's signature covers, in the order they are signed."""

    method: str
    target: str  # path plus "?query" when there is one
    timestamp_ms: int
    nonce: str
    device_id: str
    body_sha256: str

    def canonical(self) -> bytes:
        return "\n".join([SIGNATURE_DOMAIN, self.method.upper(), self.target, str(self.timestamp_ms),
                          self.nonce, self.device_id, self.body_sha256]).encode("utf-8")


def new_nonce() -> str:
    import secrets  # here, as hashlib and gzip below: `kiosk status` reads enrollment through this module

    return secrets.token_hex(16)


def body_digest(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def sign(key: Ed25519PrivateKey, method: str, target: str, device_id: str, body: bytes, timestamp_ms: int,
         nonce: str | None = None) -> dict[str, str]:
    """The five headers that authenticate one request."""
    req = SignedRequest(method, target, timestamp_ms, nonce or new_nonce(), device_id, body_digest(body))
    signature = key.sign(req.canonical())
    return {H_DEVICE: device_id, H_TIMESTAMP: str(timestamp_ms), H_NONCE: req.nonce,
            H_DIGEST: req.body_sha256, H_SIGNATURE: base64.b64encode(signature).decode("ascii")}


def parse_signed_headers(method: str, target: str, headers: Any, body: bytes) -> tuple[SignedRequest, bytes]:
    """Check the headers are present and well formed and that the digest matches the body.

    Returns the request to verify and the raw signature; raises ProtocolError (401) otherwise.
    """
    values = {h: headers.get(h) for h in SIGNED_HEADERS}
    missing = [h for h, v in values.items() if not v]
    if missing:
        raise ProtocolError(401, "missing-signature", "missing header(s): " + ", ".join(missing))
    device_id, nonce = values[H_DEVICE], values[H_NONCE]
    if not (1 <= len(device_id) <= 64) or not all(c.isalnum() or c in "._-" for c in device_id) or not device_id.isascii():
        raise ProtocolError(401, "bad-signature", f"{H_DEVICE} is not a device id")
    if not (16 <= len(nonce) <= 64 and all(c in "0123456789abcdef" for c in nonce)):
        raise ProtocolError(401, "bad-signature", f"{H_NONCE} must be 16 to 64 lower-case hex digits")
    try:
        timestamp = int(values[H_TIMESTAMP])
        signature = base64.b64decode(values[H_SIGNATURE], validate=True)
    except (ValueError, TypeError):
        raise ProtocolError(401, "bad-signature", "timestamp or signature is not well formed") from None
    if len(signature) != 64:
        raise ProtocolError(401, "bad-signature", "an Ed25519 signature is 64 bytes")
    if values[H_DIGEST].lower() != body_digest(body):
        raise ProtocolError(401, "bad-signature", f"{H_DIGEST} does not match the body")
    return SignedRequest(method, target, timestamp, nonce, device_id, body_digest(body)), signature


def verify(public_key: bytes, request: SignedRequest, signature: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, request.canonical())
    except (InvalidSignature, ValueError):
        raise ProtocolError(401, "bad-signature", "signature does not verify with the enrolled key") from None


def compress(body: bytes) -> bytes:
    """gzip level 1: a check-in batch shrinks 2.5-fold (hashes and sealed identities do not compress),
    level 6 saves only 5% more for 40% more CPU, and the CPU is the scarcer resource on a Pi."""
    import gzip

    return gzip.compress(body, compresslevel=1, mtime=0)


def gzip_json(obj: Any) -> bytes:
    return compress(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress one gzip member, refusing more than ``limit`` output bytes (gzip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit:
            raise ProtocolError(413, "body-too-large", f"body decompresses to more than {limit} bytes")
        if not inflater.eof or inflater.unused_data:
            raise ProtocolError(400, "malformed-gzip", "body is not exactly one complete gzip stream")
    except zlib.error as exc:
        raise ProtocolError(400, "malformed-gzip", f"body is not gzip data ({exc})") from None
    return out


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
