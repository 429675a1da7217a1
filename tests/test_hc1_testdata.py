"""Every case of the EU DCC public test data (tests/data/dgc-testdata) gives its EXPECTEDRESULTS.

Each EXPECTED* key names one step of a verifier (see the README beside the data); a case sets only
the keys it tests. True means the step must succeed, False that it must fail. The whole chain is
always run too, through the same ``evaluate`` the kiosk uses, at the case's VALIDATIONCLOCK with
the case's signer certificate as the only trusted one.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import cbor2
import numpy as np
import pytest
from cryptography import x509
from PIL import Image

from kiosk.credentials import hc1
from kiosk.core.clock import parse_instant_ms
from kiosk.credentials.trust import TrustList
from scanner.decode import decode_frame
from scanner.render import render_code, scene

DATA = Path(__file__).parent / "data" / "dgc-testdata"
CASES = sorted(DATA.glob("*/2DCode/raw/*.json"))
# Keys some files misspell or use for the whole outcome; mapped onto the step they mean.
ALIASES = {"EXPTECTEDEXPIRED": "EXPECTEDEXPIRATIONCHECK"}
KNOWN = {"EXPECTEDVALIDOBJECT", "EXPECTEDSCHEMAVALIDATION", "EXPECTEDENCODE", "EXPECTEDDECODE", "EXPECTEDVERIFY",
         "EXPECTEDCOMPRESSION", "EXPECTEDKEYUSAGE", "EXPECTEDUNPREFIX", "EXPECTEDVALIDJSON", "EXPECTEDB45DECODE",
         "EXPECTEDPICTUREDECODE", "EXPECTEDEXPIRATIONCHECK", "EXPECTEDRESULTS"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def canonical(value):
    """Map ordering and CBOR-vs-JSON spelling aside, the same certificate compares equal."""
    return json.dumps(hc1.to_json(value), sort_keys=True)


def dcc_of_cbor_field(case: dict):
    """The CBOR field holds the certificate, or in some files the whole claims map around it."""
    item = hc1.decode_cbor(bytes.fromhex(case["CBOR"]), "cbor")
    return item[hc1.CLAIM_HCERT][1] if isinstance(item, Mapping) and hc1.CLAIM_HCERT in item else item


def picture_of(case: dict, path: Path) -> np.ndarray:
    """The case's QR image: its 2DCODE field, else the image the French set keeps beside it; B1 ships
    none in this subset, so its PREFIX is rendered the way the synthetic camera renders codes."""
    if "2DCODE" in case:
        source = io.BytesIO(base64.b64decode(case["2DCODE"]))
    else:
        pngs = path.parent.parent.parent / "png"
        names = [path.stem.removesuffix("_Raw"), path.stem.removesuffix("_Raw").replace("_", "-", 1)]
        found = [pngs / f"{n}.png" for n in names if (pngs / f"{n}.png").exists()]
        if not found:
            return scene(640, 640, render_code(case["PREFIX"].encode(), module_px=4))
        source = found[0]
    with Image.open(source) as img:
        return np.asarray(img.convert("L"))


def same_but_for_local_time_written_as_utc(cbor_dcc, json_dcc) -> bool:
    """FR/test_pcr_ok's JSON says 12:34:56Z where its CBOR (and signed payload) say 14:34:56Z: the
    generator wrote Paris summer time with a Z. That data defect is the only difference tolerated."""
    def shift(dcc):
        dcc = json.loads(json.dumps(dcc))
        for entry in dcc.get("t", []):
            for key in ("sc", "dr"):
                if key in entry:
                    entry[key] = (datetime.fromisoformat(entry[key].replace("Z", "+00:00")) - timedelta(hours=2)).isoformat()
        return json.dumps(dcc, sort_keys=True)

    def plain(dcc):
        dcc = json.loads(json.dumps(dcc))
        for entry in dcc.get("t", []):
            for key in ("sc", "dr"):
                if key in entry:
                    entry[key] = datetime.fromisoformat(entry[key].replace("Z", "+00:00")).isoformat()
        return json.dumps(dcc, sort_keys=True)

    return shift(hc1.to_json(cbor_dcc)) == plain(json_dcc)


KNOWN_DATA_DEFECTS = {"FR/test_pcr_ok"}


def matches_json(dcc, case: dict, path: Path) -> bool:
    if canonical(dcc) == json.dumps(case["JSON"], sort_keys=True):
        return True
    name = f"{path.relative_to(DATA).parts[0]}/{path.stem}"
    return name in KNOWN_DATA_DEFECTS and same_but_for_local_time_written_as_utc(dcc, case["JSON"])


def trust_of(case: dict) -> TrustList:
    cert = x509.load_der_x509_certificate(base64.b64decode(case["TESTCTX"]["CERTIFICATE"]))
    return TrustList.of([(cert, None)], "test case")


def full_chain(case: dict):
    clock = parse_instant_ms(case["TESTCTX"]["VALIDATIONCLOCK"])
    return hc1.evaluate(case["PREFIX"].encode(), trust_of(case), clock)


def check(step: str, case: dict, path: Path) -> bool:
    """Run one verifier step on the case's own fields; True if the step succeeds."""
    result = full_chain(case)
    verdicts = result.facts.get("verdicts", {})
    try:
        if step == "EXPECTEDUNPREFIX":
            ok = hc1.unprefix(case["PREFIX"].encode()) == case["BASE45"].encode() if "BASE45" in case else True
            return ok and result.facts.get("layer") != "prefix"
        if step == "EXPECTEDB45DECODE":
            ok = hc1.base45_decode(case["BASE45"].encode()) == bytes.fromhex(case["COMPRESSED"]) if "COMPRESSED" in case \
                else bool(hc1.base45_decode(case["BASE45"].encode()))
            return ok and result.facts.get("layer") != "base45"
        if step == "EXPECTEDCOMPRESSION":
            ok = hc1.inflate(bytes.fromhex(case["COMPRESSED"])) == bytes.fromhex(case["COSE"])
            return ok and result.facts.get("layer") != "zlib"
        if step == "EXPECTEDPICTUREDECODE":
            try:
                luma = picture_of(case, path)
            except (OSError, ValueError):  # Q1: "QR code cannot be read" holds no image at all
                return False
            return decode_frame(luma)[:1] == [case["PREFIX"].encode()]
        if step == "EXPECTEDDECODE":
            cwt = hc1.parse_cwt(hc1.parse_cose(bytes.fromhex(case["COSE"])).payload) if "COSE" in case else None
            expected = dcc_of_cbor_field(case)
            ok = cwt is None or canonical(cwt.dcc) == canonical(expected)
            if "JSON" in case:
                ok = ok and matches_json(expected, case, path)
            return ok and "layer" not in result.facts
        if step == "EXPECTEDVERIFY":
            if "COSE" in case:
                signature, _ = hc1.verify_signature(hc1.parse_cose(bytes.fromhex(case["COSE"])), trust_of(case))
                assert signature == verdicts.get("signature", signature)
                return signature == "valid"
            return verdicts.get("signature") == "valid"
        if step == "EXPECTEDVALIDJSON":
            cwt = hc1.parse_cwt(hc1.parse_cose(hc1.inflate(hc1.base45_decode(hc1.unprefix(case["PREFIX"].encode())))).payload)
            return matches_json(cwt.dcc, case, path)
        if step == "EXPECTEDSCHEMAVALIDATION":
            return verdicts.get("schema") == "valid"
        if step == "EXPECTEDVALIDOBJECT":
            return hc1.schema_deviations(case["JSON"]) == []
        if step == "EXPECTEDENCODE":
            reencoded = hc1.decode_cbor(cbor2.dumps(case["JSON"]), "cbor")
            return canonical(reencoded) == canonical(dcc_of_cbor_field(case))
        if step == "EXPECTEDEXPIRATIONCHECK":
            return verdicts.get("expiry") == "valid"
        if step == "EXPECTEDKEYUSAGE":
            return verdicts.get("signature") == "valid" and verdicts.get("key_usage") in ("valid", "absent")
        if step == "EXPECTEDRESULTS":  # some files use it for the verdict as a whole
            return result.accepted
    except hc1.Malformed:
        return False
    raise AssertionError(f"unknown step {step}")


