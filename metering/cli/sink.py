"""``metering sink``: run the ClickHouse sink of ``metering.ledger`` until SIGTERM/SIGINT.

Needs the broker the worker writes to (``KAFKA_BOOTSTRAP_SERVERS``) and opens the ledger
store (``CLICKHOUSE_URL``, default the embedded chDB store, which this process then owns),
applies the migrations, and consumes. ``metering sink roles`` sets up the server-mode roles.
Errors are ``MeteringError`` and become one line in ``metering.cli.app.main``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from metering.errors import ConfigError, ServiceUnavailable
from metering.settings import Settings, load_settings
from metering.sink.consumer import LedgerSink, SinkConfig, kafka_consumer
from metering.sink.metrics import SinkMetrics
from metering.sink.roles import ROLES, apply_roles
from metering.sink.writer import ClickHouseLedgerStore, LedgerWriter
from metering.warehouse import (
    DEFAULT_DATABASE,
    DEFAULT_MIGRATIONS_DIR,
    connect,
    migrate,
    parse_url,
    release,
)

app = typer.Typer(help="The ClickHouse sink of the immutable ledger topic.")

Database = Annotated[str, typer.Option("--database", help="Database holding the ledger.")]


@app.callback(invoke_without_command=True)
def sink(
    ctx: typer.Context,
    database: Database = DEFAULT_DATABASE,
    migrations_dir: Annotated[
        Path,
        typer.Option(
            "--migrations-dir",
            envvar="METERING_MIGRATIONS_DIR",
            help="Folder of NNNN_<slug>.sql files applied before consuming.",
            file_okay=False,
        ),
    ] = DEFAULT_MIGRATIONS_DIR,
    apply_migrations: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply pending migrations first (--no-migrate when a writer-only user runs it).",
        ),
    ] = True,
    batch_rows: Annotated[int, typer.Option(min=1, help="Flush at this many records.")] = 5000,
    batch_ms: Annotated[
        int, typer.Option(min=1, help="Or when the oldest waited this long.")
    ] = 200,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0, help="Serve Prometheus /metrics on this port (METERING_WEB_HOST); 0 = off."
        ),
    ] = 0,
    group: Annotated[
        str | None,
        typer.Option(
            help="Consumer group (default <prefix>metering.ledger-sink); another group fills "
            "another store with the whole ledger, side by side."
        ),
    ] = None,
) -> None:
    """Consume metering.ledger into ClickHouse; commit offsets only after each insert."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the sink must read the broker the worker "
            "writes to (e.g. export KAFKA_BOOTSTRAP_SERVERS=$(metering kafka up))"
        )
    config = SinkConfig.for_prefix(
        settings.topic_prefix,
        max_rows=batch_rows,
        max_wait_s=batch_ms / 1000,
        **({"group_id": group} if group else {}),
    )
    url = settings.ledger_store_url
    try:
        client = connect(url)
        if apply_migrations:
            migrate(
                client,
                migrations_dir=migrations_dir,
                database=database,
                cluster=settings.clickhouse_cluster,
            )
        store = ClickHouseLedgerStore(client, database)
        asyncio.run(_serve(settings, store, config, metrics_port))
    finally:
        release(url)


async def _serve(
    settings: Settings, store: ClickHouseLedgerStore, config: SinkConfig, metrics_port: int = 0
) -> None:
    assert settings.kafka_bootstrap_servers is not None
    metrics = SinkMetrics()
    if metrics_port:  # a daemon thread of prometheus-client; it dies with the process
        try:
            start_http_server(metrics_port, addr=settings.web_host, registry=metrics.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve /metrics on {settings.web_host}:{metrics_port}: {exc.strerror}"
            ) from exc
    consumer = kafka_consumer(settings.kafka_bootstrap_servers, config)
    sink = LedgerSink(consumer, LedgerWriter(store, metrics, config.backoff), config, metrics)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, sink.stop)
    try:
        await sink.run()
    except KafkaError as exc:
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap_servers}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    typer.echo(
        f"sink stopped: {int(metrics.value('rows_inserted_total'))} rows in "
        f"{int(metrics.value('batches_total'))} batches, "
        f"{int(metrics.value('poison_records_total'))} poison records skipped"
    )


@app.command("roles")
def roles_command(database: Database = DEFAULT_DATABASE) -> None:
    """Create the server roles metering_writer and metering_analyst (sql/access/roles.sql)."""
    url = load_settings().ledger_store_url
    if parse_url(url).kind == "chdb":
        typer.echo(
            "roles: skipped: the embedded store (chDB) has no users or roles; only the process "
            "that owns it can open it. Point CLICKHOUSE_URL at a ClickHouse server to use roles."
        )
        return
    try:
        apply_roles(connect(url), database)
    finally:
        release(url)
    typer.echo(f"roles: {', '.join(ROLES)} granted on {database}")
