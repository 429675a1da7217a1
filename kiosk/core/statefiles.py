"""The device's own small files (device id, secrets, keys, enrollment): checked when read, never
silently replaced, kept in a directory only the kiosk can enter.

A file that exists but does not hold what it should (empty, torn, the wrong size, not JSON) raises
:class:`DamagedStateFile`: the operation that needs it is refused with a message naming the file, and
``kiosk status`` shows ATTENTION. Making a fresh one silently would be worse than stopping: a new
device secret makes every repeat visitor count twice, a new device id can never upload its rows.
Writes go through :func:`kiosk.core.privacy.write_private_file` (atomic, 0600).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

MAX_STATE_FILE_BYTES = 64 * 1024
DEVICE_ID_FILE = "device-id"
DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class DamagedStateFile(RuntimeError):
    """A state file that exists but cannot be used; the message names it and says what to do."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path} is damaged ({problem}); it was left as it is: restore it from a backup, "
                         "or move it away to start this device afresh")
        self.path = path
        self.problem = problem


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700 whatever the umask or an earlier mode.

    Refuses a directory another (non-root) user owns, or one every user may write: others could
    swap the files in it.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.stat(path)
    me = os.geteuid()
    if st.st_uid != me and st.st_uid != 0 and me != 0:
        raise PermissionError(f"{path} belongs to another user (uid {st.st_uid}); refusing to keep keys in it")
    if st.st_mode & stat.S_IWOTH:  # /tmp itself, say: never chmod a shared directory, never keep keys there
        raise PermissionError(f"{path} is writable by every user; give the kiosk a state directory of its own")
    if st.st_uid == me and stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def read_state_file(path: Path, parse: Callable[[bytes], T]) -> T | None:
    """``parse(bytes)`` of the file, None if there is none; DamagedStateFile if ``parse`` raises ValueError.

    Never follows a symbolic link and never reads more than MAX_STATE_FILE_BYTES.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symbolic link where a file should be
            raise DamagedStateFile(path, "a symbolic link, not a file") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_STATE_FILE_BYTES + 1)
    if len(data) > MAX_STATE_FILE_BYTES:
        raise DamagedStateFile(path, f"larger than {MAX_STATE_FILE_BYTES} bytes")
    try:
        return parse(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise DamagedStateFile(path, str(exc) or type(exc).__name__) from None


def exact_size(size: int) -> Callable[[bytes], bytes]:
    def parse(data: bytes) -> bytes:
        if len(data) != size:
            raise ValueError(f"{len(data)} bytes where {size} belong")
        return data
    return parse


def parse_device_id(data: bytes) -> str:
    text = data.decode("utf-8").strip()
    if not DEVICE_ID.fullmatch(text):
        raise ValueError("empty" if not text else "not a device id (letters, digits, '.', '_', '-', at most 64)")
    return text


def parse_json_object(data: bytes) -> dict:
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


# Every state file the device reads, with the check it must pass (kiosk status runs them all).
CHECKS: dict[str, Callable[[bytes], object]] = {
    DEVICE_ID_FILE: parse_device_id,
    "device-secret.key": exact_size(32),
    "sync-device.key": exact_size(32),
    "sync-enrollment.json": parse_json_object,
}
SECRET_FILES = ("device-secret.key", "sync-device.key", "sync-enrollment.json", "beacon-key.json",
                "pending-enrollment.json", "settings.toml")


def state_file_problems(state_dir: Path) -> list[str]:
    """What a person must look at in the state directory: damaged files, modes others can read."""
    problems = []
    for name, parse in CHECKS.items():
        try:
            read_state_file(state_dir / name, parse)
        except DamagedStateFile as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{state_dir / name}: cannot read ({exc.strerror or exc})")
    try:
        mode = stat.S_IMODE(os.stat(state_dir).st_mode)
    except OSError:
        return problems
    if mode & 0o077:
        problems.append(f"state directory {state_dir} is open to other users (mode {mode:04o}): chmod 700 it")
    for name in SECRET_FILES:
        try:
            mode = stat.S_IMODE(os.lstat(state_dir / name).st_mode)
        except OSError:
            continue
        if mode & 0o077:
            problems.append(f"{state_dir / name} is open to other users (mode {mode:04o}): chmod 600 it")
    return problems
