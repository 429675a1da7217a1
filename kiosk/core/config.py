"""One TOML file, defaults built in, every value checked before any service starts.

Lookup order for the file: ``--config``, then ``$KIOSK_CONFIG``, then ``/etc/kiosk/kiosk.toml`` if it
exists, else the built-in defaults alone. The state directory can be overridden separately
(``--state-dir`` / ``$KIOSK_STATE_DIR``) so several simulated devices can share one machine.

Each section is a frozen dataclass; a field's ``metadata["check"]`` says what is allowed. A bad file
raises :class:`ConfigError` naming the file, the key and what is allowed, so a service never starts
half-configured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import time
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Iterator

from kiosk.core.errors import ConfigError
from kiosk.core.frozen import Frozen, frozen

SYSTEM_CONFIG = Path("/etc/kiosk/kiosk.toml")
# Settings the device itself changes (provisioning, the maintenance screen) live in the state
# directory, because the root file system may be read-only; they override the config file.
OVERRIDES_FILE = "settings.toml"
LAST_GOOD_SUFFIX = ".last-good"  # the settings as last written by the device, used if settings.toml is damaged
SETTINGS_LOCK = "settings.lock"

log = logging.getLogger("kiosk.config")


Check = Callable[[Any], str | None]


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else "one of " + ", ".join(repr(c) for c in choices)


def between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"a number from {lo} to {hi}"


def matches(pattern: str, what: str) -> Check:
    return lambda v: None if re.fullmatch(pattern, v) else what


def _valid_regex(v: str) -> str | None:
    from kiosk.core.patterns import PatternError, compile_linear

    try:
        compile_linear(v)
    except PatternError as exc:
        return f"a valid regular expression ({exc})"
    return None


def opt(default: Any, check: Check | None = None, doc: str = "") -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"check": check, "doc": doc})
    return field(default=default, metadata={"check": check, "doc": doc})


ID_CHECK = matches(r"[A-Za-z0-9._-]{0,64}", "letters, digits, '.', '_' or '-', at most 64")


@frozen
class DeviceConfig(Frozen):
    """[device]: who this kiosk is and where it keeps its state."""

    id: str = opt("", ID_CHECK, "device id; empty = generated once and kept in the state directory")
    venue_id: str = opt("", ID_CHECK, "venue id given by the health authority; empty = not provisioned")
    venue_name: str = opt("", lambda v: None if len(v) <= 200 else "at most 200 characters")
    direction: str = opt("entry", one_of("entry", "exit"))
    state_dir: str = opt("", None, "database and keys; empty = $STATE_DIRECTORY, /var/lib/kiosk or ~/.local/state/kiosk")


@frozen
class CameraConfig(Frozen):
    """[camera]: which camera, at what size and rate."""

    backend: str = opt("auto", one_of("auto", "picamera2", "uvc", "replay", "synthetic"))
    width: int = opt(640, between(160, 4096))
    height: int = opt(480, between(120, 4096))
    fps: float = opt(15.0, between(0.5, 120))
    read_timeout_s: float = opt(2.0, between(0.05, 60))
    picamera2_camera: int = opt(0, between(0, 7), "which Raspberry Pi camera, when several are attached")
    autofocus: bool = opt(True, None, "continuous autofocus, on cameras that have it (Camera Module 3)")
    uvc_device: str = opt("", None, "USB webcam: /dev/videoN, an index, or empty for the first USB camera")
    replay_path: str = opt("", None, "folder of images or a video file, for backend = replay")
    replay_loop: bool = opt(True)
    synthetic_script: str = opt("demo", one_of("demo", "unique", "idle"))


@frozen
class ScanConfig(Frozen):
    """[scan]: how repeats of one code are treated."""

    duplicate_window_s: float = opt(300.0, between(0, 86400), "same visitor again within this: 'already checked in'")
    repeat_quiet_s: float = opt(2.0, between(0, 60), "same code still in view: ignored silently")


@frozen
class PersonalPattern(Frozen):
    """One [[formats.personal]] entry: a personal health QR token format."""

    name: str = opt("", matches(r"[a-z0-9-]{1,32}", "lower-case letters, digits or '-', 1 to 32"))
    pattern: str = opt("", _valid_regex)


@frozen
class FormatsConfig(Frozen):
    """[formats]: which payloads are accepted, and the HC1 trust list."""

    personal: list = opt([], None, "list of {name, pattern}: personal health QR tokens")
    accept_unknown_as_opaque: bool = opt(False)
    max_payload_bytes: int = opt(2953, between(1, 65536))
    hc1_trust: str = opt("", None, "vaccine certificate signers: PEM/DER file, folder, or JSON list; empty = none")


def _key_setting(v: str) -> str | None:
    """Empty, 32 bytes in base64, or a file path (read when the service starts)."""
    import base64
    import binascii

    try:
        if not v or len(base64.b64decode(v, validate=True)) == 32:
            return None
    except (binascii.Error, ValueError):
        pass
    return None if "/" in v else "a 32-byte key in base64 (44 characters) or the path of a file holding one"


@frozen
class PrivacyConfig(Frozen):
    """[privacy]: the key identities are sealed to, and how long check-ins are kept."""

    authority_public_key: str = opt("", _key_setting, "X25519 key visitor identities are sealed to; empty = no check-ins")
    retention_days: int = opt(21, between(1, 3650), "acknowledged check-ins are deleted after this many days")


@frozen
class ProvisioningConfig(Frozen):
    """[provisioning]: the key provisioning codes are checked against."""

    authority_key: str = opt("", _key_setting, "Ed25519 key provisioning codes must be signed with; empty = refused")
    max_age_s: float = opt(259200.0, between(60, 31536000), "provisioning codes older than this are refused")


@frozen
class ClockConfig(Frozen):
    """[clock]: whether to trust an unsynchronised system clock."""

    assume_synced: bool = opt(False, None, "trust the system clock even if the kernel says unsynchronised")


def _upstream_url(v: str) -> str | None:
    if not v:
        return None
    from kiosk.core.urls import check_upstream_url

    try:
        check_upstream_url(v)
    except ValueError as exc:
        return str(exc)
    return None


@frozen
class SyncConfig(Frozen):
    """[sync]: the upstream and the uploader's batches, timeouts and back-off."""

    upstream_url: str = opt("", _upstream_url, "set by `kiosk provision`; https, or http to loopback only")
    ca_bundle: str = opt("", None, "PEM file of CAs to trust for the upstream; empty = the system's")
    batch_max_items: int = opt(1000, between(1, 1000))
    batch_max_bytes: int = opt(524288, between(4096, 1000000), "uncompressed JSON bytes per batch")
    connect_timeout_s: float = opt(5.0, between(0.1, 120))
    read_timeout_s: float = opt(30.0, between(0.1, 600))
    wake_check_s: float = opt(0.25, between(0.01, 10), "how often to look for newly committed check-ins")
    poll_interval_s: float = opt(30.0, between(1, 3600), "idle re-check when nothing wakes the uploader")
    heartbeat_interval_s: float = opt(60.0, between(1, 86400))
    backoff_base_s: float = opt(1.0, between(0.01, 60))
    backoff_cap_s: float = opt(300.0, between(0.05, 3600))
    retry_after_max_s: float = opt(900.0, between(0, 86400), "longest Retry-After honoured")


