"""``metering dlq``: read the dead letters, and republish the ones whose cause is fixed.

Thin shell over ``metering.dlq``: settings, a selection, a rich table or JSON lines. Errors
(Kafka unreachable, a letter that cannot be republished) are one line and exit 1.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from metering.dlq import Letter, Letters, parse_source, read_letters, resubmit, select, unreplayable
from metering.errors import ConfigError, InputError
from metering.settings import load_settings

app = typer.Typer(help="Dead letters (metering.dlq): show them, republish fixed ones.")

PAYLOAD_CHARS = 60
"""Payload characters the table shows (``--format json`` gives all of it)."""
FORMATS = ("table", "json")


def _bootstrap() -> str:
    bootstrap = load_settings().kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the dead letters are on the broker the worker "
            "writes to (e.g. export KAFKA_BOOTSTRAP_SERVERS=$(metering kafka up))"
        )
    return bootstrap


def _read() -> Letters:
    return asyncio.run(read_letters(_bootstrap(), load_settings().topic_prefix))


@app.command("show")
def show_command(
    code: Annotated[
        str | None, typer.Option("--code", help="Only letters of this code (schemas/dlq.py).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many (DLQ order).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people) or json (one letter a line).")
    ] = "table",
) -> None:
    """Every dead letter of the DLQ topic, from its beginning to its current end."""
    if output_format not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    read = _read()
    chosen = select(read.letters, code=code)[:limit]
    if output_format == "json":
        for letter in chosen:
            typer.echo(orjson.dumps(_record(letter)).decode())
    else:
        Console().print(_table(chosen, read.topic))
    skipped = f"; {read.unreadable} values that are not dead letters" if read.unreadable else ""
    typer.echo(
        f"{len(chosen)} of {len(read.letters)} dead letters in {read.topic}{skipped}", err=True
    )


def _record(letter: Letter) -> dict[str, object]:
    return {"dlq_partition": letter.partition, "dlq_offset": letter.offset,
            **letter.letter.model_dump(mode="json")}  # fmt: skip


def _table(letters: list[Letter], topic: str) -> Table:
    table = Table(title=f"dead letters in {topic}")
    for column in ("source", "code", "reason", "key", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        dead, payload = letter.letter, letter.letter.payload
        shown = payload if len(payload) <= PAYLOAD_CHARS else payload[:PAYLOAD_CHARS] + "…"
        table.add_row(letter.source, dead.code, dead.reason, dead.key or "", shown)
    return table


@app.command("replay")
def replay_command(
    source_offset: Annotated[
        list[str] | None,
        typer.Option(
            "--source-offset",
            help="TOPIC:PARTITION:OFFSET of a refused record (as `dlq show` prints it); repeatable.",
        ),
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="Every letter of this code instead.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be republished; publish nothing.")
    ] = False,
) -> None:
    """Republish dead letters' original bytes to their source topic, with their key.

    Fix the cause first (e.g. publish the account's `started` event), then replay.

    Safe to run again: the pipeline charges a request_id once, however often it is published.

    Secret-redacted and cut-short payloads are refused: the gateway must resend those.
    """
    if (source_offset is None) == (code is None):
        raise InputError("give --source-offset (one or more) or --code, not both")
    read = _read()
    wanted = [parse_source(text) for text in source_offset] if source_offset else None
    chosen = select(read.letters, code=code, sources=wanted)
    letters = list({letter.source: letter for letter in chosen}.values())  # at-least-once DLQ
    found = {letter.source for letter in letters}
    missing = [source for source in wanted or () if source not in found]
    if missing:
        raise InputError(f"no dead letter in {read.topic} for {', '.join(missing)}")
    if not letters:
        raise InputError(f"no dead letter of code {code!r} in {read.topic}")
    for letter in letters:
        why = unreplayable(letter)
        if why is not None:
            raise InputError(f"{letter.source} ({letter.letter.code}) cannot be republished: {why}")
    prefix = load_settings().topic_prefix
    if not dry_run:
        asyncio.run(resubmit(_bootstrap(), prefix, letters))
    verb = "would republish" if dry_run else "republished"
    for letter in letters:
        dead = letter.letter
        typer.echo(
            f"{verb} {letter.source} ({dead.code}, key {dead.key}) to {prefix}{dead.source_topic}"
        )
    typer.echo(f"{len(letters)} dead letters {verb}" + (" (dry run)" if dry_run else ""), err=True)
