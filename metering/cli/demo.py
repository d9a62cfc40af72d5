"""``metering demo``: the README's main command — the whole product live, on embedded defaults.

The steps are in ``metering/demo/run.py``. Exit 0 only when ClickHouse holds exactly what the
offline replay of the same input events derives.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from metering.demo.run import DemoOptions, run_demo
from metering.errors import ConsistencyError
from metering.settings import load_settings

app = typer.Typer(help="Run the whole pipeline live on embedded defaults, then prove the bill.")


@app.callback(invoke_without_command=True)
def demo(
    duration: Annotated[
        float, typer.Option(min=10, help="Seconds of live traffic (real time).")
    ] = DemoOptions.duration,
    accounts: Annotated[
        int, typer.Option(min=3, help="Simulated accounts (both plan families).")
    ] = DemoOptions.accounts,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Requests per second over all accounts.")
    ] = DemoOptions.rate,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = DemoOptions.seed,
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds to keep watching after the traffic stops.")
    ] = DemoOptions.settle,
) -> None:
    """Broker, worker, sink, simulator, live view; then report, chart and the replay check."""
    console = Console()
    options = DemoOptions(duration=duration, accounts=accounts, rate=rate, seed=seed, settle=settle)
    outcome = run_demo(load_settings(), options, console)
    summary = Table(title="demo summary", show_header=False)
    summary.add_row("windows exhausted / restored",
                    f"{outcome.view.exhaustions} / {outcome.view.restores}")  # fmt: skip
    summary.add_row("requests sent by the gateway", f"{outcome.traffic.by_kind['request']:,}")
    summary.add_row("served on the fallback key", f"{outcome.traffic.rerouted:,}")
    summary.add_row("refused while blocked", f"{outcome.traffic.refused:,}")
    summary.add_row("leakage (unfunded requests in the ledger)", f"{outcome.unfunded:,}")
    summary.add_row("dead letters", f"{sum(outcome.view.dead_letters.values()):,}")
    summary.add_row("chart", str(outcome.chart))
    console.print(summary)
    console.print(outcome.consistency.table())
    if not outcome.consistency.ok:
        c = outcome.consistency
        raise ConsistencyError(
            f"ClickHouse differs from the replay: {len(c.missing)} missing, {len(c.extra)} "
            f"extra, {len(c.different)} different entries"
        )
    console.print("[green]consistency check passed[/green]: ClickHouse = replay of the same events")