@frozen
class BeaconConfig(Frozen):
    """[beacon]: the Bluetooth controller, advertising and nearby-phone counting."""

    transport: str = opt("hci0", matches(r"hci[0-9]{1,3}|unix:.+|pcap:.+", "hciN, unix:PATH or pcap:FILE"),
                         "controller: raw HCI socket, H4 over a unix socket (emulator), or a pcap file")
    interval_ms: float = opt(200.0, between(20, 10240), "advertising interval; >= 100 on pre-5.0 controllers")
    retry_max_s: float = opt(30.0, between(1, 3600), "longest wait between attempts to reach the controller")
    scanner: str = opt("off", matches(r"off|bluepy:hci[0-9]{1,3}|unix:.+", "off, bluepy:hciN or unix:PATH"),
                       "nearby-phone counting")
    scan_seconds: float = opt(10.0, between(1, 60))
    scan_every_s: float = opt(60.0, between(10, 3600))
    rssi_threshold: int = opt(-75, between(-127, 20), "phones weaker than this (dBm) are not counted")
    nearby_window_s: float = opt(300.0, between(30, 3600))


@frozen
class ScreenConfig(Frozen):
    """[screen]: language, PIN, timings and what the screen shows."""

    language: str = opt("vi", one_of("vi", "en"), "the screen's main language; the other is shown smaller")
    pin: str = opt("", matches(r"([0-9]{4,12})?", "4 to 12 digits, or empty"), "maintenance PIN; empty = maintenance locked")
    result_seconds: float = opt(4.0, between(1, 60), "how long a check-in result stays before 'ready'")
    problem_seconds: float = opt(7.0, between(1, 120), "how long a refusal or fault stays (more to read)")
    fullscreen: bool = opt(True, None, "full screen at the panel's native size; false = a window")
    window_width: int = opt(800, between(320, 7680), "window size when fullscreen = false")
    window_height: int = opt(480, between(240, 4320))
    fps: int = opt(30, between(5, 60), "drawing rate; the camera preview is refreshed at most this often")
    mirror_preview: bool = opt(True, None, "show the camera preview like a mirror, as visitors expect")
    sound: bool = opt(True, None, "play a tone per result")
    volume: float = opt(0.7, between(0, 1))
    visitor_keypad: bool = opt(False, None, "a keypad on the ready screen for visitors to type their ID number "
                                            "themselves (venues without staff); false = staff only, behind the PIN")
    show_today_count: bool = opt(False, None, "show today's check-in count on the ready screen")


