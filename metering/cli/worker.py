"""``metering worker``: run the billing worker (Faust) against the configured broker."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from billing.catalog import load_catalog
from metering.errors import ConfigError
from metering.settings import load_settings

app = typer.Typer(help="Run the billing worker.")


@app.callback(invoke_without_command=True)
def worker(
    web_port: Annotated[
        int, typer.Option(help="Port of the worker's web views (on METERING_WEB_HOST).")
    ] = 6066,
    store: Annotated[
        str | None,
        typer.Option(
            help="Table store: rocksdb:// (default; files under METERING_HOME/faust) "
            "or memory:// (rebuilt from the changelogs at every start)."
        ),
    ] = None,
    app_id: Annotated[
        str, typer.Option(help="Faust app id (consumer group and changelog names).")
    ] = "metering-worker",
) -> None:
    """Charge every input record; stops cleanly on SIGTERM."""
    import faust

    from streams import web
    from streams.admin import cluster_replication, ensure_topics
    from streams.topology import build
    from streams.worker import BillingWorker

    settings = load_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: `metering kafka up` prints one")
    bootstrap = settings.kafka_bootstrap_servers
    replication = asyncio.run(cluster_replication(settings, bootstrap))
    topology = build(
        settings, app_id=app_id, store=store, web_port=web_port, replication=replication
    )
    asyncio.run(ensure_topics(settings, bootstrap, replication, topology.changelogs()))
    web.register(BillingWorker(topology, load_catalog(settings.catalog_path)))
    faust.Worker(topology.app, loglevel=logging.INFO, quiet=True).execute_from_commandline()
