"""The demo, step by step: the whole product live on one machine, then proven against replay.

1. Write the demo catalog (minute-long windows, caps ×0.1) so windows run out and reset.
2. Start the broker (or use KAFKA_BOOTSTRAP_SERVERS), create this run's topics (a fresh
   prefix per run, so re-running never mixes runs), open the chDB ledger store and recreate
   the ``demo`` database.
3. Start a worker process; in this process run the sink (owner of the chDB store), a monitor
   of the output topics, the gateway's routing view and its publisher.
4. Run the simulator in real time, the simulated gateway obeying the routing view, with a
   live terminal view.
5. Wait until every ledger entry is in ClickHouse; read the input topics back and replay them
   with the billing core; compare entry for entry; print the report; draw the chart.
6. Stop everything (context managers, in reverse order), whatever happened.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from billing.catalog import load_catalog
from billing.catalog.model import Catalog
from deploy.kafka.config import free_ports
from gateway import RoutingView
from metering.demo.catalog import WINDOW_5H_S, write_demo_catalog
from metering.demo.chart import window_chart
from metering.demo.monitor import Monitor, PipelineView
from metering.demo.report import Consistency, compare, replay_ledger, report_tables
from metering.demo.stack import kafka, ledger_sink, worker_process
from metering.demo.traffic import TrafficStats, drive
from metering.errors import ServiceUnavailable
from metering.replay.kafka_log import read_inputs
from metering.settings import Settings
from metering.sink.consumer import LedgerSink
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import connect, migrate, release
from simulator.config import SimulationConfig
from streams.admin import ensure_topics

DATABASE = "demo"
DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 150.0
    accounts: int = 40
    rate: float = 20.0
    seed: int = 7
    settle: float = float(WINDOW_5H_S)
    """Seconds to keep watching after the traffic: one window, so the last ones restore."""


@dataclass(frozen=True)
class DemoOutcome:
    consistency: Consistency
    chart: Path
    view: PipelineView
    traffic: TrafficStats
    unfunded: int


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> DemoOutcome:
    out_dir = settings.home / "demo"
    catalog_path = write_demo_catalog(out_dir / "catalog.yaml")
    catalog = load_catalog(catalog_path)
    prefix = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}-"
    with kafka(settings, console) as (bootstrap, described):
        console.print(f"kafka: {described}")
        run_settings = settings.model_copy(
            update={"kafka_bootstrap_servers": bootstrap, "topic_prefix": prefix}
        )
        asyncio.run(ensure_topics(run_settings, bootstrap))
        url = settings.ledger_store_url
        client = connect(url)
        try:
            client.command(f"DROP DATABASE IF EXISTS {DATABASE} SYNC")
            migrate(client, database=DATABASE)
            console.print(f"ledger store: ClickHouse at {url}, database {DATABASE}")
            env = worker_env(run_settings, catalog_path)
            console.print("starting the billing worker…")
            with worker_process(env, free_ports(1)[0], out_dir / "worker.log"):
                return asyncio.run(
                    _live(bootstrap, prefix, client, catalog, options, out_dir, console)
                )
        finally:
            release(url)


def worker_env(settings: Settings, catalog_path: Path) -> dict[str, str]:
    """The worker subprocess's environment: this run's broker, topics, catalog and home."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "METERING_TOPIC_PREFIX": settings.topic_prefix,
        "METERING_CATALOG": str(catalog_path),
        "METERING_HOME": str(settings.home),
        "METERING_PARTITIONS": str(settings.partitions),
    }


