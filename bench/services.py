"""The live parts a benchmark runs on: a broker, worker processes, the ledger sink, topics.

Every part is a context manager that leaves nothing running when it exits (the machine is
shared). Workers and the sink are the product's own (``metering.demo.stack``): a benchmark
measures what ships, not a copy of it. The sink runs in the benchmark's process, which then
owns the embedded ClickHouse store (chDB allows one owner per directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from clickhouse_connect.driver.client import Client

from bench.workload import Record
from deploy.kafka.config import free_ports
from deploy.kafka.launcher import LocalKafka
from metering.demo.stack import WORKER_START_TIMEOUT_S, ledger_sink, worker_process
from metering.settings import Settings, load_settings
from metering.sink.consumer import LedgerSink
from metering.warehouse import connect, migrate, release
from streams.admin import ensure_topics


@contextlib.contextmanager
def work_dir() -> Iterator[Path]:
    """A temporary directory for a benchmark's files, removed after a success; after a
    failure it is kept (its path printed) so the worker logs in it can be read."""
    path = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        yield path
    except BaseException:
        print(f"work directory kept: {path}", file=sys.stderr)
        raise
    shutil.rmtree(path, ignore_errors=True)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes used so far (Linux ``/proc``): a cost per event
    that the neighbours' load does not inflate, unlike wall time."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def stop_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so every context manager stops what it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


POLL_S = 0.02
"""How often a condition is polled: the resolution of a wall-clock figure taken by polling."""


@contextlib.contextmanager
def broker() -> Iterator[tuple[str, str]]:
    """(bootstrap servers, description): ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local
    Apache Kafka broker started here (jars from Maven Central, cached) and stopped on exit."""
    settings = load_settings()
    if settings.kafka_bootstrap_servers:
        yield settings.kafka_bootstrap_servers, "external broker (KAFKA_BOOTSTRAP_SERVERS)"
        return
    with LocalKafka.from_settings(settings, startup_timeout_s=120.0, heap="1g") as kafka:
        yield kafka.bootstrap_servers, f"Apache Kafka {kafka.version}, local single-node KRaft"


@dataclass(frozen=True)
class Run:
    """One measurement's namespace on the broker: topic prefix, partitions, work directory."""

    bootstrap: str
    prefix: str
    partitions: int
    home: Path
    catalog: Path | None = None

    @property
    def settings(self) -> Settings:
        return load_settings().model_copy(
            update={
                "kafka_bootstrap_servers": self.bootstrap,
                "topic_prefix": self.prefix,
                "partitions": self.partitions,
                "home": self.home,
            }
        )

    def env(self) -> dict[str, str]:
        """A worker's environment for this run."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "METERING_TOPIC_PREFIX": self.prefix,
            "METERING_PARTITIONS": str(self.partitions),
            "METERING_HOME": str(self.home),
        }
        if self.catalog is not None:
            env["METERING_CATALOG"] = str(self.catalog)
        return env

    def topic(self, name: str) -> str:
        return self.prefix + name

    async def create_topics(self, *extra: str) -> None:
        """The pipeline's topics, and ``extra`` ones (names without prefix) alike."""
        await ensure_topics(self.settings, self.bootstrap)
        if extra:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(self.topic(name), self.partitions, 1) for name in extra]
                )
            finally:
                await admin.close()


@contextlib.asynccontextmanager
async def workers(
    run: Run, count: int, app_id: str = "bench", start_timeout_s: float = WORKER_START_TIMEOUT_S
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``metering worker`` processes of one app (RocksDB tables, the production
    store), started together and each ready (Faust logged "Ready"); SIGTERM on exit.

    Started in threads, so the event loop (the sink's consumer) keeps running meanwhile."""
    stacks = [contextlib.ExitStack() for _ in range(count)]

    def start(stack: contextlib.ExitStack, n: int, port: int) -> subprocess.Popen[bytes]:
        log_path = run.home / f"worker-{app_id}-{n}.log"
        # Each worker its own METERING_HOME: RocksDB locks a table's files to one process.
        env = {**run.env(), "METERING_HOME": str(run.home / f"worker-{n}")}
        return stack.enter_context(
            worker_process(
                env,
                port,
                log_path,
                store="rocksdb://",
                app_id=app_id,
                start_timeout_s=start_timeout_s,
            )
        )

    try:
        procs = await asyncio.gather(
            *(asyncio.to_thread(start, stack, n, port)
              for n, (stack, port) in enumerate(zip(stacks, free_ports(count), strict=True)))
        )  # fmt: skip
        yield list(procs)
    finally:
        await asyncio.gather(*(asyncio.to_thread(stack.close) for stack in stacks))


@contextlib.asynccontextmanager
async def sink(run: Run) -> AsyncIterator[tuple[LedgerSink, Client, str]]:
    """The ClickHouse sink of this run's ledger, in this process, on an embedded store of its
    own: (sink, client, database)."""
    url = f"chdb://{run.home / 'chdb'}"
    client = connect(url)
    database = "bench"
    try:
        migrate(client, database=database)
        async with ledger_sink(run.bootstrap, run.prefix, client, database) as running:
            yield running, client, database
    finally:
        release(url)


def ledger_rows(client: Client, database: str) -> int:
    """Rows in the ledger table (each entry once: the benchmarks never re-deliver)."""
    return int(client.query(f"SELECT count() FROM {database}.ledger").result_rows[0][0])


async def produce(run: Run, records: Iterable[Record]) -> None:
    """Send every record to its topic (keyed), as fast as the broker takes them; all acked."""
    async with AIOKafkaProducer(
        bootstrap_servers=run.bootstrap, linger_ms=20, max_batch_size=1 << 20
    ) as producer:
        pending = [
            await producer.send(run.topic(topic), value, key=key) for topic, key, value in records
        ]
        await asyncio.gather(*pending)


async def end_offsets(run: Run, topic: str) -> int:
    """Records in ``topic`` (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(run.partitions)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class TopicScan:
    """What a topic holds: its values and their record timestamps (ms), in read order."""

    values: list[bytes]
    timestamps: list[int]

    @property
    def span_s(self) -> float:
        return (max(self.timestamps) - min(self.timestamps)) / 1000 if self.timestamps else 0.0


async def scan(run: Run, topic: str, count: int, timeout_s: float = 300.0) -> TopicScan:
    """The first ``count`` records of ``topic`` (all partitions), read from the start."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=run.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, max_poll_records=10_000,
    )  # fmt: skip
    await consumer.start()
    values: list[bytes] = []
    stamps: list[int] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(values) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {len(values)} of {count} records in {timeout_s:.0f}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values += [r.value for r in records]
                stamps += [r.timestamp for r in records]
    finally:
        await consumer.stop()
    return TopicScan(values, stamps)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 600.0
) -> float:
    """Poll ``condition`` every ``POLL_S`` until true; returns the wall time (epoch s) it was
    first seen true. Raises ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_S)
    return time.time()
