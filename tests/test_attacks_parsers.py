"""Hypothesis against every parser a stranger or a careless operator can reach that the credential
fuzzing (test_credentials_fuzz.py) does not: the config loader, trust lists, the upstream's signed
headers and gzip bodies, and the device's state files. Each either yields a value or raises its own
documented error: never anything else."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.core.config import ConfigError, documented_keys, load_config
from kiosk.credentials.trust import TrustListError, load_trust_list
from kiosk.core.statefiles import CHECKS, DamagedStateFile, read_state_file
from sync import protocol as p
from sync.protocol import ProtocolError

FUZZ = settings(max_examples=200, deadline=timedelta(seconds=2), suppress_health_check=list(HealthCheck))
SCRATCH = Path(tempfile.mkdtemp(prefix="kiosk-attacks-"))
os.chmod(SCRATCH, 0o700)

VALUES = st.recursive(st.none().map(lambda _: "") | st.booleans() | st.integers() | st.floats(allow_nan=False)
                      | st.text(max_size=80) | st.sampled_from(["../../etc/passwd", "/dev/zero", "\x00", "$(reboot)",
                                                                 "'; DROP TABLE checkins;--", "%s%n", "~root"]),
                      lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                         max_size=3), max_leaves=8)
KEYS = st.sampled_from(documented_keys() + ["device.nope", "nope.id"])


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@FUZZ
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_config_files_of_any_values_load_or_say_why(settings_):
    sections: dict[str, list[str]] = {}
    for dotted, value in settings_.items():
        section, key = dotted.split(".", 1)
        sections.setdefault(section, []).append(f"{key} = {toml_value(value)}")
    path = SCRATCH / "fuzz.toml"
    path.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    try:
        load_config(path, state_dir=str(SCRATCH / "state"))
    except ConfigError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_config_files_of_any_bytes_load_or_say_why(raw):
    path = SCRATCH / "raw.toml"
    path.write_bytes(raw)
    try:
        load_config(path, state_dir=str(SCRATCH / "state"))
    except ConfigError:
        pass


@FUZZ
@given(st.binary(max_size=600) | st.builds(lambda doc: json.dumps(doc).encode(), VALUES)
       | st.builds(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b + b"\n-----END CERTIFICATE-----\n", st.binary(max_size=200)))
def test_trust_lists_of_any_content_load_or_name_the_file(raw):
    path = SCRATCH / "trust.json"
    path.write_bytes(raw)
    try:
        load_trust_list(path)
    except TrustListError as exc:
        assert str(path) in str(exc)


HEADER = st.text(max_size=120) | st.sampled_from(["", "0" * 5000, "-1", "ZZ==", "a" * 64, "0123456789abcdef"])


@FUZZ
@given(st.fixed_dictionaries({h: HEADER for h in p.SIGNED_HEADERS}), st.binary(max_size=200))
def test_signed_headers_of_any_text_are_parsed_or_refused_with_a_reason(headers, body):
    try:
        p.parse_signed_headers("POST", "/v1/checkins", headers, body)
    except ProtocolError as exc:
        assert exc.status == 401 and exc.reason in {"missing-signature", "bad-signature"}


@FUZZ
@given(st.binary(max_size=2000))
def test_gzip_bodies_of_any_bytes_inflate_within_the_cap_or_are_refused(raw):
    try:
        assert len(p.gunzip_limited(raw, 4096)) <= 4096
    except ProtocolError as exc:
        assert 400 <= exc.status < 500


@FUZZ
@given(st.sampled_from(sorted(CHECKS)), st.binary(max_size=100))
def test_state_files_of_any_bytes_are_read_or_reported_damaged(name, raw):
    path = SCRATCH / name
    path.write_bytes(raw)
    try:
        read_state_file(path, CHECKS[name])
    except DamagedStateFile as exc:
        assert str(path) in str(exc)
