"""The sink process of a run: ``metering sink``'s own parts, two fault switches and a dump.

The consumers are ``metering.sink.LedgerSink``s built by ``metering.demo.stack.ledger_sink``
(the code ``metering sink`` runs), over one client of the run's store; the process owns the
store (chDB allows one process per directory), so it also reads the ledger back at the end.

Signals, as the harness sends them:
- SIGTERM / SIGINT: stop — each consumer flushes its batch, commits and closes, as
  ``metering sink`` does; then the stored ledger is written to ``--dump``;
- SIGUSR1: one more consumer joins the group (a rebalance, whatever the others hold);
- SIGUSR2: ClickHouse fails for ``--outage-s`` seconds (``reliability.outage``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from clickhouse_connect.driver.client import Client

from metering.demo.stack import ledger_sink
from metering.sink.consumer import LedgerSink
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import connect, migrate, release
from reliability.outage import OutageClient

log = logging.getLogger(__name__)

METRICS = (
    "rows_inserted_total",
    "batches_total",
    "retries_total",
    "duplicates_skipped_total",
    "poison_records_total",
    "commit_failures_total",
)


@dataclass(frozen=True)
class HostOptions:
    database: str
    batch_rows: int = 5000
    batch_ms: int = 200
    outage_s: float = 30.0
    landed: int = 1
    """Inserts per outage that reach the store before failing (a timeout after the write)."""


def run_host(bootstrap: str, prefix: str, url: str, options: HostOptions, dump: Path) -> None:
    """Migrate, consume until SIGTERM, then dump the stored ledger (the process owns the store)."""
    try:
        raw = connect(url)
        migrate(raw, database=options.database)
        client = OutageClient(raw, landed=options.landed)
        consumers = asyncio.run(_consume(bootstrap, prefix, client, options))
        # Read back past any outage: this is the harness looking, not the sink writing.
        store = ClickHouseLedgerStore(raw, options.database)
        entries = store.entries()
        raw_rows = int(raw.query(f"SELECT count() FROM {store.database}.ledger").result_rows[0][0])
    finally:
        release(url)
    report = {
        "entries": [entry.model_dump(mode="json") for entry in entries],
        "raw_rows": raw_rows,
        "consumers": consumers,
        "outage": {
            "failed_calls": client.failed_calls,
            "landed_then_failed": client.landed_then_failed,
        },
    }
    dump.write_bytes(orjson.dumps(report))
    log.info("sink host stopped: %d entries stored, %d raw rows", len(entries), raw_rows)


async def _consume(
    bootstrap: str, prefix: str, client: OutageClient, options: HostOptions
) -> list[dict[str, Any]]:
    """Step by step: 1. the first consumer; 2. the switches; 3. wait for SIGTERM; 4. stop
    every consumer (leaving the stack flushes, commits and closes each, last joined first)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    joins = asyncio.Queue[None]()
    sinks: list[LedgerSink] = []
    overrides = {"max_rows": options.batch_rows, "max_wait_s": options.batch_ms / 1000}
    store_client = cast(Client, client)  # a stand-in with the two calls the store makes
    async with contextlib.AsyncExitStack() as stack:

        async def join() -> None:
            sink = await stack.enter_async_context(
                ledger_sink(bootstrap, prefix, store_client, options.database, **overrides)
            )
            sinks.append(sink)
            log.info("sink consumer %d joined the group", len(sinks))

        # Step 1.
        await join()
        # Step 2.
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, joins.put_nowait, None)
        loop.add_signal_handler(signal.SIGUSR2, _outage, client, options.outage_s)
        # Step 3.
        while True:
            joined = asyncio.create_task(joins.get())
            halted = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({joined, halted}, return_when=asyncio.FIRST_COMPLETED)
            joined.cancel()
            halted.cancel()
            if halted in done:
                break
            await join()
        # Step 4.
        log.info("sink host stopping %d consumers", len(sinks))
    return [{name: sink.metrics.value(name) for name in METRICS} for sink in sinks]


def _outage(client: OutageClient, seconds: float) -> None:
    client.begin(seconds)
    log.warning("injected ClickHouse outage: every query and insert fails for %.0f s", seconds)