async def _live(
    bootstrap: str,
    prefix: str,
    client: Client,
    catalog: Catalog,
    options: DemoOptions,
    out_dir: Path,
    console: Console,
) -> DemoOutcome:
    store = ClickHouseLedgerStore(client, DATABASE)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    config = SimulationConfig(
        seed=options.seed,
        accounts=options.accounts,
        rate=options.rate,
        duration=options.duration,
        start=start,
        duplicate_rate=0.01,
        malformed_rate=0.002,
        discount_interval=30.0,
        plan_limits=False,  # --rate is the load the demo shows, not what RPM limits let through
    )
    stats = TrafficStats()
    async with (
        ledger_sink(bootstrap, prefix, client, DATABASE) as sink,
        Monitor(bootstrap, prefix) as monitor,
        RoutingView(bootstrap, topic_prefix=prefix) as routes,
    ):
        await routes.wait_ready(timeout=60)
        began = time.monotonic()
        traffic = asyncio.create_task(drive(config, catalog, bootstrap, prefix, routes, stats))
        with Live(console=console, refresh_per_second=4) as live:
            while not traffic.done():
                live.update(_panel(monitor.view, stats, sink, began, options.duration))
                await asyncio.wait({traffic}, timeout=0.5)
            traffic.result()  # a failed simulator fails the demo, with its reason
            console.print("traffic done; waiting for the pipeline to drain into ClickHouse…")
            await _drained(monitor, store, options.settle, lambda: live.update(
                _panel(monitor.view, stats, sink, began, options.duration)))  # fmt: skip
        inputs = await read_inputs(bootstrap, prefix)
    stored = await asyncio.to_thread(store.entries)
    consistency = compare(stored, replay_ledger(inputs, catalog))
    end = datetime.now(UTC) + timedelta(days=1)
    for table in report_tables(client, DATABASE, start - timedelta(days=40), end):
        console.print(table)
    chart = window_chart(stored, monitor.view.quota_events, out_dir / "windows.png")
    unfunded = sum(1 for e in stored if e.funding == "unfunded" and e.kind == "charge")
    return DemoOutcome(consistency, chart, monitor.view, stats, unfunded)


async def _drained(
    monitor: Monitor, store: ClickHouseLedgerStore, settle: float, refresh: Callable[[], None]
) -> None:
    """Until the ledger stopped growing for a few seconds and ClickHouse holds all of it.

    Windows reset one demo minute after they opened: settling a window's length lets the
    last exhausted windows be restored (and shown) before the report.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S + settle
    settle_until = time.monotonic() + settle
    last_count, last_change = -1, time.monotonic()
    while True:
        refresh()
        count = len(monitor.view.ledger_ids)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        quiet = time.monotonic() - last_change > 3.0
        if quiet and time.monotonic() >= settle_until:
            stored = len(await asyncio.to_thread(store.entries))
            if stored == count:
                return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"the pipeline did not drain within {DRAIN_TIMEOUT_S:.0f}s "
                f"({last_count} ledger entries on the topic)"
            )
        await asyncio.sleep(0.5)  # poll interval of the drain check


def _panel(
    view: PipelineView, stats: TrafficStats, sink: LedgerSink, began: float, duration: float
) -> Group:
    elapsed = time.monotonic() - began
    phase = (
        f"traffic {elapsed:3.0f}s of {duration:.0f}s"
        if elapsed < duration
        else f"traffic done, draining ({elapsed - duration:3.0f}s)"
    )
    table = Table(title=f"live pipeline — {phase}", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    rate = stats.sent / max(min(elapsed, duration), 1e-9)
    table.add_row("events sent", f"{stats.sent:,} ({rate:,.1f}/s)")
    table.add_row("ledger entries", f"{len(view.ledger_ids):,}")
    table.add_row(
        "in ClickHouse", f"{int(sink.metrics.value('rows_inserted_total')):,} rows inserted"
    )
    table.add_row("windows exhausted", f"{view.exhaustions:,}")
    table.add_row("windows restored", f"{view.restores:,}")
    routes = view.routes_by_kind()
    table.add_row(
        "routes now",
        ", ".join(f"{kind} {n}" for kind, n in sorted(routes.items())) or "-",
    )
    table.add_row("gateway sent on fallback / refused", f"{stats.rerouted:,} / {stats.refused:,}")
    dead = ", ".join(f"{code} {n}" for code, n in sorted(view.dead_letters.items()))
    table.add_row("dead letters", dead or "0")
    return Group(table)
