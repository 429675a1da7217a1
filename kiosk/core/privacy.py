"""What the device keeps about a visitor, and how: nothing in clear.

- A per-device secret and the keyed hash (``visitor_ref``) that lets the kiosk spot a repeat visitor
  without knowing who it is.
- The identity itself sealed to the health authority's public key (libsodium sealed box), so a
  stolen device or database reveals nobody.
- Keys given in settings: 32 bytes in base64, or the path of a file holding them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path

SECRET_FILE = "device-secret.key"


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``, whatever the umask.

    The bytes go to a temporary file with a name nobody can predict, created exclusively and never
    through a symbolic link (a neighbour cannot make us write into their file), then fsync, rename
    over ``path`` and fsync of the directory: a power cut leaves the old file or the new, never half.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow the mode; make it exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create_secret(state_dir: Path, name: str = SECRET_FILE, size: int = 32) -> bytes:
    """The per-device secret; made once. A damaged one raises DamagedStateFile, never a new secret:
    a silent new secret would make every repeat visitor count twice."""
    from kiosk.core.statefiles import exact_size, private_dir, read_state_file

    path = state_dir / name
    existing = read_state_file(path, exact_size(size))
    if existing is not None:
        return existing
    private_dir(state_dir)
    data = os.urandom(size)  # secrets.token_bytes, without importing random at every start
    write_private_file(path, data)
    return data


def visitor_ref(secret: bytes, kind: str, subject: str) -> str:
    """HMAC-SHA256 of the credential: stable per device, useless without the device's secret."""
    import hashlib  # here: `kiosk status` reads keys through this module and never hashes
    import hmac

    return hmac.new(secret, f"{kind}\x00{subject}".encode(), hashlib.sha256).hexdigest()


def seal_subject(subject: str, authority_public_key: bytes) -> bytes:
    """Encrypt an identity so only the health authority can read it (libsodium sealed box, X25519).

    The kiosk holds only the public key: a stolen device or database reveals nobody.
    """
    # libsodium's crypto_box_seal (what nacl.public.SealedBox calls) through PyNaCl's cffi module alone:
    # nacl.public loads every libsodium binding, most of the CPU time `kiosk checkin` spends on sealing.
    from nacl._sodium import ffi, lib

    if not isinstance(authority_public_key, bytes) or len(authority_public_key) != lib.crypto_box_publickeybytes():
        raise ValueError("the authority's public key must be 32 bytes")
    lib.sodium_init()  # idempotent; libsodium wants it before any other call
    message = subject.encode("utf-8")
    sealed = ffi.new("unsigned char[]", lib.crypto_box_sealbytes() + len(message))
    if lib.crypto_box_seal(sealed, message, len(message), authority_public_key) != 0:
        raise RuntimeError("libsodium could not seal the identity")
    return ffi.buffer(sealed)[:]


def unseal_subject(sealed: bytes, authority_private_key: bytes) -> str:
    """The authority's side of :func:`seal_subject`; raises nacl.exceptions.CryptoError on a wrong key."""
    from nacl.public import PrivateKey, SealedBox

    return SealedBox(PrivateKey(authority_private_key)).decrypt(sealed).decode("utf-8")


def read_key(value: str, setting: str) -> bytes | None:
    """The 32-byte key a setting names (base64 text, or a file of base64 text or raw bytes); None if empty.

    Raises ConfigError naming the setting when the key cannot be read, so a service never starts
    with a key it cannot use.
    """
    from kiosk.core.errors import ConfigError

    if not value:
        return None
    key = _b64_key(value.encode())
    if key is not None:
        return key
    if "/" not in value:
        raise ConfigError(f"'{setting}' = {value!r}: expected a 32-byte key in base64, or a key file's path")
    try:
        with open(Path(value).expanduser(), "rb") as fh:
            data = fh.read(4097)
    except OSError as exc:
        raise ConfigError(f"'{setting}' = {value!r}: cannot read the key file ({exc.strerror})") from None
    key = data if len(data) == 32 else _b64_key(data.strip())
    if key is None:
        raise ConfigError(f"'{setting}' = {value!r}: the file does not hold a 32-byte key (raw or base64)")
    return key


def _b64_key(text: bytes) -> bytes | None:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def new_sealing_keypair() -> tuple[bytes, bytes]:
    """(private, public) X25519 keys for :func:`seal_subject`; the private one belongs to the authority only."""
    from nacl.public import PrivateKey

    private = PrivateKey.generate()
    return bytes(private), bytes(private.public_key)
