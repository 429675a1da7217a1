"""Subcommands of the reference upstream: ``kiosk upstream ...``, on the server."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from sync.upstream.console.localtime import iso_local, local_instant_arg

log = logging.getLogger("kiosk.sync")


def register(sub: argparse._SubParsersAction) -> None:
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
    q.add_argument("--alert-webhook", metavar="URL", help="POST each silent device here as JSON, once per outage")
    q.add_argument("--alert-check-s", type=float, default=None, help="how often to look for silent devices (30)")
    q.add_argument("--forwarded-allow-ips", metavar="IPS",
                   help="trust X-Forwarded-For/-Proto only from these proxy addresses (comma-separated)")
    q.add_argument("--enroll-per-minute", type=int, default=None,
                   help="enrollment attempts allowed per client address a minute (default 30; 0 = no limit)")
    q.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only; each has its own pool)")
    q.add_argument("--pool-size", type=int, default=None, help="PostgreSQL connections per worker (default 8)")
    q.add_argument("--pool-timeout-s", type=float, default=None,
                   help="longest wait for a free connection before answering 503 (default 1)")
    q.add_argument("--max-inflight", type=int, default=None,
                   help="requests in progress per worker beyond which it answers 503 at once (default 0 = no limit)")
    q.set_defaults(func=cmd_serve)

    q = usub.add_parser("user", help="people who may log in to the console")
    user_sub = q.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    u = user_sub.add_parser("add", help="add a user; the password is read from standard input")
    u.add_argument("--db", required=True, metavar="URL_OR_PATH")
    u.add_argument("--name", required=True)
    u.add_argument("--role", required=True, choices=["operator", "viewer"])
    u.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from the first line of standard input (never from the command line)")
    u.set_defaults(func=cmd_user_add)
    u = user_sub.add_parser("list", help="JSON: users, roles, lock-outs")
    u.add_argument("--db", required=True, metavar="URL_OR_PATH")
    u.set_defaults(func=cmd_user_list)
    u = user_sub.add_parser("remove", help="remove a user and end their sessions")
    u.add_argument("--db", required=True, metavar="URL_OR_PATH")
    u.add_argument("--name", required=True)
    u.set_defaults(func=cmd_user_remove)

    q = db_parser("token", "issue a one-time enrollment token for a venue (or an operator token)")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--venue", metavar="ID")
    who.add_argument("--operator", action="store_true", help="a bearer token for the /v1/admin views")
    q.add_argument("--device", metavar="ID", help="with --venue: the token enrolls only this device id, and may "
                   "give an enrolled device a new key (a replaced SD card)")
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
        q.add_argument("--from", dest="start", required=True, type=local_instant_arg, metavar="T1",
                       help="ISO 8601 (no offset = Vietnam time, +07:00) or ms")
        q.add_argument("--to", dest="end", required=True, type=local_instant_arg, metavar="T2",
                       help="ISO 8601 (no offset = Vietnam time, +07:00) or ms; inclusive")
        if name != "exposure":
            q.add_argument("--format", choices=["json", "csv"], default="json",
                           help="csv: one row per check-in, times in +07:00 (the console's CSV)")
        if name == "export":
            q.add_argument("--authority-key", required=True, type=Path, metavar="FILE",
                           help="the authority's sealing.key (from `kiosk authority-keys`)")
        q.set_defaults(func={"trace": cmd_trace, "exposure": cmd_exposure, "export": cmd_export}[name])

    q = db_parser("retention", "delete check-ins scanned more than --keep-days ago (PostgreSQL: drop those whole "
                               "days, and make the coming days' partitions)")
    q.add_argument("--keep-days", type=int, default=21, help="days of check-ins kept (default 21)")
    q.add_argument("--ahead-days", type=int, default=7, help="partitions made ahead of today (default 7)")
    q.set_defaults(func=cmd_retention)

    q = db_parser("revoke", "revoke a device: its requests are refused from now on")
    q.add_argument("--device", required=True, metavar="ID")
    q.set_defaults(func=cmd_revoke)

    q = usub.add_parser("openapi", help="print the API's OpenAPI document (committed as sync/upstream/openapi.json)")
    q.set_defaults(func=cmd_openapi)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _storage(args: argparse.Namespace, create: bool = False, **pool: Any):
    """The upstream's storage; a SQLite file must exist unless ``create`` (only `serve` creates one),
    so a mistyped --db is an error, not an empty database answering zero rows. Every operator
    command but ``serve`` leaves an audit line saying who ran what."""
    from sync.upstream.engines import open_storage

    if not create and not args.db.startswith(("postgresql://", "postgres://")):
        path = Path(args.db.removeprefix("sqlite:///")).expanduser()
        if not path.is_file():
            print(f"kiosk: no upstream database at {path} (`kiosk upstream serve --db {args.db}` creates one)",
                  file=sys.stderr)
            raise SystemExit(2)
    storage = open_storage(args.db, **pool)
    if args.upstream_command != "serve":
        import getpass

        from sync.upstream.audit import audit

        fields = {k: getattr(args, k, None) for k in ("venue", "device", "start", "end")}
        audit("operator-command", "local", user=getpass.getuser(), command=args.upstream_command, **fields)
    return storage


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from sync.upstream.server import ServerSettings, bind, create_app, make_server, parse_listen

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    changes = {k: v for k, v in {"max_body_bytes": args.max_body_bytes, "max_json_bytes": args.max_json_bytes,
                                 "clock_window_ms": int(args.clock_window_s * 1000) if args.clock_window_s else None,
                                 "silent_after_s": args.silent_after_s, "alert_webhook_url": args.alert_webhook,
                                 "alert_check_s": args.alert_check_s,
                                 "enroll_per_minute": args.enroll_per_minute,
                                 "max_inflight": args.max_inflight}.items() if v is not None}
    if args.alert_webhook:
        from sync.upstream.console.alerts import check_webhook_url

        try:
            check_webhook_url(args.alert_webhook)
        except ValueError as exc:
            print(f"kiosk: {exc}", file=sys.stderr)
            return 2
    settings = dataclasses.replace(ServerSettings(), **changes)
    pool = {k: v for k, v in {"pool_size": args.pool_size, "pool_timeout_s": args.pool_timeout_s}.items()
            if v is not None}
    postgres = args.db.startswith(("postgresql://", "postgres://"))
    if (args.workers != 1 or pool) and not postgres:
        print("kiosk: --workers, --pool-size and --pool-timeout-s need PostgreSQL (--db postgresql://...): "
              "SQLite storage serves one worker", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("kiosk: --workers must be at least 1", file=sys.stderr)
        return 2
    storage = _storage(args, create=True, **pool)
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"kiosk: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 2
    scheme = "https" if args.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(f"kiosk upstream listening on {scheme}://{shown}:{sock.getsockname()[1]} ({storage.dialect}{workers})",
          flush=True)
    if args.workers > 1:
        from sync.upstream.workers import serve_workers

        create_app(storage, settings)  # the console's tables, made once here rather than by N workers racing
        storage.close()
        serve_workers(args.db, settings, pool, sock, args.workers, args.tls_cert, args.tls_key,
                      log_level=args.log_level.lower() if args.log_level != "INFO" else "warning",
                      app_log_level=args.log_level, forwarded_allow_ips=args.forwarded_allow_ips)
        return 0
    server = make_server(create_app(storage, settings), args.tls_cert, args.tls_key,
                         log_level=args.log_level.lower() if args.log_level != "INFO" else "warning",
                         forwarded_allow_ips=args.forwarded_allow_ips)
    import asyncio  # the upstream's alone: the uploader and `kiosk provision` have no event loop

    try:
        asyncio.run(_serve_watched(server, sock, f"serving {scheme}://{shown}:{sock.getsockname()[1]}"))
    finally:
        storage.close()
    return 0


async def _serve_watched(server: Any, sock: Any, status: str) -> None:
    """uvicorn's serve() with systemd's READY/WATCHDOG beating from the same event loop."""
    import asyncio

    from kiosk.core.watchdog import LoopWatch, heartbeat_while

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
    from kiosk.core.config import ID_CHECK

    for option in ("venue", "device"):
        value = getattr(args, option)
        if value is not None and (not value or ID_CHECK(value)):
            print(f"kiosk: --{option} must be letters, digits, '.', '_' or '-', at most 64", file=sys.stderr)
            return 2
    if args.device is not None and args.venue is None:
        print("kiosk: --device needs --venue (the venue the device will serve)", file=sys.stderr)
        return 2
    storage = _storage(args)
    if args.operator:
        print(storage.create_token("operator"))
    else:
        print(storage.create_token("enroll", args.venue, ttl_s=args.ttl_hours * 3600, device_id=args.device))
    storage.close()
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    storage = _storage(args)
    _print(storage.stats())
    storage.close()
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    storage = _storage(args)
    devices = [{**d, "last_heartbeat_at": iso_local(d["last_heartbeat_ms"]) or None}
               for d in storage.fleet(args.silent_after_s)]
    _print({"silent_after_s": args.silent_after_s, "devices": devices,
            "silent": [d["device_id"] for d in devices if d["silent"]]})
    storage.close()
    return 0


def _trace_json(row: dict[str, Any]) -> dict[str, Any]:
    import base64

    sealed = row["sealed_subject"]
    return {**_with_local_times(row),
            "sealed_subject": base64.b64encode(sealed).decode("ascii") if sealed is not None else None}


def _with_local_times(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "scanned_at": iso_local(row["utc_ms"]), "received_at": iso_local(row["received_ms"])}


def _read_venue_window(args: argparse.Namespace, read: Callable[[Any], Any]) -> Any:
    """``read(storage)`` once the venue and window are checked. An inverted window (exit 2) or a venue
    this upstream never heard of (exit 1) is refused with a warning: either would otherwise answer
    zero rows and look like nobody was there."""
    from sync.upstream.console.overview import venue_known

    if args.end < args.start:
        print(f"kiosk: --to ({iso_local(args.end)}) is before --from ({iso_local(args.start)})", file=sys.stderr)
        raise SystemExit(2)
    storage = _storage(args)
    try:
        if not venue_known(storage, args.venue):
            print(f"kiosk: venue {args.venue!r} is not known to this upstream (no device enrolled there, "
                  "no check-ins)", file=sys.stderr)
            raise SystemExit(1)
        return read(storage)
    finally:
        storage.close()


def cmd_trace(args: argparse.Namespace) -> int:
    from sync.upstream.console.csvout import trace_csv

    rows = _read_venue_window(args, lambda storage: storage.trace(args.venue, args.start, args.end))
    if args.format == "csv":
        sys.stdout.write(trace_csv(rows))
        return 0
    _print({"venue_id": args.venue, "start_ms": args.start, "end_ms": args.end, "from": iso_local(args.start),
            "to": iso_local(args.end), "count": len(rows), "checkins": [_trace_json(r) for r in rows]})
    return 0


def cmd_exposure(args: argparse.Namespace) -> int:
    from sync.upstream.exposure import exposure_entries

    keys = _read_venue_window(args, lambda storage: storage.beacon_keys(args.venue))
    entries = exposure_entries(keys, args.start, args.end)
    _print({"venue_id": args.venue, "start_ms": args.start, "end_ms": args.end,
            "devices": sorted({k["device_id"] for k in keys}), "f0": entries})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Runs where the authority keeps its private key: identities are unsealed here, never on the server."""
    from nacl.exceptions import CryptoError

    from kiosk.core.privacy import read_key, unseal_subject
    from sync.upstream.console.csvout import export_csv

    key = read_key(str(args.authority_key.absolute()), "--authority-key")  # ConfigError: exit 2 with the reason
    rows = _read_venue_window(args, lambda storage: storage.trace(args.venue, args.start, args.end))
    out, failed = [], 0
    for row in rows:
        sealed = row.pop("sealed_subject")
        subject = None
        if sealed is not None:
            try:
                subject = unseal_subject(sealed, key)
            except (CryptoError, UnicodeDecodeError, ValueError):
                failed += 1
        out.append({**_with_local_times(row), "subject": subject, "sealed": sealed is not None})
    if failed and failed == sum(1 for r in out if r["sealed"]):
        print(f"kiosk: this key opens none of the {failed} sealed identities: wrong authority key", file=sys.stderr)
        return 1
    if args.format == "csv":
        sys.stdout.write(export_csv(out))
        return 0
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


