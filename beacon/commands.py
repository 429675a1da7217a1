"""``kiosk beacon`` and its subcommands: the service, the current ID, the key record, F0 entries."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from kiosk.core.clock import instant_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("beacon", help="advertise this venue's Bluezone IDs (default), or inspect them")
    p.add_argument("--transport", help="hciN, unix:PATH or pcap:FILE (default: config beacon.transport)")
    p.add_argument("--assume-clock-synced", action="store_true",
                   help="advertise even if the kernel says the clock is not synchronised")
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until stopped)")
    p.set_defaults(func=cmd_beacon)
    actions = p.add_subparsers(dest="beacon_command", metavar="ACTION")

    q = actions.add_parser("id", help="print the 24-hex-digit ID broadcast at a given time")
    _key_options(q)
    q.add_argument("--at", type=instant_arg, help="ISO 8601 time (default: now); no zone = UTC")
    q.set_defaults(func=cmd_id)

    q = actions.add_parser("key", help="print this device's key registration record (JSON) for the upstream")
    q.set_defaults(func=cmd_key)

    q = actions.add_parser("f0", help="print the Bluezone F0 message announcing an exposure window")
    _key_options(q)
    q.add_argument("--from", dest="start", type=instant_arg, required=True, help="ISO 8601 start of the window")
    q.add_argument("--to", dest="end", type=instant_arg, required=True, help="ISO 8601 end of the window")
    q.set_defaults(func=cmd_f0)


def _key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", type=_hex_key, help="base key, 64 hex digits (default: this device's)")
    p.add_argument("--key-day", type=_day, help="UTC day the key was made, YYYY-MM-DD")


def _hex_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not hexadecimal") from None
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f"a base key is 64 hex digits (32 bytes), not {len(key) * 2}")
    return key


def _usage(message: str) -> None:
    print(f"kiosk beacon: {message}", file=sys.stderr)
    raise SystemExit(2)


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None


def _base_key(args: argparse.Namespace):
    from beacon.ids import BaseKey, load_base_key
    from kiosk.cli import config_from_args

    if (args.key is None) != (args.key_day is None):
        _usage("--key and --key-day go together")
    if args.key is not None:
        return BaseKey(args.key, args.key_day)
    base = load_base_key(config_from_args(args).state_dir)
    if base is None:
        _usage("this device has no beacon key yet (it is made when `kiosk beacon` first runs with a "
               "trustworthy clock); or pass --key and --key-day")
    return base


def cmd_id(args: argparse.Namespace) -> int:
    import time

    from beacon.ids import ChainError, id_at

    base = _base_key(args)
    at = args.at if args.at is not None else time.time_ns() // 1_000_000
    try:
        print(id_at(base, at).hex().upper())
    except ChainError as exc:
        print(f"kiosk beacon: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from beacon.register import registration_record

    args.key = args.key_day = None
    print(json.dumps(registration_record(_base_key(args)), indent=2))
    return 0


def cmd_f0(args: argparse.Namespace) -> int:
    from beacon.register import f0_message

    base = _base_key(args)
    if args.end < args.start:
        print("kiosk beacon: --to is before --from", file=sys.stderr)
        return 2
    print(json.dumps(f0_message(base.key, base.day, args.start, args.end), indent=2))
    return 0


def cmd_beacon(args: argparse.Namespace) -> int:
    from beacon.service import BeaconService
    from kiosk.cli import config_from_args
    from kiosk.core.lifecycle import stop_on_signals
    import threading

    config = config_from_args(args)
    if args.transport:
        from kiosk.core.config import ConfigError
        import re

        if not re.fullmatch(r"hci[0-9]{1,3}|unix:.+|pcap:.+", args.transport):
            raise ConfigError(f"--transport {args.transport!r}: expected hciN, unix:PATH or pcap:FILE")
    stop = threading.Event()
    stop_on_signals(stop)
    service = BeaconService(config.beacon, config.state_dir, transport=args.transport,
                            assume_synced=args.assume_clock_synced or config.clock.assume_synced, stop=stop)
    return service.run(seconds=args.seconds)
