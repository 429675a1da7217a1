"""The device's upstream identity: its Ed25519 key and what it enrolled as, kept in the state directory.

The private key never leaves the device (0600, written atomically); the upstream only ever sees
the public half, registered once with a one-time enrollment token.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from kiosk.privacy import write_private_file

KEY_FILE = "sync-device.key"
ENROLLMENT_FILE = "sync-enrollment.json"


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    venue_id: str
    upstream_url: str
    public_key: str  # base64, for the operator to compare with the upstream's record
    enrolled_ms: int


def load_or_create_key(state_dir: Path) -> Ed25519PrivateKey:
    path = state_dir / KEY_FILE
    try:
        raw = path.read_bytes()
        if len(raw) == 32:
            return Ed25519PrivateKey.from_private_bytes(raw)
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    write_private_file(path, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    return key


def load_key(state_dir: Path) -> Ed25519PrivateKey | None:
    try:
        raw = (state_dir / KEY_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return Ed25519PrivateKey.from_private_bytes(raw) if len(raw) == 32 else None


def save_enrollment(state_dir: Path, enrollment: Enrollment) -> None:
    write_private_file(state_dir / ENROLLMENT_FILE, (json.dumps(asdict(enrollment), indent=2) + "\n").encode())


def load_enrollment(state_dir: Path) -> Enrollment | None:
    try:
        data = json.loads((state_dir / ENROLLMENT_FILE).read_text(encoding="utf-8"))
        return Enrollment(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
