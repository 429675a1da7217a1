"""A vaccine-certificate signer of our own: for the benchmark, the demo and the tests.

A real kiosk never signs anything; this exists so the verifier can be exercised with certificates
that are fresh (the public test data expired in 2021) and built layer by layer with the same
libraries a real issuer uses (cryptography, cbor2, zlib, base45).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import base45
import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kiosk.credentials.trust import kid_of

VACCINATION_OID = "1.3.6.1.4.1.1847.2021.1.2"

VIETNAMESE_DCC = {
    "ver": "1.3.0",
    "nam": {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn An", "gnt": "VAN<AN"},
    "dob": "1990-01-01",
    "v": [{"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215", "dn": 2, "sd": 2,
           "dt": "2021-09-01", "co": "VN", "is": "Bộ Y tế", "ci": "URN:UVCI:01:VN:ABC123456789#X"}],
}


@dataclass
class Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, usages: tuple[str, ...] = (VACCINATION_OID,), name: str = "Test DSC VN",
            valid_from: dt.datetime | None = None, valid_until: dt.datetime | None = None) -> "Issuer":
        """A self-signed document signer; valid from 400 days ago to 400 days ahead unless told otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(valid_from or now - dt.timedelta(days=400))
                   .not_valid_after(valid_until or now + dt.timedelta(days=400)))
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(u) for u in usages]), critical=False)
        return cls(key, builder.sign(key, hashes.SHA256()))

    @property
    def kid(self) -> bytes:
        return kid_of(self.cert)

    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    def cose(self, dcc: dict, iat: int, exp: int, kid: bytes | None = None) -> bytes:
        claims = {1: "VN", 4: exp, 6: iat, -260: {1: dcc}}
        protected = cbor2.dumps({1: -7, 4: kid if kid is not None else self.kid})
        payload = cbor2.dumps(claims)
        to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
        r, s = decode_dss_signature(self.key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))

    def hc1(self, dcc: dict | None = None, iat: int | None = None, exp: int | None = None, **kw) -> bytes:
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        iat = now - 86400 if iat is None else iat
        exp = now + 365 * 86400 if exp is None else exp
        return b"HC1:" + base45.b45encode(zlib.compress(self.cose(dcc or VIETNAMESE_DCC, iat, exp, **kw), 9))


def hc1_from_cose(cose: bytes) -> bytes:
    return b"HC1:" + base45.b45encode(zlib.compress(cose, 9))
