"""The spine's subcommands: run, checkin, demo (``kiosk bench`` is kiosk/bench.py's)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from kiosk.events import ACCEPTED, DUPLICATE, PROVISIONING, JsonLinesSink


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the kiosk: camera, scanner, check-ins (and the screen)")
    p.add_argument("--events", metavar="FILE|-", help="append one JSON line per outcome, after its commit")
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until stopped)")
    p.add_argument("--headless", action="store_true", help="no screen: scanner and events only")
    p.add_argument("--windowed", action="store_true", help="screen in a window even if screen.fullscreen is set")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("checkin", help="record a check-in from a typed payload, as if it had been scanned")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--payload", help="the code's text")
    src.add_argument("--from-file", type=Path, metavar="F", help="one payload per line; one result line each")
    p.set_defaults(func=cmd_checkin)

    p = sub.add_parser("demo", help="the whole appliance on built-in defaults, simulated hardware only")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--headless", action="store_true",
                   help="no window: the screen is drawn off-screen (SDL dummy driver); outcomes printed as lines")
    p.add_argument("--screenshots", type=Path, metavar="DIR", help="save a PNG of every screen shown")
    p.set_defaults(func=cmd_demo)


def _pipeline(args: argparse.Namespace, sinks=()):  # noqa: ANN001
    from kiosk.cli import config_from_args
    from kiosk.pipeline import Pipeline

    return Pipeline(config_from_args(args), sinks)


def cmd_run(args: argparse.Namespace) -> int:
    from kiosk.core.lifecycle import stop_on_signals
    from kiosk.provisioning import ProvisioningFlow
    from kiosk.service import run_scanner

    sinks = [JsonLinesSink(args.events)] if args.events else []
    pipeline = _pipeline(args, sinks)
    # Applies provisioning codes (kiosk/provisioning.py): confirmed on the screen, or by its own rules headless.
    provisioning = ProvisioningFlow(pipeline, auto=args.headless)
    pipeline.sinks.append(provisioning)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        if args.headless:
            run_scanner(pipeline, stop, seconds=args.seconds)
        else:
            from kiosk.screen.run import run_with_screen

            run_with_screen(pipeline, stop, seconds=args.seconds, windowed=args.windowed,
                            on_provisioning=provisioning.confirm)
    finally:
        provisioning.close()
        pipeline.close()
        for sink in sinks:
            sink.close()
    return 0


def _lines(fh: BinaryIO, limit: int) -> Iterator[bytes]:
    """Each line without its ending, cut at ``limit`` bytes; the rest of a longer line is skipped
    unread into memory, so a file of one endless line costs ``limit`` bytes, no more."""
    while True:
        line = fh.readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith(b"\n"):
            while (rest := fh.readline(65536)) and not rest.endswith(b"\n"):
                pass
        yield line.rstrip(b"\r\n")


def cmd_checkin(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    if args.from_file is not None:
        try:
            source = open(args.from_file, "rb")
            kind = os.fstat(source.fileno()).st_mode
            if not (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):
                source.close()
                raise OSError(errno.EINVAL, "not a regular file or a pipe")  # /dev/zero would never end
        except OSError as exc:
            pipeline.close()
            print(f"kiosk: {args.from_file}: cannot read ({exc.strerror})", file=sys.stderr)
            return 2
    try:
        if args.payload is not None:
            # The exact bytes typed, even if they are not UTF-8: the registry judges them as a scan would.
            outcome = pipeline.handle_payload(os.fsencode(args.payload), source="manual")
            if outcome.event == ACCEPTED:
                print(outcome.checkin_id)
                return 0
            if outcome.event == PROVISIONING:
                print(f"kiosk: provisioning code for venue {outcome.credential.content.venue_id} verified; "
                      "it is not a check-in (the screen or `kiosk provision` applies it)", file=sys.stderr)
                return 4
            print(f"kiosk: {outcome.event}: {outcome.reason}", file=sys.stderr)
            return 1 if outcome.event in (DUPLICATE, "rejected") else 3
        worst = 0
        # A line longer than the largest payload (plus its ending) is cut there, and so refused as too-large.
        with source as fh:
            for number, payload in enumerate(_lines(fh, pipeline.config.formats.max_payload_bytes + 2), 1):
                if not payload.strip():
                    continue
                outcome = pipeline.handle_payload(payload, source="manual")
                print(json.dumps({"line": number, **outcome.to_json()}), flush=True)
                worst = max(worst, 0 if outcome.event == ACCEPTED else 1)
        return worst
    finally:
        pipeline.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from kiosk.demo import run_demo

    return run_demo(seconds=args.seconds, headless=args.headless, state_dir=args.state_dir,
                    screenshots=args.screenshots)
