"""docs/OPERATIONS.md cannot rot: every `metering …` command in its code blocks must exist.

Each command line is taken from the fenced code blocks (also inside ``$(…)``), walked down the
CLI's click tree to its subcommand, and parsed by that command exactly as the shell would hand
it over (``make_context``: unknown flags, missing required options and bad values fail),
without running it. ``--help`` of each subcommand must answer too.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from metering.cli.app import _register, app
from metering.settings import REPO_ROOT

RUNBOOK = REPO_ROOT / "docs" / "OPERATIONS.md"
_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_SUBSTITUTION = re.compile(r"\$\((metering [^)]*)\)")
_SEPARATORS = re.compile(r"\s(?:&&|\|\||\||;)\s")


def runbook_commands() -> list[str]:
    """Every ``metering`` invocation of the runbook's code blocks, one string each."""
    commands = []
    for block in _FENCE.findall(RUNBOOK.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()  # a trailing shell comment
            commands += _SUBSTITUTION.findall(line)
            for part in _SEPARATORS.split(_SUBSTITUTION.sub("", line)):
                if part.strip().startswith("metering "):
                    commands.append(part.strip())
    return commands


@pytest.fixture(scope="module")
def cli() -> Any:
    """The CLI as a click command tree (typer vendors its own click: duck-typed here)."""
    _register([])
    return typer.main.get_command(app)


def resolve(cli: Any, words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The subcommand path a command line names, its click command, and the rest of it."""
    path: list[str] = []
    command = cli
    rest = words[1:]  # past "metering"
    while rest and rest[0] in getattr(command, "commands", {}):
        path.append(rest[0])
        command = command.commands[rest[0]]
        rest = rest[1:]
    return path, command, rest


def test_the_runbook_has_the_commands_the_issue_asks_for() -> None:
    used = {" ".join(shlex.split(c)[:3]) for c in runbook_commands()}
    for needed in (
        "metering worker",
        "metering sink",
        "metering store migrate",
        "metering kafka up",
        "metering replay",
        "metering rebuild",
        "metering audit",
        "metering adjust",
    ):
        assert any(u.startswith(needed) for u in used), needed


def test_every_runbook_command_parses_against_the_cli(cli: Any) -> None:
    commands = runbook_commands()
    assert len(commands) >= 20
    for line in commands:
        path, command, rest = resolve(cli, shlex.split(line))
        try:  # parse only, as the shell would hand the words over; nothing runs
            context = command.make_context(" ".join(["metering", *path]), list(rest))
        except Exception as exc:  # the CLI's usage errors: unknown flag, missing option…
            pytest.fail(f"{line!r}: {getattr(exc, 'format_message', exc.__str__)()}")
        # words left after a group's options would be a subcommand it does not have (click
        # keeps the first in protected_args, private in the click that typer vendors)
        leftover = [*getattr(context, "_protected_args", []), *context.args]
        assert not leftover, (line, "unknown subcommand or argument", leftover)


def test_every_subcommand_the_runbook_names_answers_help(cli: Any) -> None:
    runner = CliRunner()
    paths = {tuple(resolve(cli, shlex.split(line))[0]) for line in runbook_commands()}
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