@frozen
class Config(Frozen):
    """The whole configuration: one frozen section per TOML table, and where it came from."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    formats: FormatsConfig = field(default_factory=FormatsConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    beacon: BeaconConfig = field(default_factory=BeaconConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    source: str = "built-in defaults"
    # settings.toml could not be used (torn, empty, invalid): why; the last good settings are in force
    settings_problem: str = ""
    # the config file as read (and what it was), so the device-made settings can be laid on it again
    file_data: Any = field(default=None, compare=False, repr=False)
    file_source: str = field(default="built-in defaults", compare=False, repr=False)

    @property
    def state_dir(self) -> Path:
        return resolve_state_dir(self.device.state_dir)

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some keys of some sections changed, validated like a file."""
        data = {s: dataclasses.asdict(getattr(self, s)) for s in _sections()}
        for name, values in sections.items():
            if name not in data:
                raise ConfigError(f"unknown section [{name}]; allowed: {', '.join(sorted(data))}")
            data[name].update(values)
        base = _merge(self.file_data, sections) if self.file_data is not None else None  # kept by a reload
        return dataclasses.replace(_build(data, self.source), settings_problem=self.settings_problem,
                                   file_data=base, file_source=self.file_source)


def resolve_state_dir(configured: str) -> Path:
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/kiosk")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
    return Path(base) / "kiosk"


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Config)
            if f.name not in ("source", "settings_problem", "file_data", "file_source")}


def _type_name(t: Any) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
            "list": "a list"}.get(getattr(t, "__name__", str(t)), str(t))


