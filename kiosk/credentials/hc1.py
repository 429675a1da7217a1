"""Vaccine certificates: the EU Digital COVID Certificate ("HC1:" codes), which Vietnam's follow.

Layers, outermost first: the context prefix ``HC1:``, Base45, zlib, COSE_Sign1 (CBOR), and inside it
a CBOR Web Token whose claim -260/1 holds the certificate (JSON-like: name, date of birth, one
vaccination, test or recovery entry). A layer that fails names itself in the verdict (``layer``).
Then, independently so ``kiosk inspect`` can show all of them, the checks EU verifiers make: the
signature against the offline trust list, the signer certificate's validity at the certificate's
issue time, the signer's key usage against the certificate type, issued-at/expiry against the
clock, and the fields the check-in reads (names, birth date, one certificate entry). The full DCC
schema is reported as deviations, never decisive: genuine certificates differ from the latest
schema in fields the kiosk never reads (docs/credentials.md).

Hostile input is bounded at every step: the payload is at most a QR code's size, decompression
stops at MAX_COSE_BYTES however well the input compresses, CBOR nesting is capped, CBOR semantic
tags are never interpreted (no regular expressions or MIME parsing from a stranger's phone), and
strings longer than any field of the schema are refused before the schema's patterns run.
"""

from __future__ import annotations

import functools
import io
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:  # cryptography is imported where a signature is checked: most scans never need it
    from cryptography import x509

from kiosk.credentials.base import (ACCEPTED, BASE45_ALPHABET, REJECTED, Credential, FormatContext, masked_name,
                                    rejected)
from kiosk.credentials.trust import TrustList

KIND = "hc1"
PREFIX = b"HC1:"
MAX_COSE_BYTES = 64 * 1024  # a QR code holds < 2 KB of zlib data; real certificates inflate to < 4 KB
MAX_CBOR_DEPTH = 32
MAX_DCC_STRING = 100  # the schema's longest field is 80 characters; its patterns are slow on long input
_PREFIX_LIKE = re.compile(rb"[A-Z]{2}[0-9A-Z]:")

ES256, PS256 = -7, -37
HEADER_ALG, HEADER_KID = 1, 4
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_HCERT = 1, 4, 6, -260
TAG_COSE_SIGN1, TAG_CWT = 18, 61

# Extended key usage OIDs that restrict a document signer to certificate types (test, vaccination,
# recovery). Both arcs are in use: the one the EU specified and the one most issuers encoded.
KEY_USAGE_OIDS = {
    "t": {"1.3.6.1.4.1.1847.2021.1.1", "1.3.6.1.4.1.0.1847.2021.1.1"},
    "v": {"1.3.6.1.4.1.1847.2021.1.2", "1.3.6.1.4.1.0.1847.2021.1.2"},
    "r": {"1.3.6.1.4.1.1847.2021.1.3", "1.3.6.1.4.1.0.1847.2021.1.3"},
}

def _cbor2() -> Any:
    """cbor2, imported by the first certificate read: a kiosk reading other codes never loads it."""
    import cbor2

    return cbor2


# Semantic tags cbor2 would otherwise turn into Python objects (dates, regular expressions, MIME
# messages, shared references...). Here every tag stays an inert CBORTag.
_CBOR_SEMANTIC_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)
_INERT_TAGS = {tag: (lambda value, immutable, tag=tag: _cbor2().CBORTag(tag, value)) for tag in _CBOR_SEMANTIC_TAGS}


class Malformed(ValueError):
    """A layer that cannot be read: ``layer`` is one of prefix, base45, zlib, cbor, cose, cwt."""

    def __init__(self, layer: str, detail: str):
        super().__init__(f"{layer}: {detail}")
        self.layer = layer


# ---- the layers ---------------------------------------------------------------------------------
def unprefix(payload: bytes) -> bytes:
    if not payload.startswith(PREFIX):
        raise Malformed("prefix", "does not start with HC1:")
    return payload[len(PREFIX):]


def base45_decode(text: bytes) -> bytes:
    import base45

    try:
        return base45.b45decode(text)
    except ValueError:
        raise Malformed("base45", "not Base45") from None


def inflate(data: bytes, limit: int = MAX_COSE_BYTES) -> bytes:
    """zlib-decompress at most ``limit`` bytes: a zlib bomb costs ``limit`` bytes of memory, no more."""
    if len(data) < 2 or data[0] & 0x0F != 8 or ((data[0] << 8) | data[1]) % 31:
        raise Malformed("zlib", "not zlib-compressed")
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(data, limit + 1)
    except zlib.error:
        raise Malformed("zlib", "broken stream") from None
    if len(out) > limit or stream.unconsumed_tail:
        raise Malformed("zlib", f"inflates to more than {limit} bytes")
    if not stream.eof:
        raise Malformed("zlib", "truncated stream")
    if stream.unused_data:
        raise Malformed("zlib", "bytes after the stream")
    return out