STEPS = [(path, ALIASES.get(key, key), value)
         for path in CASES for key, value in (load(path)["EXPECTEDRESULTS"] or {}).items()]


def test_the_whole_subset_is_here():
    assert len(CASES) == 153
    assert KNOWN_DATA_DEFECTS == {"FR/test_pcr_ok"}  # and its JSON really differs: see test below
    assert {key for _, key, _ in STEPS} <= KNOWN
    assert len(STEPS) > 1000


@pytest.mark.parametrize("path, step, expected", STEPS,
                         ids=[f"{p.relative_to(DATA).parts[0]}/{p.stem}-{k.removeprefix('EXPECTED')}" for p, k, _ in STEPS])
def test_expected_result(path, step, expected):
    case = load(path)
    assert check(step, case, path) is expected, case["TESTCTX"].get("DESCRIPTION")


@pytest.mark.parametrize("path", CASES, ids=[f"{p.relative_to(DATA).parts[0]}/{p.stem}" for p in CASES])
def test_verdict_agrees_with_every_expectation(path):
    """The kiosk's single verdict: accepted exactly when no expected step fails."""
    case = load(path)
    expected = {ALIASES.get(k, k): v for k, v in (case["EXPECTEDRESULTS"] or {}).items()}
    relevant = {k: v for k, v in expected.items() if k not in ("EXPECTEDPICTUREDECODE", "EXPECTEDENCODE", "EXPECTEDVALIDOBJECT")}
    result = full_chain(case)
    if False in relevant.values():
        assert not result.accepted
    assert result.kind == "hc1" and result.reason in {"ok", "malformed", "expired", "not-yet-valid", "untrusted-signer",
                                                      "invalid-signature", "signer-not-valid", "invalid-schema",
                                                      "wrong-key-usage"}
    if result.accepted:
        assert result.subject and "<<" in result.subject and result.display_name


def test_the_tolerated_defect_is_real_and_narrow():
    """Without the tolerance FR/test_pcr_ok's JSON does not match; with it, only sc/dr were off by 2 h."""
    path = DATA / "FR/2DCode/raw/test_pcr_ok.json"
    case = load(path)
    dcc = dcc_of_cbor_field(case)
    assert canonical(dcc) != json.dumps(case["JSON"], sort_keys=True)
    assert same_but_for_local_time_written_as_utc(dcc, case["JSON"])
    tampered = json.loads(json.dumps(case["JSON"]))
    tampered["nam"]["gn"] = "Marc"
    assert not same_but_for_local_time_written_as_utc(dcc, tampered)
