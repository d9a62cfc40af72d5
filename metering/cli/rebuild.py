"""``metering rebuild``: the ClickHouse ledger and rollups again, from the ledger topic or, with
``--from-inputs``, from the raw input topics through the billing core.

Thin shell over ``metering.rebuild``: settings, the store, a progress bar, a summary. Safe to
run again at any time: stored entries are skipped, and an interrupted run continues from its
checkpoint. Errors (a failed count check included) are one line and exit 1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID

from billing.catalog import load_catalog
from metering.cli.progress import progress_bar
from metering.cli.store import MigrationsDir
from metering.errors import ConfigError
from metering.rebuild import EntrySource, InputTopics, LedgerTopic, Rebuilt, Tally, rebuild
from metering.settings import load_settings
from metering.warehouse import DEFAULT_DATABASE, DEFAULT_MIGRATIONS_DIR, connect, release

app = typer.Typer(help="Rebuild the ClickHouse ledger and rollups from Kafka.")


@app.callback(invoke_without_command=True)
def rebuild_command(
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Drop the ledger, its rollups and views, and the checkpoint first."
        ),
    ] = False,
    from_inputs: Annotated[
        bool,
        typer.Option(
            "--from-inputs",
            help="Derive the entries from the raw input topics with the billing core.",
        ),
    ] = False,
    database: Annotated[
        str, typer.Option("--database", help="ClickHouse database of the ledger.")
    ] = DEFAULT_DATABASE,
    migrations_dir: MigrationsDir = DEFAULT_MIGRATIONS_DIR,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Entries per insert (and per checkpoint).")
    ] = 5000,
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog YAML for --from-inputs (default: METERING_CATALOG or shipped)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Copy every entry into ClickHouse once, checkpointed; then check the counts."""
    settings = load_settings()
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the rebuild reads the topics of the broker "
            "the worker writes to (e.g. export KAFKA_BOOTSTRAP_SERVERS=$(metering kafka up))"
        )
    console = Console(stderr=True)
    with progress_bar(console, quiet=quiet) as progress:
        task = progress.add_task("opening the source", total=None)
        source: EntrySource
        if from_inputs:
            source = InputTopics(
                bootstrap,
                load_catalog(catalog or settings.catalog_path),
                settings.topic_prefix,
                on_read=lambda read, total: progress.update(
                    task, description="reading the input topics", completed=read, total=total
                ),
            )
        else:
            source = LedgerTopic(bootstrap, settings.topic_prefix, max_records=batch_rows)
        url = settings.ledger_store_url
        try:
            rebuilt = asyncio.run(
                rebuild(
                    connect(url),
                    database,
                    source,
                    fresh=fresh,
                    chunk_size=batch_rows,
                    migrations_dir=migrations_dir,
                    cluster=settings.clickhouse_cluster,
                    on_chunk=lambda tally: _advance(progress, task, tally),
                )
            )
        finally:
            release(url)
    typer.echo(_summary(rebuilt, database, source.description))


def _advance(progress: Progress, task: TaskID, tally: Tally) -> None:
    progress.update(task, description="rebuilding", completed=tally.read, total=tally.total or None)


def _summary(rebuilt: Rebuilt, database: str, source: str) -> str:
    tally = rebuilt.tally
    gone = rebuilt.dropped.names if rebuilt.dropped else ()
    dropped = f"dropped {', '.join(gone)}; " if gone else ""
    return (
        f"rebuilt {database}.ledger from {source}: {dropped}{tally.read} read, "
        f"{tally.inserted} entries inserted, {tally.skipped} already stored, "
        f"{tally.resumed} before the checkpoint, {tally.poison} poison skipped; "
        f"count check passed: {rebuilt.stored} distinct entries in ClickHouse = "
        f"{rebuilt.entries} in the source"
    )
