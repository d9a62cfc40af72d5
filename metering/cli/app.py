"""Entry point of the ``metering`` console script.

Each subcommand group lives in its own module; this file only registers them and turns
every deliberate error (``MeteringError``) into one readable line and exit code 1.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from billing.errors import MeteringError

app = typer.Typer(
    name="metering",
    help="Usage metering for LLM gateways: billing core, Kafka pipeline, ClickHouse ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


COMMANDS = {
    "kafka": "metering.cli.kafka",
    "store": "metering.cli.store",
    "replay": "metering.cli.replay",
    "schema": "metering.cli.schema",
    "demo": "metering.cli.demo",
    "worker": "metering.cli.worker",
    "sink": "metering.cli.sink",
    "simulate": "metering.cli.simulate",
    "audit": "metering.cli.audit",
    "chaos": "reliability.cli",
    "rebuild": "metering.cli.rebuild",
    "adjust": "metering.cli.adjust",
    "dlq": "metering.cli.dlq",
    "discount": "metering.cli.discount",
}
"""Each subcommand group and the module whose ``app`` it is, in ``--help``'s order."""


def _register(args: list[str]) -> None:
    """Register the group ``args`` names, or every group (for help and usage errors).

    Only the one run is imported: the groups' imports (chDB, Kafka, Faust) cost more than a
    short command's own work."""
    chosen = [args[0]] if args and args[0] in COMMANDS else list(COMMANDS)
    for name in chosen:
        app.add_typer(importlib.import_module(COMMANDS[name]).app, name=name)


def main() -> None:
    """Run the CLI; a ``MeteringError`` prints ``error: <reason>`` and exits 1."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _register(sys.argv[1:])
    try:
        app()  # standalone: click prints usage errors and exits with each command's code
    except MeteringError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)
