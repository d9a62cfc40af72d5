"""Entry point of the ``metering`` console script.

Each subcommand group lives in its own module; this file only registers them and turns
every deliberate error (``MeteringError``) into one readable line and exit code 1.
"""

from __future__ import annotations

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


def _register() -> None:
    from metering.cli import audit, demo, kafka, replay, schema, simulate, sink, store, worker

    app.add_typer(kafka.app, name="kafka")
    app.add_typer(store.app, name="store")
    app.add_typer(replay.app, name="replay")
    app.add_typer(schema.app, name="schema")
    app.add_typer(demo.app, name="demo")
    app.add_typer(worker.app, name="worker")
    app.add_typer(sink.app, name="sink")
    app.add_typer(simulate.app, name="simulate")
    app.add_typer(audit.app, name="audit")

    from reliability.cli import app as chaos

    app.add_typer(chaos, name="chaos")

    from metering.cli import adjust, discount, dlq, rebuild

    app.add_typer(rebuild.app, name="rebuild")
    app.add_typer(adjust.app, name="adjust")
    app.add_typer(dlq.app, name="dlq")
    app.add_typer(discount.app, name="discount")


def main() -> None:
    """Run the CLI; a ``MeteringError`` prints ``error: <reason>`` and exits 1."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _register()
    try:
        app()  # standalone: click prints usage errors and exits with each command's code
    except MeteringError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)
