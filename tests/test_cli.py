"""The command line in-process: every command's --help, each benchmark target's own options, and every
command documented in the README's Commands table (as sqlite-utils checks its own)."""

from __future__ import annotations

import argparse
import re

import pytest

from conftest import ROOT
from kiosk.cli import COMMANDS, build_parser, main


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as the words that name it."""
    found = [path] if path else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += command_paths(child, (*path, name))
    return found


PATHS = command_paths(build_parser())


def test_the_walk_finds_nested_commands():
    assert {("status",), ("upstream", "user", "add"), ("bench", "sync"), ("beacon", "f0")} <= set(PATHS)
    assert {path[0] for path in PATHS} == set(COMMANDS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help_of_every_command(path, capsys):
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kiosk {' '.join(path)}")


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"kiosk \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_each_benchmark_target_has_its_own_options(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "beacon", "--pg-url", "postgresql://x"])
    assert done.value.code == 2
    assert "unrecognized arguments: --pg-url" in capsys.readouterr().err


def test_bench_alone_is_the_pipeline_with_its_defaults(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr("kiosk.bench.run_benchmark", lambda target, args: ran.append((target, args)) or {})
    assert main(["bench"]) == 0
    assert main(["bench", "credentials", "--scans", "7"]) == 0
    (first, first_args), (second, second_args) = ran
    assert (first, first_args.scans, first_args.soak_seconds, first_args.rate) == ("pipeline", 2000, 0.0, 5.0)
    assert (second, second_args.scans) == ("credentials", 7)


def readme_commands() -> list[str]:
    """The Commands table's first column, one string per row."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `kiosk ")]


def test_every_command_is_documented_in_the_readme():
    rows = readme_commands()
    missing = []
    for path in PATHS:
        rows_of_command = [row for row in rows if re.search(rf"`kiosk {re.escape(path[0])}\b", row)]
        words = {w for row in rows_of_command for w in re.split(r"[^\w-]+", row)}
        if not rows_of_command or not set(path[1:]) <= words:
            missing.append(" ".join(path))
    assert missing == [], "README.md's Commands table does not mention these commands"
