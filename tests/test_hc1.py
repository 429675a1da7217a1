"""Vaccine certificates from a signer of our own: trust list forms, kid lookups, key usage, clocks."""

from __future__ import annotations

import base64
import json
import time

import cbor2
import pytest

from credential_factory import VACCINATION_OID, VIETNAMESE_DCC, Issuer, hc1_from_cose
from kiosk.credentials import hc1
from kiosk.credentials.trust import TrustList, TrustListError, load_trust_list

NOW_MS = int(time.time() * 1000)
ISSUER = Issuer.new()


def trust(*issuers: Issuer) -> TrustList:
    return TrustList.of([(i.cert, None) for i in issuers], "test")


def test_genuine_vietnamese_certificate_is_accepted_with_stable_subject():
    cred = hc1.evaluate(ISSUER.hc1(), trust(ISSUER), NOW_MS)
    assert (cred.verdict, cred.reason) == ("accepted", "ok")
    assert cred.subject == "NGUYEN<<VAN<AN|1990-01-01"
    assert cred.display_name == "Nguyễn V. A."
    assert cred.facts == {"verdicts": {"signature": "valid", "signer_validity": "valid", "key_usage": "valid",
                                       "expiry": "valid", "fields": "valid", "schema": "valid"},
                          "certificate_type": "v", "issuer": "VN"}
    # A second certificate of the same person (another dose) is the same visitor.
    later = dict(VIETNAMESE_DCC, v=[dict(VIETNAMESE_DCC["v"][0], dn=3, sd=3, ci="URN:UVCI:01:VN:OTHER#Y")])
    assert hc1.evaluate(ISSUER.hc1(later), trust(ISSUER), NOW_MS).subject == cred.subject


def test_untrusted_expired_not_yet_valid():
    now_s = NOW_MS // 1000
    assert hc1.evaluate(ISSUER.hc1(), trust(Issuer.new()), NOW_MS).reason == "untrusted-signer"
    expired = hc1.evaluate(ISSUER.hc1(exp=now_s - 1), trust(ISSUER), NOW_MS)
    assert expired.reason == "expired" and expired.display_name == "Nguyễn V. A." and expired.subject == ""
    assert hc1.evaluate(ISSUER.hc1(iat=now_s + 600), trust(ISSUER), NOW_MS).reason == "not-yet-valid"


def test_all_certificates_sharing_a_kid_are_tried():
    impostor = Issuer.new()
    shared = TrustList.of([(impostor.cert, ISSUER.kid), (ISSUER.cert, None)], "two certificates, one kid")
    assert len(shared.signers(ISSUER.kid)) == 2
    assert hc1.evaluate(ISSUER.hc1(), shared, NOW_MS).accepted
    only_impostor = TrustList.of([(impostor.cert, ISSUER.kid)], "wrong key under the kid")
    assert hc1.evaluate(ISSUER.hc1(), only_impostor, NOW_MS).reason == "invalid-signature"


@pytest.mark.parametrize("usages, verdict", [
    ((VACCINATION_OID,), "valid"),
    (("1.3.6.1.4.1.0.1847.2021.1.2",), "valid"),
    (("1.3.6.1.4.1.1847.2021.1.1",), "invalid"),       # a test-certificate signer signing a vaccination
    (("1.3.6.1.5.5.7.3.4",), "absent"),                 # e-mail protection only: no DCC restriction
    ((), "absent"),
])
def test_key_usage_against_certificate_type(usages, verdict):
    signer = Issuer.new(usages)
    cred = hc1.evaluate(signer.hc1(), trust(signer), NOW_MS)
    assert cred.facts["verdicts"]["key_usage"] == verdict
    assert cred.accepted is (verdict != "invalid")


def test_schema_failure_and_multiple_entries():
    no_name = {k: v for k, v in VIETNAMESE_DCC.items() if k != "nam"}
    assert hc1.evaluate(ISSUER.hc1(no_name), trust(ISSUER), NOW_MS).reason == "invalid-schema"
    both = dict(VIETNAMESE_DCC, r=[{"tg": "840539006", "fr": "2021-02-20", "co": "VN", "is": "BYT",
                                    "df": "2021-04-04", "du": "2021-10-04", "ci": "URN:UVCI:01:VN:R#1"}])
    unrestricted = Issuer.new(())
    assert hc1.evaluate(unrestricted.hc1(both), trust(unrestricted), NOW_MS).reason == "invalid-schema"
    assert hc1.evaluate(ISSUER.hc1(both), trust(ISSUER), NOW_MS).reason == "wrong-key-usage"  # r not allowed
    markup = dict(VIETNAMESE_DCC, nam={"fn": "<b>Nguyễn</b>'; DROP TABLE x;--", "fnt": "NGUYEN", "gnt": "AN"})
    cred = hc1.evaluate(ISSUER.hc1(markup), trust(ISSUER), NOW_MS)
    assert cred.accepted and cred.display_name == "<b>Nguyễn</b>'; DROP TA… A."  # text, shortened, never interpreted
    assert cred.subject == "NGUYEN<<AN|1990-01-01"  # identity from the transliterated fields only


