"""The commands' progress bar: on stderr, gone when done, off with ``--quiet``."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TimeRemainingColumn,
)


def progress_bar(
    console: Console, *, quiet: bool, counter: ProgressColumn | None = None
) -> Progress:
    """Description, bar, ``counter`` (default: done/total) and time left."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        counter or MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