def _accounts(args: argparse.Namespace):
    from sync.upstream.console.accounts import Accounts

    return Accounts(_storage(args))


def cmd_user_add(args: argparse.Namespace) -> int:
    from sync.upstream.console.accounts import AccountError

    password = sys.stdin.readline().rstrip("\r\n")
    accounts = _accounts(args)
    try:
        accounts.add_user(args.name, args.role, password)
    except AccountError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    finally:
        accounts.storage.close()
    print(f"added {args.role} {args.name}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    users = accounts.users()
    accounts.storage.close()
    _print({"users": [{**u, "created": iso_local(u["created_ms"]),
                       "locked_until": iso_local(u["locked_until_ms"]) or None} for u in users]})
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    done = accounts.remove_user(args.name)
    accounts.storage.close()
    if not done:
        print(f"kiosk: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"removed {args.name}; their sessions are ended")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from sync.upstream.server import create_app

    print(json.dumps(create_app(None).openapi(), indent=2, sort_keys=True))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Prints what went as JSON: PostgreSQL {created, dropped, partitions}, SQLite {deleted, kept_from_ms}."""
    import datetime as dt

    if args.keep_days < 1 or args.ahead_days < 0:
        print("kiosk: --keep-days must be at least 1 and --ahead-days at least 0", file=sys.stderr)
        return 2
    storage = _storage(args)
    try:
        report = storage.retain(args.keep_days, args.ahead_days, dt.datetime.now(dt.timezone.utc).date())
        print(json.dumps(report, indent=2))
    finally:
        storage.close()
    return 0
