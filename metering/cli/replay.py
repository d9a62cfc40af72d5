"""``metering replay``: fold a LOG.jsonl offline with the billing core (the audit path)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import DownloadColumn
from rich.table import Table

from billing.catalog import load_catalog
from metering.cli.progress import progress_bar
from metering.errors import InputError
from metering.replay.run import ReplaySummary, replay_file
from metering.settings import load_settings

app = typer.Typer(help="Fold an event log offline with the same core the workers use.")


@app.callback(invoke_without_command=True)
def replay(
    input: Annotated[
        Path, typer.Option("--input", "-i", help="LOG.jsonl: {topic, value} per line.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="OUT.jsonl to write.")],
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog YAML (default: METERING_CATALOG or shipped).")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")
    ] = False,
) -> None:
    """Replay INPUT and write every ledger, quota, routing and DLQ record to OUTPUT."""
    if not input.is_file():
        raise InputError(f"cannot read {input}: no such file")
    loaded = load_catalog(catalog or load_settings().catalog_path)
    console = Console(stderr=True)
    size = input.stat().st_size
    with progress_bar(
        console, quiet=quiet or size < 1_000_000, counter=DownloadColumn()
    ) as progress:
        task = progress.add_task("replaying", total=size)
        summary = replay_file(
            input, output, loaded, on_progress=lambda done: progress.update(task, completed=done)
        )
    if not quiet:
        console.print(summary_table(summary))


def summary_table(summary: ReplaySummary) -> Table:
    table = Table(title="replay summary", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("amount", justify="right")
    table.add_row("ledger entries", str(summary.outputs["metering.ledger"]), "")
    for funding, label in (
        ("subscription", "subscription"),
        ("payg", "payg / fallback key"),
        ("unfunded", "unfunded leakage"),
    ):
        usd = summary.funding_usd.get(funding)
        table.add_row(
            f"  {label}",
            str(summary.funding_entries[funding]),
            f"${usd:.6f}" if usd is not None else "",
        )
    table.add_row("  flows charged", "", f"{summary.flows:.6f}")
    table.add_row("exhausted", str(summary.exhausted), "")
    table.add_row("restored", str(summary.restored), "")
    table.add_row("routing changes", str(summary.outputs["metering.routing"]), "")
    table.add_row("duplicates ignored", str(summary.duplicates), "")
    table.add_row(
        "dead letters",
        str(sum(summary.dead_letters.values())),
        ", ".join(f"{k}={v}" for k, v in sorted(summary.dead_letters.items())),
    )
    return table
