"""The ``kiosk`` command: one console script, one subcommand per job.

Each package adds its own subcommands through a ``register(subparsers)`` function. COMMANDS maps each
subcommand to that module and its one-line help, so the parser is built from the module of the
command being run alone: ``kiosk status`` never imports the upload, screen or benchmark stacks, and
``kiosk --help`` imports none of them (on a Pi each import is noticeable at every start). A command
missing from the table still works: the parser is then built from every module.
``tests/test_cli_startup.py`` checks that the table says what the modules register.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

from kiosk import __version__

if TYPE_CHECKING:
    from kiosk.core.config import Config

# subcommand -> (module whose register() adds it, help shown by `kiosk --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("kiosk.commands", "the kiosk: camera, scanner, check-ins (and the screen)"),
    "checkin": ("kiosk.commands", "record a check-in from a typed payload, as if it had been scanned"),
    "demo": ("kiosk.commands", "the whole appliance on built-in defaults, simulated hardware only"),
    "bench": ("kiosk.bench", "benchmarks; each prints one JSON object"),
    "sync": ("sync.commands", "upload queued check-ins to the upstream (runs until stopped)"),
    "provision": ("sync.commands", "enroll this device with an upstream and set its venue"),
    "upstream": ("sync.upstream.commands", "the reference upstream server and its operator commands"),
    "inspect": ("kiosk.credentials.commands",
                "classify and verify one code without recording anything; one JSON object"),
    "authority-keys": ("kiosk.credentials.commands",
                       "the health authority's tool: make its sealing and provisioning key pairs"),
    "provisioning-code": ("kiosk.credentials.commands", "the health authority's tool: signed provisioning QR codes"),
    "beacon": ("beacon.commands", "advertise this venue's Bluezone IDs (default), or inspect them"),
    "screenshot": ("kiosk.screen.commands", "render a screen state to a PNG (representative data, no display needed)"),
    "scan-image": ("scanner.commands", "decode the QR codes in image files, one JSON line per file"),
    "status": ("kiosk.status", "health of this kiosk; exit 1 when something needs attention"),
}
COMMAND_MODULES = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
GLOBAL_OPTIONS_WITH_VALUE = ("--config", "--state-dir", "--log-level")


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, found the same way without importing shutil (and the bz2
    and lzma modules it imports): argparse asks for it at every argument added, so at every start."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, its width taken from :func:`_terminal_columns`."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


class ArgumentParser(argparse.ArgumentParser):
    """The kiosk's parsers (subcommands' included): :class:`HelpFormatter` unless told otherwise."""

    def __init__(self, *args: Any, formatter_class: type = HelpFormatter, **kwargs: Any):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def config_from_args(args: argparse.Namespace) -> Config:
    from kiosk.core.config import load_config

    return load_config(args.config, args.state_dir)


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not a global option)."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the chosen command's module registered; ``argv`` None registers every module."""
    parser = ArgumentParser(prog="kiosk", description="Venue check-in kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $KIOSK_CONFIG, then /etc/kiosk/kiosk.toml)")
    parser.add_argument("--state-dir", help="database and keys (default: $KIOSK_STATE_DIR, then the config)")
    parser.add_argument("--log-level", default=os.environ.get("KIOSK_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser)
    if argv is None:
        modules = COMMAND_MODULES
    else:
        command = chosen_command(argv)
        if command is None:
            modules = []  # `kiosk --help`, `kiosk --version` or a usage error: the table is enough
        elif command in COMMANDS:
            modules = [COMMANDS[command][0]]
        else:
            modules = COMMAND_MODULES  # not in the table: let every module have its say
    for module in modules:
        importlib.import_module(module).register(sub)
    if len(modules) == 1:
        return parser  # the chosen command's parser is all it needs; the others are for --help and usage errors
    for name, (_, help_text) in COMMANDS.items():
        if name not in sub.choices:  # listed in --help; never run (its module was not needed)
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    if not hasattr(args, "func"):  # a command line chosen_command read differently from argparse
        args = build_parser().parse_args(argv)
    from kiosk.core.config import ConfigError  # after parsing: `--help` and usage errors need neither
    from kiosk.core.logs import setup_logging
    from kiosk.core.statefiles import DamagedStateFile

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
