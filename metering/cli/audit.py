"""``metering audit``: prove one account's bill in ClickHouse from the raw input log, or show
exactly where it is wrong. Exit 0 only when ClickHouse and the re-derived ledger agree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from billing.catalog import load_catalog
from metering.audit.render import FORMATS, as_csv, as_json, as_tables
from metering.audit.run import AuditReport, audit, read_kafka, read_log_file
from metering.audit.span import choose_span
from metering.audit.stored import stored_rows
from metering.cli.progress import progress_bar
from metering.errors import ConfigError, InputError
from metering.settings import load_settings
from metering.warehouse import DEFAULT_DATABASE

app = typer.Typer(help="Audit an account's bill: ClickHouse against the raw input log.")


@app.callback(invoke_without_command=True)
def audit_command(
    account: Annotated[str, typer.Option("--account", help="The account to audit.")],
    period: Annotated[
        str | None, typer.Option("--period", help="Calendar month YYYY-MM (UTC).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Span start, RFC 3339 or a date (inclusive).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Span end, RFC 3339 or a date (exclusive).")
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Raw log LOG.jsonl; default: the Kafka input topics."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or csv (to stdout).")
    ] = "table",
    database: Annotated[
        str, typer.Option("--database", help="ClickHouse database of the ledger.")
    ] = DEFAULT_DATABASE,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog YAML (default: METERING_CATALOG or shipped).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Statement of ACCOUNT over the span, its SHA-256, and every entry that differs."""
    if output_format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    span = choose_span(period, start, end)
    settings = load_settings()
    loaded = load_catalog(catalog or settings.catalog_path)
    if log is None and not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the audit reads the raw input topics from the "
            "broker (or give --log LOG.jsonl)"
        )
    err = Console(stderr=True)
    stored = stored_rows(settings.ledger_store_url, database, account, span)
    with stored, progress_bar(err, quiet=quiet) as progress:
        task = progress.add_task("reading the raw log", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if log is not None:
            records = read_log_file(log, account, advance)
        else:
            assert settings.kafka_bootstrap_servers is not None
            records = read_kafka(
                settings.kafka_bootstrap_servers, settings.topic_prefix, account, advance
            )
        stored.raise_if_failed()
        progress.update(task, description="re-deriving and comparing")
        report = audit(account, span, stored, records, loaded)
    _emit(report, output_format)
    if not report.clean:
        err.print(
            f"audit failed: {len(report.diff)} entries differ between ClickHouse and the raw log"
        )
        raise typer.Exit(1)


def _emit(report: AuditReport, output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(as_json(report))
    elif output_format == "csv":
        sys.stdout.write(as_csv(report))
    else:
        Console(width=200).print(as_tables(report))
