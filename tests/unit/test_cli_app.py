"""The ``metering`` entry point imports only the command group it runs: a short command does
not pay for every group's imports (Faust, Kafka, chDB). Help and usage errors see them all."""

from __future__ import annotations

import subprocess
import sys

from metering.cli.app import COMMANDS

LOADED = (
    "import sys\n"
    "from metering.cli.app import _register\n"
    "_register(sys.argv[1:])\n"
    "print(' '.join(sorted(m for m in sys.modules if m.startswith(('metering.cli.', 'reliability.cli')))))"
)


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_a_command_imports_its_own_group_only() -> None:
    groups = set(COMMANDS.values())
    assert loaded_by("audit", "--account", "a") & groups == {"metering.cli.audit"}
    assert loaded_by("chaos", "run") & groups == {"reliability.cli"}


def test_help_and_an_unknown_command_see_every_group() -> None:
    groups = set(COMMANDS.values())
    assert loaded_by("--help") & groups == groups
    assert loaded_by("no-such-command") & groups == groups
    assert loaded_by() & groups == groups


def test_the_help_lists_every_group_in_order() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ")]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)
