"""``metering store``: set up and inspect the ClickHouse ledger store (CLICKHOUSE_URL).

Thin shell over ``metering.warehouse``: open the store from settings, call the runner, print a
table. Errors are ``MeteringError`` and become one line in ``metering.cli.app.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from metering.settings import load_settings
from metering.warehouse import (
    DEFAULT_DATABASE,
    DEFAULT_MIGRATIONS_DIR,
    MigrationPlan,
    MigrationState,
    connect,
    migrate,
    parse_url,
    release,
    status,
)
from metering.warehouse.migrations import read_migrations

app = typer.Typer(help="The ClickHouse ledger store: migrations and status.", no_args_is_help=True)

MigrationsDir = Annotated[
    Path,
    typer.Option(
        "--migrations-dir",
        envvar="METERING_MIGRATIONS_DIR",
        help="Folder of NNNN_<slug>.sql files.",
        file_okay=False,
    ),
]
Database = Annotated[str, typer.Option("--database", help="Database the migrations create/use.")]

_STYLE = {
    MigrationState.APPLIED: "green",
    MigrationState.PENDING: "yellow",
    MigrationState.CHANGED: "bold red",
    MigrationState.MISSING: "bold red",
    MigrationState.OUT_OF_ORDER: "bold red",
}


@app.command("migrate")
def migrate_command(
    migrations_dir: MigrationsDir = DEFAULT_MIGRATIONS_DIR,
    database: Database = DEFAULT_DATABASE,
) -> None:
    """Apply pending migrations in number order (a no-op when up to date).

    With METERING_CLICKHOUSE_CLUSTER set, in their cluster form (ON CLUSTER, replicated and
    distributed tables).
    """
    settings = load_settings()
    url = settings.ledger_store_url
    store = parse_url(url)  # a bad URL fails here, before anything is opened
    console = Console()
    try:
        client = connect(url)
        applied = migrate(
            client,
            migrations_dir=migrations_dir,
            database=database,
            cluster=settings.clickhouse_cluster,
        )
        current = status(client, migrations_dir=migrations_dir, database=database)
    finally:
        release(url)
    console.print(_table(current, store.display, database))
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(map(str, applied))}")
    else:
        console.print("up to date: nothing to apply")


@app.command("status")
def status_command(
    migrations_dir: MigrationsDir = DEFAULT_MIGRATIONS_DIR,
    database: Database = DEFAULT_DATABASE,
) -> None:
    """Show each migration as applied, pending, or in conflict with the history."""
    url = load_settings().ledger_store_url
    store = parse_url(url)
    try:
        current = status(connect(url), migrations_dir=migrations_dir, database=database)
    finally:
        release(url)
    Console().print(_table(current, store.display, database))
    problems = current.problems()
    if problems:
        Console(stderr=True).print(f"[bold red]error:[/] {'; '.join(problems)}", highlight=False)
        raise typer.Exit(1)


@app.command("sql")
def sql_command(
    migrations_dir: MigrationsDir = DEFAULT_MIGRATIONS_DIR,
    database: Database = DEFAULT_DATABASE,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Render the cluster form for this cluster (default: "
            "METERING_CLICKHOUSE_CLUSTER; '' = the single-node form).",
        ),
    ] = None,
) -> None:
    """Print the statements `migrate` runs, every file, without opening the store."""
    name = load_settings().clickhouse_cluster if cluster is None else cluster
    rendered = [  # all of it before printing: a file without a cluster form prints nothing
        (migration.filename, migration.statements(database, name))
        for migration in read_migrations(migrations_dir)
    ]
    for filename, statements in rendered:
        typer.echo(f"-- {filename}")
        for statement in statements:
            typer.echo(f"{statement};\n")


def _table(current: MigrationPlan, store: str, database: str) -> Table:
    table = Table(title=f"migrations of {database} in {store}")
    table.add_column("version", justify="right")
    table.add_column("name")
    table.add_column("state")
    table.add_column("applied at (UTC)")
    for entry in current.entries:
        when = entry.applied.applied_at if entry.applied is not None else None
        table.add_row(
            f"{entry.version:04d}",
            entry.name,
            f"[{_STYLE[entry.state]}]{entry.state.value}[/]",
            when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if when is not None else "",
        )
    return table
