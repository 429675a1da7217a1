"""Subcommands of the device's uploader: ``kiosk sync`` and ``kiosk provision`` (``kiosk upstream ...``
is sync/upstream/commands.py: it runs on another machine, with other extras)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

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


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def cmd_sync(args: argparse.Namespace) -> int:
    from kiosk.cli import config_from_args
    from kiosk.core.lifecycle import stop_on_signals
    from kiosk.core.watchdog import LoopWatch

    config = config_from_args(args)
    watch = LoopWatch()  # systemd's READY/WATCHDOG (kiosk/core/watchdog.py): pinged from the loop's `alive` hook
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
    from kiosk.core.config import SettingsWatch
    from kiosk.core.records import Component, SyncState
    from kiosk.core.store import Store
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


def _single_instance(state_dir: Path):
    """An exclusive lock held for the process's life: a second uploader would reset the first's rows."""
    import fcntl

    from kiosk.core.statefiles import private_dir

    private_dir(state_dir)
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
    from kiosk.core.records import EnrollmentState
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
