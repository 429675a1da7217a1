"""The offline trust list for vaccine certificates: which document signer certificates (DSCs) we accept.

A kiosk cannot ask a gateway at scan time, so signers come from a file copied onto the device:
- one certificate, PEM (possibly several in one file) or DER;
- a folder of such files (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``);
- a JSON trust list: a list (or ``{"certificates": [...]}``) whose items are base64 DER strings or
  objects with the certificate in ``rawData`` (the EU gateway's field name), ``certificate`` or
  ``cert`` (base64 DER or PEM) and optionally its ``kid`` (base64).

Certificates are indexed by key id, the first 8 bytes of SHA-256 over the DER certificate, which is
what issuers put in the COSE header; a kid declared in a JSON list is indexed too. Several
certificates may share a kid, so lookups return all of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from kiosk.core.frozen import Frozen, frozen

if TYPE_CHECKING:  # imported where certificates are read: most scans never need them
    from cryptography import x509

MAX_FILE_BYTES = 16 * 2**20
MAX_CERTIFICATES = 100_000
CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}


class TrustListError(ValueError):
    """A trust list that cannot be used; the message names the file (and entry) at fault."""


def kid_of(cert: x509.Certificate) -> bytes:
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()[:8]


@frozen
class TrustList(Frozen):
    """Document signer certificates by key id (several may share one)."""

    by_kid: dict[bytes, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    source: str = "empty"

    def signers(self, kid: bytes) -> tuple[x509.Certificate, ...]:
        return self.by_kid.get(kid, ())

    @property
    def size(self) -> int:
        return len({id(c) for certs in self.by_kid.values() for c in certs})

    @classmethod
    def of(cls, certificates: Iterable[tuple[x509.Certificate, bytes | None]], source: str) -> "TrustList":
        index: dict[bytes, list[x509.Certificate]] = defaultdict(list)
        for cert, declared in certificates:
            for kid in {kid_of(cert), declared or kid_of(cert)}:
                index[kid].append(cert)
        return cls({kid: tuple(certs) for kid, certs in index.items()}, source)


def _decode_certificate(data: bytes, where: str) -> x509.Certificate:
    from cryptography import x509

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise TrustListError(f"{where}: not an X.509 certificate ({exc})") from None


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise TrustListError(f"{where}: expected a base64 string")
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise TrustListError(f"{where}: not valid base64") from None


def _json_entries(data: bytes, name: str) -> list[tuple[x509.Certificate, bytes | None]]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrustListError(f"{name}: not a JSON trust list ({exc})") from None
    if isinstance(doc, dict):
        doc = doc.get("certificates")
    if not isinstance(doc, list):
        raise TrustListError(f"{name}: a JSON trust list is a list, or an object with a 'certificates' list")
    out = []
    for i, item in enumerate(doc):
        where = f"{name} entry {i}"
        declared = None
        if isinstance(item, dict):
            raw = next((item[k] for k in ("rawData", "certificate", "cert") if k in item), None)
            if raw is None:
                raise TrustListError(f"{where}: no 'rawData', 'certificate' or 'cert'")
            if item.get("kid") is not None:
                declared = _b64(item["kid"], f"{where} kid")
        else:
            raw = item
        text = raw.encode() if isinstance(raw, str) and raw.lstrip().startswith("-----BEGIN") else None
        out.append((_decode_certificate(text or _b64(raw, where), where), declared))
    return out


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TrustListError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise TrustListError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MB")
    return data


def _file_entries(path: Path) -> list[tuple[x509.Certificate, bytes | None]]:
    from cryptography import x509

    data = _read(path)
    head = data.lstrip()[:1]
    if head in (b"[", b"{"):
        return _json_entries(data, str(path))
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return [(c, None) for c in x509.load_pem_x509_certificates(data)]
        except ValueError as exc:
            raise TrustListError(f"{path}: not a PEM certificate ({exc})") from None
    return [(_decode_certificate(data, str(path)), None)]


def load_trust_list(path: str | Path) -> TrustList:
    """Read a certificate, a folder of them or a JSON list; raises TrustListError on anything unusable."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CERT_SUFFIXES | {".json"})
        if not files:
            raise TrustListError(f"{path}: folder holds no certificate (*.pem, *.crt, *.cer, *.der, *.json)")
        entries = [e for f in files for e in _file_entries(f)]
    elif path.exists():
        entries = _file_entries(path)
    else:
        raise TrustListError(f"{path}: no such file or folder")
    if len(entries) > MAX_CERTIFICATES:
        raise TrustListError(f"{path}: more than {MAX_CERTIFICATES} certificates")
    return TrustList.of(entries, str(path))