def test_layers_are_named():
    cose = ISSUER.cose(VIETNAMESE_DCC, 0, 2**31)
    cases = {
        b"HC2:" + ISSUER.hc1()[4:]: "prefix",
        b"HC1:" + b"%%%%" * 10: "base45",
        b"HC1:NCFOXN": "zlib",
        hc1_from_cose(b"\xff\xff\xff"): "cbor",
        hc1_from_cose(cbor2.dumps([1, 2, 3])): "cose",
        hc1_from_cose(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, cbor2.dumps({1: "VN"}), b"x" * 64]))): "cwt",
        hc1_from_cose(cose + b"\x00"): "cbor",
    }
    for payload, layer in cases.items():
        cred = hc1.evaluate(payload, trust(ISSUER), NOW_MS)
        assert (cred.reason, cred.facts) == ("malformed", {"layer": layer}), payload[:20]


def test_zlib_bomb_is_refused_at_the_cap():
    import base45
    import zlib

    bomb = zlib.compress(b"\x00" * (10 * 2**20), 9)
    assert len(bomb) < 12_000
    with pytest.raises(hc1.Malformed, match="inflates to more than"):
        hc1.inflate(bomb)
    cred = hc1.evaluate(b"HC1:" + base45.b45encode(bomb), trust(ISSUER), NOW_MS)
    assert cred.facts == {"layer": "zlib"}


def test_trust_list_forms(tmp_path):
    other = Issuer.new()
    (tmp_path / "a.pem").write_bytes(ISSUER.pem())
    (tmp_path / "b.der").write_bytes(other.der())
    (tmp_path / "notes.txt").write_text("ignored")
    folder = load_trust_list(tmp_path)
    assert folder.signers(ISSUER.kid) and folder.signers(other.kid) and folder.size == 2
    assert load_trust_list(tmp_path / "a.pem").signers(ISSUER.kid)
    assert load_trust_list(tmp_path / "b.der").signers(other.kid)
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(ISSUER.pem() + other.pem())
    assert load_trust_list(bundle).size == 2
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([
        {"kid": base64.b64encode(ISSUER.kid).decode(), "country": "VN", "rawData": base64.b64encode(ISSUER.der()).decode()},
        base64.b64encode(other.der()).decode(),
        {"certificate": other.pem().decode()},
    ]))
    assert load_trust_list(listing).size == 3
    (tmp_path / "obj.json").write_text(json.dumps({"certificates": [base64.b64encode(ISSUER.der()).decode()]}))
    assert hc1.evaluate(ISSUER.hc1(), load_trust_list(tmp_path / "obj.json"), NOW_MS).accepted


@pytest.mark.parametrize("content, words", [
    (b"", "not an X.509"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM"),
    (b"[{\"rawData\": \"%%%\"}]", "entry 0: not valid base64"),
    (b"[{\"kid\": \"AAAA\"}]", "entry 0: no 'rawData'"),
    (b"{\"x\": 1}", "'certificates' list"),
    (b"[\"AAAA\"]", "entry 0: not an X.509"),
    (b"{not json", "not a JSON trust list"),
])
def test_bad_trust_lists_name_file_and_entry(tmp_path, content, words):
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    with pytest.raises(TrustListError, match=words) as err:
        load_trust_list(path)
    assert str(path) in str(err.value)


def test_missing_or_empty_trust_folder(tmp_path):
    with pytest.raises(TrustListError, match="no such file"):
        load_trust_list(tmp_path / "nope")
    with pytest.raises(TrustListError, match="holds no certificate"):
        load_trust_list(tmp_path)


def test_the_registry_loads_the_hc1_reader_only_for_what_it_would_claim():
    """LazyHc1Format's first look (Base45 from the fifth byte; a context prefix or 30 bytes) passes on
    every payload Hc1Format.detect would claim: the same answer on real certificates, their damaged
    and truncated forms, Base45 text with and without prefixes, and other codes."""
    import random
    import zlib

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kiosk.credentials import LazyHc1Format

    lazy, real = LazyHc1Format(TrustList()), hc1.Hc1Format(TrustList())
    alphabet = hc1.BASE45_ALPHABET
    rng = random.Random(14)

    def b45(data: bytes) -> bytes:
        out = bytearray()
        for i in range(0, len(data), 2):
            n = int.from_bytes(data[i:i + 2], "big")
            digits = 3 if len(data[i:i + 2]) == 2 else 2
            for _ in range(digits):
                n, d = divmod(n, 45)
                out.append(alphabet[d])
        return bytes(out)

    samples = [b"", b"HC1:", b"HC1", b"NCFOXN%TS3DH", b"001234567890|123456789|NGUYEN VAN AN", b"BENCH-00000000FFFF"]
    for _ in range(3000):
        body = b45(zlib.compress(rng.randbytes(rng.randint(0, 60))))[: rng.randint(0, 90)]
        samples += [body, b"HC1:" + body, b"XY9:" + body, b"hc1:" + body, body + b"|"]
    for payload in samples:
        assert lazy.detect(payload) == real.detect(payload), payload

    @settings(max_examples=2000, deadline=None)
    @given(st.one_of(st.binary(max_size=64), st.text(alphabet=(alphabet + b"abc|").decode(), max_size=64).map(str.encode)))
    def same(payload: bytes) -> None:
        assert lazy.detect(payload) == real.detect(payload)

    same()
