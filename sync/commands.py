"""Subcommands: ``kiosk sync`` and ``kiosk provision`` on the device, ``kiosk upstream ...`` on the server."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from kiosk.clock import instant_arg

log = logging.getLogger("kiosk.sync")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="upload queued check-ins to the upstream (runs until stopped)")
    p.add_argument("--once", action="store_true", help="send what is queued, then exit (1 if anything is left)")
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("provision", help="enroll this device with an upstream and set its venue")
    p.add_argument("--upstream", required=True, metavar="URL", help="https://... (http only to loopback)")
    p.add_argument("--token", required=True, help="one-time token from `kiosk upstream token`")
    p.add_argument("--venue", required=True, metavar="ID", help="venue id the token was issued for")
    p.add_argument("--direction", choices=["entry", "exit"])
    p.add_argument("--ca-bundle", metavar="PEM", help="CA certificates to trust for this upstream")
    p.set_defaults(func=cmd_provision)

    up = sub.add_parser("upstream", help="the reference upstream server and its operator commands")
    usub = up.add_subparsers(dest="upstream_command", metavar="ACTION", required=True)

    def db_parser(name: str, help: str) -> argparse.ArgumentParser:
        q = usub.add_parser(name, help=help)
        q.add_argument("--db", required=True, metavar="URL_OR_PATH", help="SQLite file, or postgresql://...")
        return q

    q = db_parser("serve", "serve the upstream API (FastAPI on uvicorn)")
    q.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT", help="port 0 = any free port")
    q.add_argument("--tls-cert", metavar="PEM")
    q.add_argument("--tls-key", metavar="PEM")
    q.add_argument("--max-body-bytes", type=int, default=None, help="largest gzip body accepted")
    q.add_argument("--max-json-bytes", type=int, default=None, help="largest body after decompression")
    q.add_argument("--clock-window-s", type=float, default=None, help="signed timestamps older/newer are refused")
    q.add_argument("--silent-after-s", type=int, default=None, help="fleet view: silent after this long")
    q.set_defaults(func=cmd_serve)

    q = db_parser("token", "issue a one-time enrollment token for a venue (or an operator token)")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--venue", metavar="ID")
    who.add_argument("--operator", action="store_true", help="a bearer token for the /v1/admin views")
    q.add_argument("--ttl-hours", type=float, default=168.0, help="enrollment token lifetime (default a week)")
    q.set_defaults(func=cmd_token)

    q = db_parser("stats", "JSON: total and distinct check-ins")
    q.set_defaults(func=cmd_stats)

    q = db_parser("fleet", "JSON: last heartbeat per device, and which are silent")
    q.add_argument("--silent-after-s", type=int, default=900)
    q.set_defaults(func=cmd_fleet)

    for name, help in (("trace", "JSON: check-ins at a venue in [--from, --to]"),
                       ("exposure", "JSON: Bluezone F0 entries for a venue exposure window"),
                       ("export", "for the health authority: the trace with identities unsealed")):
        q = db_parser(name, help)
        q.add_argument("--venue", required=True, metavar="ID")
        q.add_argument("--from", dest="start", required=True, type=instant_arg, metavar="T1", help="ISO 8601 or ms")
        q.add_argument("--to", dest="end", required=True, type=instant_arg, metavar="T2", help="ISO 8601 or ms")
        if name == "export":
            q.add_argument("--authority-key", required=True, type=Path, metavar="FILE",
                           help="the authority's sealing.key (from `kiosk authority-keys`)")
        q.set_defaults(func={"trace": cmd_trace, "exposure": cmd_exposure, "export": cmd_export}[name])

    q = db_parser("revoke", "revoke a device: its requests are refused from now on")
    q.add_argument("--device", required=True, metavar="ID")
    q.set_defaults(func=cmd_revoke)

    q = usub.add_parser("openapi", help="print the API's OpenAPI document (committed as sync/openapi.json)")
    q.set_defaults(func=cmd_openapi)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _storage(args: argparse.Namespace):  # noqa: ANN202
    from sync.storage import Storage

    return Storage(args.db)


# ---- device -------------------------------------------------------------------------------------
def cmd_sync(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args
    from kiosk.lifecycle import stop_on_signals
    from kiosk.watchdog import LoopWatch

    config = config_from_args(args)
    watch = LoopWatch()  # systemd's READY/WATCHDOG (kiosk/watchdog.py): pinged from the loop's `alive` hook
    stop = threading.Event()
    stop_on_signals(stop)
    lock = _single_instance(config.state_dir)
    if lock is None:
        print(f"kiosk: another `kiosk sync` is running for {config.state_dir}", file=sys.stderr)
        return 2
    uploader = _wait_for_enrollment(args, config, watch, stop)
    if uploader is None:
        return 2 if args.once else 0
    try:
        result = uploader.run(stop, once=args.once, seconds=args.seconds,
                              alive=lambda: watch.beat(f"{uploader.state}; {uploader.result.sent} sent"))
    finally:
        watch.stopping()
        uploader.close()
    if args.once:
        _print({"sent": result.sent, "dead": result.dead, "remaining": result.remaining,
                "failures": result.failures, "last_error": result.last_error})
    return 0 if result.remaining == 0 else 1


def _wait_for_enrollment(args: argparse.Namespace, config: Any, watch: Any, stop: threading.Event) -> Any:
    """The uploader once this device is enrolled; meanwhile complete a saved enrollment intent with
    backoff and follow the settings (a provisioning made by another process shows up within a second)."""
    from kiosk.config import SettingsWatch
    from kiosk.records import Component, SyncState
    from kiosk.store import Store
    from sync.client import NotEnrolled, Uploader
    from sync.enroll import Completion

    settings = SettingsWatch(config)
    completion = Completion(config.sync.backoff_base_s * 5, config.sync.backoff_cap_s)
    warned = False
    while True:
        settings.poll()
        completion.step(settings.config)
        try:
            return Uploader(settings.config)
        except NotEnrolled as exc:
            if args.once:
                print(f"kiosk: {exc}", file=sys.stderr)
                return None
            if not warned:
                log.error("%s; waiting for provisioning", exc)
                store = Store.open(config.state_dir)
                store.set_status(Component.SYNC, SyncState.NOT_ENROLLED, {})
                store.close()
                warned = True
        if watch.wait(stop, 0.5, status="not enrolled: waiting for provisioning"):
            return None


def _single_instance(state_dir: Path):  # noqa: ANN202
    """An exclusive lock held for the process's life: a second uploader would reset the first's rows."""
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = open(state_dir / "sync.lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


# What a venue manager reads when the upstream refuses the enrollment code, by the upstream's reason.
REFUSALS = {
    "venue-mismatch": "the code was issued for another venue: check --venue, or ask the health authority for a "
                      "code for this venue",
    "device-revoked": "this kiosk was revoked by the health authority: ask them to enroll it again",
}
EXIT_SAVED_NOT_ENROLLED = 75  # sysexits' EX_TEMPFAIL: saved; the uploader completes the enrollment later


def cmd_provision(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args
    from kiosk.records import EnrollmentState
    from sync.enroll import provision
    from sync.identity import load_enrollment

    config = config_from_args(args)
    ca = str(Path(args.ca_bundle).resolve()) if args.ca_bundle else ""
    try:
        state, why = provision(config, args.upstream, args.token, args.venue, ca_bundle=ca, direction=args.direction)
    except ValueError as exc:
        print(f"kiosk: {exc}; nothing was saved", file=sys.stderr)
        return 2
    if state == EnrollmentState.ENROLLED:
        enrollment = load_enrollment(config.state_dir)
        _print({"device_id": enrollment.device_id, "venue_id": enrollment.venue_id,
                "upstream": enrollment.upstream_url, "public_key": enrollment.public_key})
        return 0
    if state == EnrollmentState.PENDING:
        if why.startswith("TLS verification failed"):
            print(f"kiosk: {args.upstream} answered with a certificate this kiosk does not trust (TLS verification "
                  "failed): check --ca-bundle and the kiosk's clock.", file=sys.stderr)
        print(f"kiosk: cannot reach {args.upstream}: check the network and the address. Venue {args.venue} is saved "
              "and check-ins are kept; the enrollment is saved too and the uploader (kiosk sync) retries it until "
              "the upstream answers. `kiosk status` shows when it is done.", file=sys.stderr)
        return EXIT_SAVED_NOT_ENROLLED
    reason = why.split(":", 1)[0]
    advice = REFUSALS.get(reason, "ask the health authority for a new code")
    print(f"kiosk: the upstream refused this enrollment code ({reason}): {advice}. Venue {args.venue} stays set, "
          "but nothing will upload until the kiosk is enrolled.", file=sys.stderr)
    return 1


# ---- upstream -----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from sync.server import ServerSettings, bind, create_app, make_server, parse_listen

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    changes = {k: v for k, v in {"max_body_bytes": args.max_body_bytes, "max_json_bytes": args.max_json_bytes,
                                 "clock_window_ms": int(args.clock_window_s * 1000) if args.clock_window_s else None,
                                 "silent_after_s": args.silent_after_s}.items() if v is not None}
    settings = dataclasses.replace(ServerSettings(), **changes)
    storage = _storage(args)
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"kiosk: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 2
    scheme = "https" if args.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"kiosk upstream listening on {scheme}://{shown}:{sock.getsockname()[1]} ({storage.dialect})", flush=True)
    server = make_server(create_app(storage, settings), args.tls_cert, args.tls_key,
                         log_level=args.log_level.lower() if args.log_level != "INFO" else "warning")
    try:
        asyncio.run(_serve_watched(server, sock, f"serving {scheme}://{shown}:{sock.getsockname()[1]}"))
    finally:
        storage.close()
    return 0


async def _serve_watched(server: Any, sock: Any, status: str) -> None:
    """uvicorn's serve() with systemd's READY/WATCHDOG beating from the same event loop."""
    from kiosk.watchdog import LoopWatch, heartbeat_while

    watch = LoopWatch()
    handle_exit = server.handle_exit  # uvicorn's signal handler; it re-raises the signal after shutdown

    def stopping_then_exit(sig: int, frame: Any) -> None:
        watch.stopping()  # say it now: the process may end before the event loop turns again
        handle_exit(sig, frame)

    server.handle_exit = stopping_then_exit
    beat = asyncio.create_task(heartbeat_while(watch, lambda: server.started, lambda: server.should_exit, status))
    try:
        await server.serve(sockets=[sock])
    finally:
        beat.cancel()


def cmd_token(args: argparse.Namespace) -> int:
    from kiosk.config import ID_CHECK

    if args.venue is not None and (not args.venue or ID_CHECK(args.venue)):
        print("kiosk: --venue must be letters, digits, '.', '_' or '-', at most 64", file=sys.stderr)
        return 2
    storage = _storage(args)
    if args.operator:
        print(storage.create_token("operator"))
    else:
        print(storage.create_token("enroll", args.venue, ttl_s=args.ttl_hours * 3600))
    storage.close()
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    storage = _storage(args)
    _print(storage.stats())
    storage.close()
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    storage = _storage(args)
    devices = storage.fleet(args.silent_after_s)
    _print({"silent_after_s": args.silent_after_s, "devices": devices,
            "silent": [d["device_id"] for d in devices if d["silent"]]})
    storage.close()
    return 0


def _trace_json(row: dict[str, Any]) -> dict[str, Any]:
    import base64

    sealed = row["sealed_subject"]
    return {**row, "sealed_subject": base64.b64encode(sealed).decode("ascii") if sealed is not None else None}


def cmd_trace(args: argparse.Namespace) -> int:
    storage = _storage(args)
    rows = storage.trace(args.venue, args.start, args.end)
    _print({"venue_id": args.venue, "start_ms": args.start, "end_ms": args.end, "count": len(rows),
            "checkins": [_trace_json(r) for r in rows]})
    storage.close()
    return 0


def cmd_exposure(args: argparse.Namespace) -> int:
    from sync.exposure import exposure_entries

    if args.end < args.start:
        print("kiosk: --to is before --from", file=sys.stderr)
        return 2
    storage = _storage(args)
    keys = storage.beacon_keys(args.venue)
    storage.close()
    entries = exposure_entries(keys, args.start, args.end)
    _print({"venue_id": args.venue, "start_ms": args.start, "end_ms": args.end,
            "devices": sorted({k["device_id"] for k in keys}), "f0": entries})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Runs where the authority keeps its private key: identities are unsealed here, never on the server."""
    from nacl.exceptions import CryptoError

    from kiosk.privacy import read_key, unseal_subject

    key = read_key(str(args.authority_key.absolute()), "--authority-key")  # ConfigError: exit 2 with the reason
    storage = _storage(args)
    rows = storage.trace(args.venue, args.start, args.end)
    storage.close()
    out, failed = [], 0
    for row in rows:
        sealed = row.pop("sealed_subject")
        subject = None
        if sealed is not None:
            try:
                subject = unseal_subject(sealed, key)
            except (CryptoError, UnicodeDecodeError, ValueError):
                failed += 1
        out.append({**row, "subject": subject, "sealed": sealed is not None})
    if failed and failed == sum(1 for r in out if r["sealed"]):
        print(f"kiosk: this key opens none of the {failed} sealed identities: wrong authority key", file=sys.stderr)
        return 1
    _print({"venue_id": args.venue, "start_ms": args.start, "end_ms": args.end, "count": len(out),
            "unsealed": sum(1 for r in out if r["subject"] is not None), "not_unsealable": failed, "checkins": out})
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    storage = _storage(args)
    done = storage.revoke(args.device)
    storage.close()
    if not done:
        print(f"kiosk: no enrolled, unrevoked device {args.device!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.device}")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from sync.server import create_app

    print(json.dumps(create_app(None).openapi(), indent=2, sort_keys=True))
    return 0
