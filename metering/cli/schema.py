"""``metering schema export DIR``: JSON Schema of every topic, for gateways in other languages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schemas.export import EXPORT_DIR, export_schemas

app = typer.Typer(help="The wire contract as JSON Schema.", no_args_is_help=True)


@app.command("export")
def export(
    directory: Annotated[
        Path, typer.Argument(help="Where to write <topic>.schema.json files.")
    ] = EXPORT_DIR,
) -> None:
    """Write one JSON Schema file per topic."""
    for path in export_schemas(directory):
        typer.echo(str(path))
