"""``kiosk upstream retention``: the PostgreSQL upstream's daily housekeeping (a systemd timer or cron
runs it): make the coming days' partitions, drop the days older than the retention period whole."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Callable


def register(db_parser: Callable[[str, str], argparse.ArgumentParser]) -> None:
    q = db_parser("retention", "PostgreSQL: create the coming days' check-in partitions, drop whole days past "
                               "--keep-days")
    q.add_argument("--keep-days", type=int, default=21, help="days of check-ins kept (default 21)")
    q.add_argument("--ahead-days", type=int, default=7, help="partitions made ahead of today (default 7)")
    q.set_defaults(func=cmd_retention)


def cmd_retention(args: argparse.Namespace) -> int:
    """Prints {created, dropped, partitions} as JSON."""
    from sync.commands import _storage

    if not args.db.startswith(("postgresql://", "postgres://")):
        print("kiosk: retention by partition needs PostgreSQL (--db postgresql://...)", file=sys.stderr)
        return 2
    if args.keep_days < 1 or args.ahead_days < 0:
        print("kiosk: --keep-days must be at least 1 and --ahead-days at least 0", file=sys.stderr)
        return 2
    storage = _storage(args)
    try:
        storage.ahead_days = args.ahead_days
        created = storage.ensure_partitions_ahead()
        today = dt.datetime.now(dt.timezone.utc).date()
        dropped = storage.drop_partitions_before(today - dt.timedelta(days=args.keep_days))
        print(json.dumps({"created": created, "dropped": dropped, "partitions": storage.partition_names()},
                         indent=2))
    finally:
        storage.close()
    return 0