def _coerce(value: Any, ftype: str) -> Any:
    if ftype == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_section(cls: type, values: Any, where: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{where}.{key}'; allowed: {', '.join(sorted(known))}")
    out = {}
    for key, value in values.items():
        f = known[key]
        ftype = f.type if isinstance(f.type, str) else f.type.__name__
        value = _coerce(value, ftype)
        expected = {"str": str, "int": int, "float": float, "bool": bool, "list": list}[ftype]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: '{where}.{key}' = {value!r} is not allowed; expected {_type_name(expected)}")
        problem = f.metadata["check"](value) if f.metadata.get("check") else None
        if problem:
            raise ConfigError(f"{source}: '{where}.{key}' = {value!r} is not allowed; expected {problem}")
        if where == "formats" and key == "personal":
            value = [_check_section(PersonalPattern, v, f"formats.personal[{i}]", source) for i, v in enumerate(value)]
        out[key] = value
    return cls(**out)


def _build(data: dict[str, Any], source: str) -> Config:
    sections = _sections()
    for name in data:
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}]; allowed: {', '.join(sorted(sections))}")
    built = {name: _check_section(cls, data.get(name, {}), name, source) for name, cls in sections.items()}
    return Config(**built, source=source)


def refuse_if_others_can_write(path: Path, fh: Any) -> None:
    """As ssh does with its files: a config another user could change is not obeyed (they could
    redirect the venue, the upstream or the sealing key). Group/world-writable file, or a directory
    others may write without the sticky bit (they could swap the file), is refused."""
    import stat

    mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
    if mode & 0o022:
        raise ConfigError(f"{path}: other users can write this file (mode {mode:04o}); it is not obeyed "
                          f"until only its owner can: chmod go-w {path}")
    parent = Path(path).absolute().parent
    dir_mode = os.stat(parent).st_mode
    if dir_mode & 0o022 and not dir_mode & stat.S_ISVTX:
        raise ConfigError(f"{path}: other users can replace files in {parent} (mode {stat.S_IMODE(dir_mode):04o}); "
                          f"it is not obeyed until they cannot: chmod go-w {parent}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            refuse_if_others_can_write(path, fh)
            raw = fh.read(1_000_001)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    if len(raw) > 1_000_000:
        raise ConfigError(f"{path}: config file is larger than 1 MB")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | os.PathLike | None = None, state_dir: str | None = None) -> Config:
    """Read the config the way every command does, with the device-made settings laid over it.

    Raises ConfigError when the config file is unusable. A settings file that cannot be used does
    not stop anything: its last good copy is used instead and ``settings_problem`` says why.
    """
    if path is None:
        path = os.environ.get("KIOSK_CONFIG") or (SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None)
    data: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "built-in defaults"
    state_dir = state_dir or os.environ.get("KIOSK_STATE_DIR")
    if state_dir:
        data.setdefault("device", {})
        if isinstance(data["device"], dict):
            data["device"]["state_dir"] = state_dir
    alone = _build(data, source)  # the file alone must be right
    return with_settings(data, source, alone)


def with_settings(data: dict[str, Any], source: str, alone: Config | None = None) -> Config:
    """The config file's ``data`` with settings.toml (or, if that is damaged, its last good copy) over it.

    ``alone`` is ``data`` already built (and so checked) by the caller: it is not built a second time."""
    base = dataclasses.replace(alone if alone is not None else _build(data, source), file_data=data, file_source=source)
    path = base.state_dir / OVERRIDES_FILE
    problem = ""
    for candidate in (path, _last_good(path)):
        if not candidate.exists():
            if candidate == path:
                return base
            continue
        try:
            merged = _merge(data, _read_settings(candidate))
            config = _build(merged, f"{source} + {candidate}")  # names the copy actually in use
        except ConfigError as exc:
            problem = problem or str(exc)
            continue
        return dataclasses.replace(config, settings_problem=problem, file_data=data, file_source=source)
    return dataclasses.replace(base, settings_problem=problem)


def _last_good(path: Path) -> Path:
    return path.with_name(path.name + LAST_GOOD_SUFFIX)


def _read_settings(path: Path) -> dict[str, Any]:
    """settings.toml: never empty (the device always writes at least one table), every value a table."""
    extra = _read_toml(path)
    if not extra:
        raise ConfigError(f"{path}: the settings file is empty (damaged, or cut short while being written)")
    for section, values in extra.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
    return extra


