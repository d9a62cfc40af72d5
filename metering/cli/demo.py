"""``metering demo``: the main job on embedded defaults, as far as the product is built today.

Brings up the real parts (a local Apache Kafka broker unless KAFKA_BOOTSTRAP_SERVERS names
one; the chDB ledger store with its migrations applied), folds the bundled walkthrough log
with the billing core exactly as ``metering replay`` does, prints what happened, and stops
everything it started. The live streaming demo (worker, sink, simulator) is not built yet,
and this command says so rather than pretending.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from billing.catalog import load_catalog
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from metering.cli.replay import summary_table
from metering.errors import ServiceUnavailable
from metering.replay.run import replay_file
from metering.settings import REPO_ROOT, Settings, load_settings
from metering.warehouse import connect, migrate

app = typer.Typer(help="Run the main job on embedded defaults.")

WALKTHROUGH = REPO_ROOT / "docs" / "examples" / "walkthrough.log.jsonl"


@contextlib.contextmanager
def kafka(settings: Settings, console: Console) -> Iterator[str]:
    """The configured broker, or a local one started for the demo and stopped after it."""
    if settings.kafka_bootstrap_servers:
        if not broker_answers(settings.kafka_bootstrap_servers):
            raise ServiceUnavailable(f"kafka at {settings.kafka_bootstrap_servers} does not answer")
        yield f"external broker at {settings.kafka_bootstrap_servers}"
        return
    console.print("starting a local Apache Kafka broker…")
    broker = LocalKafka.from_settings(settings).start()
    try:
        yield f"Apache Kafka {broker.version} (local, KRaft) at {broker.bootstrap_servers}"
    finally:
        broker.stop()
        console.print("local Kafka broker stopped")


@app.callback(invoke_without_command=True)
def demo() -> None:
    """Start the stack, bill the walkthrough log with the core, report, and stop."""
    settings = load_settings()
    console = Console()
    with kafka(settings, console) as broker:
        store = connect(settings.ledger_store_url)
        applied = migrate(store)
        version = store.command("SELECT version()")
        out_dir = settings.home / "demo"
        out_dir.mkdir(parents=True, exist_ok=True)
        output = out_dir / "OUT.jsonl"
        summary = replay_file(WALKTHROUGH, output, load_catalog(settings.catalog_path))
        console.print(summary_table(summary))
        console.print(routing_table(output))
        status = Table(title="stack", show_header=False)
        status.add_row("kafka", broker)
        status.add_row("ledger store", f"ClickHouse {version} at {settings.ledger_store_url}")
        status.add_row("migrations", f"{len(applied)} applied now (up to date)")
        status.add_row("replay output", str(output))
        status.add_row(
            "live pipeline",
            "not part of this demo yet: `metering worker` and `metering sink` run it; the simulator and the live demo arrive with issue #5",
        )
        console.print(status)


def routing_table(output: Path) -> Table:
    """Every route change in the replay output: exhaustion, fallback, restore."""
    table = Table(title="routing changes")
    for column in ("account", "seq", "route", "until", "reason", "at"):
        table.add_column(column)
    with output.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record["topic"] == "metering.routing":
                v = record["value"]
                table.add_row(
                    v["account_id"],
                    str(v["seq"]),
                    v["route"],
                    v["until"] or "",
                    v["reason"],
                    v["at"],
                )
    return table
