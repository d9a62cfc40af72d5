"""The parts the demo starts and stops: the broker, a worker process and the ledger sink.

Each is a context manager that leaves nothing running when it exits, whatever happened
inside (Ctrl-C included): the demo must be re-runnable on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from rich.console import Console

from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from metering.errors import ServiceUnavailable
from metering.settings import Settings
from metering.sink.consumer import LedgerSink, SinkConfig, kafka_consumer
from metering.sink.metrics import SinkMetrics
from metering.sink.writer import ClickHouseLedgerStore, LedgerWriter

WORKER_READY = b"[^Worker]: Ready"
WORKER_START_TIMEOUT_S = 120.0


@contextlib.contextmanager
def kafka(settings: Settings, console: Console) -> Iterator[tuple[str, str]]:
    """(bootstrap servers, description) of the configured broker, or of a local one
    started here and stopped on exit."""
    if settings.kafka_bootstrap_servers:
        if not broker_answers(settings.kafka_bootstrap_servers):
            raise ServiceUnavailable(f"kafka at {settings.kafka_bootstrap_servers} does not answer")
        bootstrap = settings.kafka_bootstrap_servers
        yield bootstrap, f"external broker at {bootstrap}"
        return
    console.print("starting a local Apache Kafka broker…")
    broker = LocalKafka.from_settings(settings).start()
    try:
        yield (
            broker.bootstrap_servers,
            f"Apache Kafka {broker.version} (local, KRaft) at {broker.bootstrap_servers}",
        )
    finally:
        broker.stop()
        console.print("local Kafka broker stopped")


def wait_for_log(
    proc: subprocess.Popen[bytes], log_path: Path, marker: bytes, timeout: float = 90.0
) -> None:
    """Return once ``marker`` is in the process's log; fail if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while marker not in log_path.read_bytes():
        if proc.poll() is not None:
            raise ServiceUnavailable(
                f"the worker exited with {proc.returncode}; its log: {log_path}\n"
                + log_path.read_text(errors="replace")[-2000:]
            )
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"the worker did not log {marker.decode()!r} within {timeout:.0f}s; "
                f"its log: {log_path}\n" + log_path.read_text(errors="replace")[-2000:]
            )
        time.sleep(0.2)  # poll interval while the worker starts


@contextlib.contextmanager
def worker_process(
    env: dict[str, str],
    port: int,
    log_path: Path,
    *,
    store: str = "memory://",
    app_id: str = "metering-worker",
    start_timeout_s: float = WORKER_START_TIMEOUT_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """``metering worker`` as a subprocess, ready when Faust logs "Ready"; SIGTERM on exit."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from metering.cli.app import main; main()", "worker",
             "--store", store, "--web-port", str(port), "--app-id", app_id],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_log(proc, log_path, WORKER_READY, start_timeout_s)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def ledger_sink(
    bootstrap: str,
    prefix: str,
    client: Client,
    database: str,
    consumer: Any = None,
    **overrides: Any,
) -> AsyncIterator[LedgerSink]:
    """The ClickHouse sink as a task of this process (which then owns the embedded store);
    on exit it is stopped (flush, commit, close) and awaited."""
    config = SinkConfig.for_prefix(prefix, **overrides)
    metrics = SinkMetrics()
    writer = LedgerWriter(ClickHouseLedgerStore(client, database), metrics, config.backoff)
    sink = LedgerSink(consumer or kafka_consumer(bootstrap, config), writer, config, metrics)
    task = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        sink.stop()
        await asyncio.wait_for(task, timeout=60)