def _merge(data: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, values in extra.items():
        if not isinstance(merged.get(section, {}), dict):
            raise ConfigError(f"[{section}] must be a table")
        merged.setdefault(section, {}).update(values)
    return merged


@contextlib.contextmanager
def _settings_lock(state_dir: Path) -> Iterator[None]:
    """One writer of settings.toml at a time, across threads and processes (an advisory file lock)."""
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / SETTINGS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def save_overrides(state_dir: Path, changes: dict[str, dict[str, Any]],
                   unless: Callable[[dict[str, Any]], bool] = lambda current: False) -> bool:
    """The one way to change device-made settings (venue, direction, language, upstream).

    Read-modify-write under a lock, so two writers at once both take effect; only the keys changed
    are written, so no caller can write back a stale copy of the others. Written atomically, with a
    last good copy beside it. A damaged file is kept aside and the change is laid over the last good
    copy. Every service notices the change through :class:`SettingsWatch`. ``unless`` sees the
    settings as they are, under the lock: when it says so nothing is written (and False returned).
    """
    from kiosk.core.privacy import write_private_file

    path = state_dir / OVERRIDES_FILE
    with _settings_lock(state_dir):
        current: dict[str, Any] = {}
        # the last good copy stands in only for a damaged file: a settings file deleted on purpose stays gone
        for candidate in (path, _last_good(path)) if path.exists() else ():
            if not candidate.exists():
                continue
            try:
                data = _read_settings(candidate)
                _build(data, str(candidate))
                current = data
                break
            except ConfigError as exc:
                if not candidate.is_file() or not os.access(candidate, os.R_OK):
                    raise  # not damaged content: something a person must fix (it is reported, not replaced)
                kept = candidate.with_name(f"{candidate.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                candidate.rename(kept)
                log.error("%s; kept it as %s and continued from the last good settings", exc, kept)
        if unless(current):
            return False
        for section, values in changes.items():
            current.setdefault(section, {}).update(values)
        _build(current, str(path))  # refuse to write what could not be read back
        lines = []
        for section, values in current.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            lines.append("")
        text = "\n".join(lines).encode("utf-8")
        write_private_file(path, text)
        write_private_file(_last_good(path), text)  # second: a power cut between leaves an older good copy
    return True


class SettingsWatch:
    """Gives each service the settings in force now: settings.toml is looked at (one stat) on every
    :meth:`poll`, and read again only when it changed, whoever changed it (another thread, another
    process, a person with an editor). A damaged file is logged once and the last good settings stay.
    """

    def __init__(self, config: Config):
        self.config = config
        self.path = config.state_dir / OVERRIDES_FILE
        self._seen = self._fingerprint()
        if config.file_data is not None:
            self._data, self._source = config.file_data, config.file_source
        else:  # made in code, not read from a file: the sections as given are the base
            self._data = {name: dataclasses.asdict(getattr(config, name)) for name in _sections()}
            self._source = config.source

    def _fingerprint(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def poll(self) -> Config | None:
        """The new config if the settings changed since the last look, else None."""
        seen = self._fingerprint()
        if seen == self._seen:
            return None
        self._seen = seen
        fresh = with_settings(self._data, self._source)
        if fresh.settings_problem:
            log.error("device settings not applied: %s; the last good settings stay in force", fresh.settings_problem)
            fresh = dataclasses.replace(self.config, settings_problem=fresh.settings_problem)
        elif fresh != self.config:
            log.info("device settings changed: %s", _changes(self.config, fresh))
        if fresh == self.config:
            return None
        self.config = fresh
        return fresh


def _changes(old: Config, new: Config) -> str:
    said = []
    for section in _sections():
        before, after = dataclasses.asdict(getattr(old, section)), dataclasses.asdict(getattr(new, section))
        said += [f"{section}.{k}" for k in after if before.get(k) != after[k]]
    return ", ".join(said) or "none"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    raise ConfigError(f"cannot save {value!r} as a setting")


def documented_keys() -> list[str]:
    """Every 'section.key' the loader accepts; the example file must document each one."""
    return [f"{name}.{f.name}" for name, cls in _sections().items() for f in dataclasses.fields(cls)]
