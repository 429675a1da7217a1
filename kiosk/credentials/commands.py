"""Credential commands: ``kiosk inspect`` for anyone checking a code, and the authority's own tools
(``kiosk authority-keys``, ``kiosk provisioning-code make``) so codes and keys can be made for real."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kiosk.core.clock import parse_instant_ms

MAX_FILE_BYTES = 65536 + 2  # the largest payload the config allows, plus a line ending


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="classify and verify one code without recording anything; one JSON object")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("payload", nargs="?", help="the code's text")
    src.add_argument("--file", type=Path, metavar="F", help="read the payload from a file (one trailing newline ignored)")
    p.add_argument("--trust", metavar="PATH", help="HC1 signers: PEM/DER certificate, folder, or JSON trust list "
                   "(default: formats.hc1_trust)")
    p.add_argument("--at", metavar="ISO8601", help="evaluate validity at this time (default: now; no zone = UTC)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("authority-keys", help="the health authority's tool: make its sealing and provisioning key pairs")
    p.add_argument("folder", type=Path, help="new folder for the keys (private files are 0600)")
    p.set_defaults(func=cmd_authority_keys)

    p = sub.add_parser("provisioning-code", help="the health authority's tool: signed provisioning QR codes")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = actions.add_parser("make", help="print a signed provisioning code (and optionally save it as a QR image)")
    m.add_argument("--key", required=True, metavar="FILE", help="the authority's provisioning.key")
    m.add_argument("--venue-id", required=True)
    m.add_argument("--venue-name", required=True)
    m.add_argument("--direction", default="entry", choices=["entry", "exit"])
    m.add_argument("--upstream", required=True, metavar="URL", help="https URL (http only for loopback)")
    m.add_argument("--token", required=True, help="the enrollment token the upstream issued for this venue")
    m.add_argument("--issued-at", metavar="ISO8601", help="default: now")
    m.add_argument("--png", type=Path, metavar="OUT", help="also write the code as a QR image")
    m.add_argument("--sheet", type=Path, metavar="OUT.pdf",
                   help="also write an A4 sheet for the venue manager: venue, QR code, valid until, the steps")
    m.add_argument("--poster", type=Path, metavar="OUT.pdf", help="also write an A4 'check in here' poster")
    m.set_defaults(func=cmd_provisioning_make)


def _fail(message: str) -> int:
    print(f"kiosk: {message}", file=sys.stderr)
    return 2


def inspect_json(credential: Any) -> dict[str, Any]:
    """The credential as ``kiosk inspect`` prints it: never the subject, the name only masked."""
    out: dict[str, Any] = {"kind": credential.kind, "verdict": credential.verdict, "reason": credential.reason,
                           "display_name": credential.display_name}
    facts = dict(credential.facts)
    if credential.kind == "hc1":
        out.update(dict.fromkeys(("signature", "signer_validity", "key_usage", "expiry", "fields", "schema")))
        out.update(facts.pop("verdicts", {}))
    out.update(facts)
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args
    from kiosk.credentials import FormatContext, default_registry
    from kiosk.credentials.trust import TrustListError, load_trust_list

    config = config_from_args(args)
    try:
        now_ms = parse_instant_ms(args.at) if args.at else time.time_ns() // 1_000_000
    except (ValueError, OverflowError):
        return _fail(f"--at {args.at!r} is not an ISO 8601 time (e.g. 2021-06-01T12:00:00Z)")
    try:
        trust = load_trust_list(args.trust) if args.trust else None
    except TrustListError as exc:
        return _fail(f"--trust: {exc}")
    if args.file is not None:
        try:
            with open(args.file, "rb") as fh:
                payload = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return _fail(f"{args.file}: cannot read ({exc.strerror})")
        payload = payload[:-2] if payload.endswith(b"\r\n") else payload[:-1] if payload.endswith(b"\n") else payload
    else:
        payload = os.fsencode(args.payload)  # the exact bytes typed, even if they are not UTF-8
    registry = default_registry(config, trust=trust)
    credential = registry.classify(payload, FormatContext(now_utc_ms=now_ms, config=config))
    print(json.dumps(inspect_json(credential), ensure_ascii=False, sort_keys=True))
    return 0 if credential.accepted else 1


def cmd_authority_keys(args: argparse.Namespace) -> int:
    from kiosk.credentials.provisioning import new_signing_keypair
    from kiosk.core.privacy import new_sealing_keypair, write_private_file

    folder: Path = args.folder
    if folder.exists() and any(folder.iterdir()):
        return _fail(f"{folder} is not empty: keys are never overwritten")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    publics = {}
    for name, (private, public) in (("sealing", new_sealing_keypair()), ("provisioning", new_signing_keypair())):
        write_private_file(folder / f"{name}.key", base64.b64encode(private) + b"\n")
        (folder / f"{name}.pub").write_text(base64.b64encode(public).decode() + "\n")
        publics[name] = base64.b64encode(public).decode()
    print(f"# keys written to {folder}; keep *.key with the authority, put these lines in each kiosk's config:")
    print(f'[privacy]\nauthority_public_key = "{publics["sealing"]}"\n')
    print(f'[provisioning]\nauthority_key = "{publics["provisioning"]}"')
    return 0


def cmd_provisioning_make(args: argparse.Namespace) -> int:
    from kiosk.credentials.provisioning import ProvisioningCode, ProvisioningError, make_code
    from kiosk.core.privacy import read_key

    from kiosk.cli import config_from_args
    from kiosk.credentials.provisioning import ACCEPTS, public_key_mistake

    for option, out in (("--sheet", args.sheet), ("--poster", args.poster)):
        if out is not None and (out.suffix.lower() != ".pdf" or not out.absolute().parent.is_dir()):
            return _fail(f"{option} {out}: accepted is a .pdf file in a folder that exists")
    config = config_from_args(args)
    key = read_key(str(Path(args.key).absolute()), "--key")
    mistake = public_key_mistake(Path(args.key), key, config.provisioning.authority_key)
    if mistake:
        return _fail(mistake)
    try:
        issued_ms = parse_instant_ms(args.issued_at) if args.issued_at else time.time_ns() // 1_000_000
    except (ValueError, OverflowError):
        return _fail(f"--issued-at {args.issued_at!r} is not an ISO 8601 time (accepted: e.g. 2024-06-01T08:00:00+07:00)")
    code = ProvisioningCode(args.venue_id, args.venue_name, args.direction, args.upstream, args.token,
                            issued_ms // 1000)
    try:
        text = make_code(key, code)
    except ProvisioningError as exc:
        field = str(exc)
        return _fail(f"provisioning code not made: {field} is not acceptable; accepted: {ACCEPTS.get(field, field)}")
    if args.png:
        import segno

        segno.make(text, error="m", micro=False).save(str(args.png), scale=6, border=4)
    if args.sheet or args.poster:
        try:
            from kiosk.credentials.sheet import write_poster, write_sheet
        except ImportError as exc:
            return _fail(f"PDF output needs fpdf2 ({exc.name} is missing): pip install 'venue-kiosk[authority]'")
        try:
            if args.sheet:
                write_sheet(args.sheet, code, text, config.provisioning.max_age_s)
            if args.poster:
                write_poster(args.poster, code.venue_name, code.direction)
        except OSError as exc:
            return _fail(f"cannot write the PDF: {exc.strerror or exc}")
    print(text)
    return 0
