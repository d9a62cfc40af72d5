"""``metering chaos`` (also ``python -m reliability``): run the fault-injection harness.

``run`` drives whole scenarios and prints each verdict; ``sink-host`` is the sink process a
run starts (not meant to be run by hand). Errors are ``MeteringError``: one line, exit 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from metering.errors import ConfigError, ConsistencyError
from metering.settings import load_settings
from reliability.report import verdict_table
from reliability.run import RunConfig, run
from reliability.scenarios import MODES, SCENARIOS, with_overrides
from reliability.sink_host import HostOptions, run_host

app = typer.Typer(help="Fault injection: real worker and sink, faults, invariants checked.")


@app.command("run")
def run_command(
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"Scenario to run (repeatable; default all): {', '.join(SCENARIOS)}."),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="fast (CI: 2 kills, 5 s outage) or full (20 kills, 30 s outage).")
    ] = "fast",
    seed: Annotated[int | None, typer.Option(help="Seed of the load and the fault points.")] = None,
    kills: Annotated[int | None, typer.Option(help="kill -9 count (kill-worker).")] = None,
    outage_s: Annotated[
        float | None, typer.Option(help="ClickHouse outage seconds (clickhouse-outage).")
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(help="Where logs, state and the verdicts go (default METERING_HOME/chaos/…)."),
    ] = None,
) -> None:
    """Run scenarios; print each verdict; exit 1 unless every invariant held.

    The broker is KAFKA_BOOTSTRAP_SERVERS, else one of the harness's own (always its own for
    broker-restarts); the ledger store is CLICKHOUSE_URL, else an embedded chDB store."""
    names = scenario or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or mode not in MODES:
        raise ConfigError(
            f"unknown scenario {unknown} or mode {mode!r}: scenarios are "
            f"{', '.join(SCENARIOS)}; modes {', '.join(MODES)}"
        )
    chosen = MODES[mode]
    shape = chosen.shape if seed is None else dataclasses.replace(chosen.shape, seed=seed)
    chosen = with_overrides(chosen, shape=shape, kills=kills, outage_s=outage_s)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the harness's own clients
    settings = load_settings()
    root = work_dir or settings.home / "chaos" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    console = Console()
    failed = []
    for name in names:
        config = RunConfig(
            scenario=SCENARIOS[name],
            mode=chosen,
            work_dir=root / name,
            bootstrap=settings.kafka_bootstrap_servers,
            clickhouse_url=settings.clickhouse_url,
        )
        verdict = asyncio.run(run(config))
        (root / f"{name}.json").write_bytes(verdict.to_json())
        console.print(verdict_table(verdict))
        if not verdict.ok:
            failed.append(f"{name}: {'; '.join(verdict.problems)}")
    console.print(f"verdicts and logs: {root}")
    if failed:
        raise ConsistencyError(" | ".join(failed))


@app.command("sink-host")
def sink_host_command(
    dump: Annotated[Path, typer.Option(help="Write the stored ledger here when stopped.")],
    database: Annotated[str, typer.Option(help="Database holding the ledger.")] = "chaos",
    batch_rows: Annotated[int, typer.Option(min=1)] = 5000,
    batch_ms: Annotated[int, typer.Option(min=1)] = 200,
    outage_s: Annotated[float, typer.Option(help="Seconds a SIGUSR2 outage lasts.")] = 30.0,
    landed: Annotated[int, typer.Option(help="Inserts per outage written before they fail.")] = 1,
) -> None:
    """The sink process of a run (see reliability/sink_host.py): SIGTERM stops it."""
    settings = load_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the sink host reads that broker")
    options = HostOptions(database, batch_rows, batch_ms, outage_s, landed)
    run_host(
        settings.kafka_bootstrap_servers,
        settings.topic_prefix,
        settings.ledger_store_url,
        options,
        dump,
    )
