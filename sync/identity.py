"""The device's upstream identity: its Ed25519 key and what it enrolled as, kept in the state directory.

The private key never leaves the device (0600, written atomically); the upstream only ever sees
the public half, registered once with a one-time enrollment token.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.core.frozen import Frozen, frozen
from kiosk.core.privacy import write_private_file
from kiosk.core.statefiles import exact_size, parse_json_object, private_dir, read_state_file

if TYPE_CHECKING:  # cryptography is loaded only when a key is used: `kiosk status` reads the enrollment alone
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "sync-device.key"
ENROLLMENT_FILE = "sync-enrollment.json"


@frozen
class Enrollment(Frozen):
    """This device as the upstream enrolled it."""

    device_id: str
    venue_id: str
    upstream_url: str
    public_key: str  # base64, for the operator to compare with the upstream's record
    enrolled_ms: int


def load_or_create_key(state_dir: Path) -> Ed25519PrivateKey:
    """The device's key, made once; a damaged key file raises DamagedStateFile rather than a new key
    (a new key would be refused upstream as ``device-enrolled``: re-keying is the operator's call)."""
    existing = load_key(state_dir)
    if existing is not None:
        return existing
    private_dir(state_dir)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.generate()
    write_private_file(state_dir / KEY_FILE, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    return key


def load_key(state_dir: Path) -> Ed25519PrivateKey | None:
    raw = read_state_file(state_dir / KEY_FILE, exact_size(32))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return None if raw is None else Ed25519PrivateKey.from_private_bytes(raw)


def save_enrollment(state_dir: Path, enrollment: Enrollment) -> None:
    write_private_file(state_dir / ENROLLMENT_FILE, (json.dumps(asdict(enrollment), indent=2) + "\n").encode())


def load_enrollment(state_dir: Path) -> Enrollment | None:
    """What this device enrolled as; None before enrollment, DamagedStateFile if the file is unusable."""
    return read_state_file(state_dir / ENROLLMENT_FILE, lambda data: Enrollment(**parse_json_object(data)))
