"""Hostile input for every parser: arbitrary bytes and mutations of valid payloads.

No exception may escape a parser (the registry's safety net must never be needed), every call ends
within hypothesis' per-example deadline, and a zlib bomb costs a bounded amount of memory.
"""

from __future__ import annotations

import base64
import tracemalloc
import zlib
from datetime import timedelta

import base45
import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credential_factory import CCCD, VIETNAMESE_DCC, Issuer, hc1_from_cose
from kiosk.core.config import Config
from kiosk.credentials import Registry, default_registry, hc1
from kiosk.credentials.base import REASONS, FormatContext
from kiosk.credentials.cccd import CccdFormat
from kiosk.credentials.provisioning import ProvisioningCode, ProvisioningFormat, make_code, new_signing_keypair
from kiosk.credentials.trust import TrustList
from kiosk.pipeline import Pipeline
from kiosk.core.privacy import unseal_subject

ISSUER = Issuer.new()
TRUST = TrustList.of([(ISSUER.cert, None)], "fuzz")
SIGNING, VERIFY = new_signing_keypair()
NOW = FormatContext(now_utc_ms=1_800_000_000_000)
PROVISIONING = make_code(SIGNING, ProvisioningCode("V-1", "Chợ", "entry", "https://up.example.vn",
                                                   "enroll-0123456789abcdef", 1_800_000_000 - 60)).encode()
VALID = [CCCD.encode(), ISSUER.hc1(iat=1_700_000_000, exp=1_900_000_000), PROVISIONING, b"DEMO-HQR-0000000000AB"]
FAST = settings(max_examples=300, deadline=timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow])


class NoSafetyNet(Registry):
    """The registry without its catch-all: a parser that raises fails the test."""

    def classify(self, payload, ctx):
        for fmt in self.formats:
            if fmt.detect(payload):
                return fmt.parse(payload, ctx)
        return None


def registry() -> NoSafetyNet:
    config = Config().replace(formats={"personal": [{"name": "t", "pattern": r"DEMO-HQR-[0-9A-F]{12}"}]},
                              provisioning={"authority_key": base64.b64encode(VERIFY).decode()})
    return NoSafetyNet(default_registry(config, trust=TRUST).formats)


REGISTRY = registry()


def check(payload: bytes) -> None:
    cred = REGISTRY.classify(payload, NOW)
    if cred is not None:
        assert cred.reason in REASONS
        assert cred.accepted == (cred.reason == "ok")
        assert cred.accepted or not cred.subject


@st.composite
def mutated(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


@FAST
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(payload):
    check(payload)


@FAST
@given(st.sampled_from([b"HC1:", b"KIOSK-PROV1:", b"001090123456|", b"HC2:"]).flatmap(
    lambda prefix: st.binary(max_size=600).map(lambda tail: prefix + tail)))
def test_arbitrary_bytes_behind_each_prefix(payload):
    check(payload)


@FAST
@given(mutated(VALID))
def test_mutations_of_valid_payloads(payload):
    check(payload)


COSE = zlib.decompress(base45.b45decode(VALID[1][4:]))


@FAST
@given(mutated([COSE, cbor2.dumps(VIETNAMESE_DCC)]))
def test_mutations_inside_the_compression(inner):
    """Past Base45 and zlib, so the CBOR, COSE and CWT layers see the damage."""
    check(hc1_from_cose(inner))


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=200) | st.binary(max_size=50),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
                    | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 18, 35, 36, 61, 258, 55799]), children),
                    max_leaves=30))
def test_signed_certificates_with_arbitrary_content(content):
    """Genuinely signed, so the schema, JSON conversion and naming code see hostile content."""
    cose = ISSUER.cose({"ver": "1.3.0", "nam": content, "dob": content, "v": [content]} if content else content, 1, 2**40)
    check(hc1_from_cose(cose))


@FAST
@given(st.lists(st.text(max_size=400), min_size=0, max_size=12))
def test_cccd_fields_of_any_text(fields):
    payload = ("001090123456|" + "|".join(fields)).encode("utf-8", "surrogatepass")
    cred = CccdFormat().parse(payload, NOW)
    assert cred.reason in ("ok", "invalid-cccd")


def test_zlib_bomb_uses_little_memory():
    bomb = zlib.compress(b"A" * (50 * 2**20), 9)  # 50 MB of output from ~50 KB
    payload = b"HC1:" + base45.b45encode(bomb)
    tracemalloc.start()
    try:
        cred = hc1.evaluate(payload, TRUST, NOW.now_utc_ms)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cred.facts == {"layer": "zlib"}
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_deep_cbor_nesting_is_refused():
    deep = b"\x81" * 60_000 + b"\x00"  # inside the 64 KB cap, far past the depth cap
    assert hc1.evaluate(hc1_from_cose(deep), TRUST, NOW.now_utc_ms).facts == {"layer": "cbor"}


def test_hostile_text_is_stored_only_sealed(config, authority_keys):
    """SQL and markup in a token are data: accepted by a permissive pattern, sealed, never interpreted."""
    hostile = "x'); DROP TABLE checkins;-- <script>alert(1)</script>"
    cfg = config.replace(formats={"personal": [{"name": "any", "pattern": r".{1,300}"}]})
    pipeline = Pipeline(cfg)
    assert pipeline.handle_payload(hostile.encode()).event == "accepted"
    row = pipeline.store.db.execute("SELECT sealed_subject, visitor_ref FROM checkins").fetchone()
    assert unseal_subject(row[0], authority_keys[0]) == hostile and "DROP" not in row[1]
    assert pipeline.store.count_checkins() == 1
    pipeline.close()


def test_parser_bug_is_contained_and_logged_without_payload(caplog):
    class Broken:
        kind = "broken"

        def detect(self, payload):
            return True

        def parse(self, payload, ctx):
            raise KeyError(payload.decode())

    cred = Registry([Broken()]).classify(b"001090123456-secret", NOW)
    assert (cred.reason, cred.facts) == ("malformed", {"layer": "parser"})
    assert "KeyError" in caplog.text and "001090123456" not in caplog.text


def test_provisioning_parser_direct():
    fmt = ProvisioningFormat(VERIFY, 3600)
    assert fmt.parse(PROVISIONING, NOW).accepted
    assert fmt.parse(PROVISIONING.replace(b".", b"..", 1), NOW).reason == "malformed"
