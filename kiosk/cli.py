"""The ``kiosk`` command: one console script, one subcommand per job.

Each package adds its own subcommands through a ``register(subparsers)`` function listed in
COMMAND_MODULES, so this file stays the table of contents. Handlers take the parsed arguments and
return the exit code; imports of heavy libraries happen inside handlers, keeping start-up quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from kiosk import __version__
from kiosk.config import Config, ConfigError, load_config
from kiosk.logs import setup_logging
from kiosk.statefiles import DamagedStateFile

COMMAND_MODULES = [
    "kiosk.commands",
    "sync.commands",
    "kiosk.credentials.commands",
    "beacon.commands",
    "kiosk.screen.commands",
    "scanner.commands",
    "kiosk.status",
]


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.state_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description="Venue check-in kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $KIOSK_CONFIG, then /etc/kiosk/kiosk.toml)")
    parser.add_argument("--state-dir", help="database and keys (default: $KIOSK_STATE_DIR, then the config)")
    parser.add_argument("--log-level", default=os.environ.get("KIOSK_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        return 2
    except DamagedStateFile as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