def decode_cbor(data: bytes, layer: str) -> Any:
    """One CBOR item filling ``data`` exactly, tags left uninterpreted, nesting capped."""
    fp = io.BytesIO(data)
    try:
        item = _cbor2().CBORDecoder(fp, semantic_decoders=_INERT_TAGS, max_depth=MAX_CBOR_DEPTH, read_size=1).decode()
    except Exception:  # noqa: BLE001 - cbor2 raises several types on hostile input; all mean "not CBOR"
        raise Malformed(layer, "not CBOR") from None
    if fp.tell() != len(data):
        raise Malformed(layer, "bytes after the CBOR item")
    return item


@dataclass(frozen=True)
class CoseSign1:
    protected_bytes: bytes
    protected: Mapping
    unprotected: Mapping
    payload: bytes
    signature: bytes

    def header(self, label: int) -> Any:
        """Protected header first: an unprotected kid cannot override a protected one."""
        return self.protected[label] if label in self.protected else self.unprotected.get(label)

    def to_be_signed(self) -> bytes:
        return _cbor2().dumps(["Signature1", self.protected_bytes, b"", self.payload])


def parse_cose(data: bytes) -> CoseSign1:
    item = decode_cbor(data, "cbor")
    for tag in (TAG_CWT, TAG_COSE_SIGN1):  # both optional; "double tagged" codes exist
        if isinstance(item, _cbor2().CBORTag) and item.tag == tag:
            item = item.value
    if not isinstance(item, (list, tuple)) or len(item) != 4:
        raise Malformed("cose", "not a COSE_Sign1 array")
    protected_bytes, unprotected, payload, signature = item
    if not (isinstance(protected_bytes, bytes) and isinstance(unprotected, Mapping)
            and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise Malformed("cose", "COSE_Sign1 members of the wrong type")
    protected = decode_cbor(protected_bytes, "cose") if protected_bytes else {}
    if not isinstance(protected, Mapping):
        raise Malformed("cose", "protected header is not a map")
    return CoseSign1(protected_bytes, protected, unprotected, payload, signature)


@dataclass(frozen=True)
class Cwt:
    issuer: str | None
    issued_at: float
    expires: float
    dcc: Mapping


def _numeric_date(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 2**40


def parse_cwt(payload: bytes) -> Cwt:
    claims = decode_cbor(payload, "cbor")
    if not isinstance(claims, Mapping):
        raise Malformed("cwt", "claims are not a map")
    iat, exp, iss = claims.get(CLAIM_IAT), claims.get(CLAIM_EXP), claims.get(CLAIM_ISS)
    if not (_numeric_date(iat) and _numeric_date(exp)):
        raise Malformed("cwt", "issued-at or expiry missing")
    hcert = claims.get(CLAIM_HCERT)
    dcc = hcert.get(1) if isinstance(hcert, Mapping) else None
    if not isinstance(dcc, Mapping):
        raise Malformed("cwt", "no certificate under claim -260")
    return Cwt(iss if isinstance(iss, str) else None, iat, exp, dcc)


# ---- the checks ---------------------------------------------------------------------------------
def _verify_with(cert: x509.Certificate, alg: Any, signature: bytes, data: bytes) -> bool:
    """ES256 is ECDSA with SHA-256 and a raw r||s signature; COSE does not bind it to one curve, and
    issuers do sign "ES256" with P-384 keys, so the signature length follows the key's size."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        key = cert.public_key()
        if alg == ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == PS256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
            return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return False  # an algorithm we do not support, or a key that does not fit it


def verify_signature(cose: CoseSign1, trust: TrustList) -> tuple[str, x509.Certificate | None]:
    """("valid", signer) | ("invalid", None) | ("untrusted", None); every certificate with the kid is tried."""
    kid = cose.header(HEADER_KID)
    signers = trust.signers(kid) if isinstance(kid, bytes) else ()
    if not signers:
        return "untrusted", None
    data = cose.to_be_signed()
    for cert in signers:
        if _verify_with(cert, cose.header(HEADER_ALG), cose.signature, data):
            return "valid", cert
    return "invalid", None


def certificate_types(dcc: Mapping) -> set[str]:
    return {t for t in ("v", "t", "r") if dcc.get(t)}


@functools.lru_cache(maxsize=1024)  # per trusted certificate: parsed once, not at every scan
def _extended_key_usage(cert: x509.Certificate) -> frozenset[str] | None:
    """The signer's extended key usage OIDs, None when it has none.

    Read with asn1crypto, which tolerates what issuers really ship (an encoded default in
    BasicConstraints, an empty usage list) where cryptography's strict DER parser refuses the
    certificate's extensions as a whole.
    """
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding

    usage = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).extended_key_usage_value
    return None if usage is None else frozenset(oid.dotted for oid in usage)


def check_key_usage(cert: x509.Certificate, types: set[str]) -> str:
    """valid | invalid | absent (the signer carries no DCC key usage, so it may sign every type)."""
    try:
        oids = _extended_key_usage(cert)
    except Exception:  # noqa: BLE001 - an unreadable extension: do not guess in the holder's favour
        return "invalid"
    allowed = {t for t, ids in KEY_USAGE_OIDS.items() if oids and oids & ids}
    if not allowed:
        return "absent"
    return "valid" if types and types <= allowed else "invalid"


def check_signer_validity(cert: x509.Certificate, cwt: Cwt) -> str:
    """valid | expired | not-yet-valid: was the signer's own certificate valid when it signed (issued-at)?

    A document signer past its validity signs nothing genuine: its key may since have leaked.
    """
    signed_at = datetime.fromtimestamp(cwt.issued_at, tz=timezone.utc)
    if signed_at < cert.not_valid_before_utc:
        return "not-yet-valid"
    if signed_at > cert.not_valid_after_utc:
        return "expired"
    return "valid"


def check_expiry(cwt: Cwt, now_utc_ms: int) -> str:
    now = now_utc_ms / 1000
    if now < cwt.issued_at:
        return "not-yet-valid"
    if now > cwt.expires:  # valid up to and including the expiry second
        return "expired"
    return "valid"


class NotJson(ValueError):
    """CBOR content with no JSON meaning (byte strings, unknown tags, non-text keys, overlong text)."""


def to_json(value: Any) -> Any:
    """The certificate as the JSON the schema describes; tag 0 (date-time text) and 1 (epoch) allowed."""
    if isinstance(value, _cbor2().CBORTag):
        if value.tag == 0 and isinstance(value.value, str):
            return to_json(value.value)
        if value.tag == 1 and _numeric_date(value.value):
            try:
                return datetime.fromtimestamp(value.value, tz=timezone.utc).isoformat().replace("+00:00", "Z")
            except (OverflowError, OSError, ValueError):  # past year 9999 or before year 1
                raise NotJson("date out of range") from None
        raise NotJson(f"tag {value.tag}")
    if isinstance(value, str):
        if len(value) > MAX_DCC_STRING:
            raise NotJson("overlong text")
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise NotJson("non-text key")
        return {k: to_json(v) for k, v in value.items()}
    raise NotJson(type(value).__name__)


@functools.cache
def _schema_validator() -> Any:
    from importlib import resources  # with tempfile and shutil: only when a certificate is checked

    import jsonschema

    text = resources.files("kiosk.credentials").joinpath("dcc_schema/DCC.combined-schema.json").read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text), format_checker=jsonschema.FormatChecker(["date"]))


MAX_DEVIATIONS = 10


def schema_deviations(dcc: Mapping) -> list[str]:
    """Where the certificate departs from the DCC schema, as ``path: rule`` (never a value: names are data)."""
    try:
        errors = sorted(_schema_validator().iter_errors(to_json(dcc)), key=lambda e: list(map(str, e.absolute_path)))
    except NotJson as exc:
        return [f"(content): not JSON ({exc})"]
    except RecursionError:
        return ["(content): nested too deeply"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.validator}" for e in errors[:MAX_DEVIATIONS]]


_ICAO_NAME = re.compile(r"[A-Z<]{0,80}")
_BIRTH_DATE = re.compile(r"([0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?)?")  # the schema's forms; empty = unknown


def check_fields(dcc: Mapping) -> str:
    """valid | invalid: only what the check-in reads (identity from nam.fnt, nam.gnt and dob; the
    names shown; one vaccination, test or recovery entry), in the form the schema gives it."""
    nam = dcc.get("nam")
    if not isinstance(nam, Mapping):
        return "invalid"
    icao = [nam.get(k, "") for k in ("fnt", "gnt")]  # either may be empty (mononyms), not both
    if not all(isinstance(n, str) and _ICAO_NAME.fullmatch(n) for n in icao) or not any(icao):
        return "invalid"
    if any(not isinstance(nam.get(k, ""), str) or len(nam.get(k, "")) > 80 for k in ("fn", "gn")):
        return "invalid"
    dob = dcc.get("dob")
    if not (isinstance(dob, str) and _BIRTH_DATE.fullmatch(dob)):
        return "invalid"
    entries = [dcc[t] for t in ("v", "t", "r") if t in dcc]
    if len(entries) != 1 or not isinstance(entries[0], (list, tuple)) or len(entries[0]) != 1 \
            or not isinstance(entries[0][0], Mapping):
        return "invalid"
    return "valid"


# ---- identity -----------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def subject_of(dcc: Mapping) -> str:
    """A stable identity across a person's certificates: ICAO-transliterated names and date of birth."""
    nam = dcc.get("nam") if isinstance(dcc.get("nam"), Mapping) else {}
    fnt, gnt = (" ".join(_text(nam.get(k)).upper().replace("<", " ").split()).replace(" ", "<") for k in ("fnt", "gnt"))
    return f"{fnt}<<{gnt}|{_text(dcc.get('dob'))}"


def display_name_of(dcc: Mapping) -> str:
    nam = dcc.get("nam") if isinstance(dcc.get("nam"), Mapping) else {}
    family = _text(nam.get("fn")) or _text(nam.get("fnt")).replace("<", " ")
    given = _text(nam.get("gn")) or _text(nam.get("gnt")).replace("<", " ")
    return masked_name(family, given)


# ---- the format ---------------------------------------------------------------------------------
_REASON_ORDER = (
    ("signature", "untrusted", "untrusted-signer"),
    ("signature", "invalid", "invalid-signature"),
    ("signer_validity", "expired", "signer-not-valid"),
    ("signer_validity", "not-yet-valid", "signer-not-valid"),
    ("key_usage", "invalid", "wrong-key-usage"),
    ("fields", "invalid", "invalid-schema"),
    ("expiry", "expired", "expired"),
    ("expiry", "not-yet-valid", "not-yet-valid"),
)


def evaluate(payload: bytes, trust: TrustList, now_utc_ms: int) -> Credential:
    """Every check on one HC1 payload; the reason is the most serious failure (a forgery before a date)."""
    try:
        cose = parse_cose(inflate(base45_decode(unprefix(payload))))
        cwt = parse_cwt(cose.payload)
    except Malformed as exc:
        return rejected(KIND, "malformed", layer=exc.layer)
    signature, signer = verify_signature(cose, trust)
    types = certificate_types(cwt.dcc)
    deviations = schema_deviations(cwt.dcc)
    verdicts = {
        "signature": signature,
        "signer_validity": check_signer_validity(signer, cwt) if signer is not None else None,
        "key_usage": check_key_usage(signer, types) if signer is not None else None,
        "expiry": check_expiry(cwt, now_utc_ms),
        "fields": check_fields(cwt.dcc),
        "schema": "deviations" if deviations else "valid",  # reported, not decisive
    }
    facts: dict[str, Any] = {"verdicts": verdicts, "certificate_type": "".join(sorted(types)) or None}
    if deviations:
        facts["schema_deviations"] = deviations
    if cwt.issuer is not None and re.fullmatch(r"[A-Z]{2,3}", cwt.issuer):
        facts["issuer"] = cwt.issuer
    reason = next((r for key, value, r in _REASON_ORDER if verdicts[key] == value), "ok")
    # A name is shown only from a genuine certificate (even an expired one); never from a forgery.
    display = display_name_of(cwt.dcc) if signature == "valid" else ""
    if reason != "ok":
        return Credential(KIND, REJECTED, reason, display_name=display, facts=facts)
    return Credential(KIND, ACCEPTED, "ok", subject=subject_of(cwt.dcc), display_name=display, facts=facts)


def _looks_like_bare_base45_zlib(payload: bytes) -> bool:
    """A certificate whose context prefix is missing: Base45 text that starts with a zlib header."""
    if len(payload) < 30 or payload.translate(None, BASE45_ALPHABET):
        return False
    try:
        head = base45_decode(payload[:3])
    except Malformed:
        return False
    return len(head) == 2 and head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0


class Hc1Format:
    """Claims ``XXn:`` + Base45 (any context prefix, so a wrong one is reported) and bare Base45 zlib."""

    kind = KIND

    def __init__(self, trust: TrustList):
        self.trust = trust

    def detect(self, payload: bytes) -> bool:
        if _PREFIX_LIKE.match(payload):
            return not payload[4:].translate(None, BASE45_ALPHABET)
        return _looks_like_bare_base45_zlib(payload)

    def parse(self, payload: bytes, ctx: FormatContext) -> Credential:
        return evaluate(payload, self.trust, ctx.now_utc_ms)
