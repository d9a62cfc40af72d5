"""A faust-streaming table on the test broker survives a worker restart through its changelog.

The worker runs in a subprocess (``python -c`` calling :func:`run_worker` below), the way it
runs in production; the test talks to it only through Kafka: it produces events and reads the
table's changelog topic ``<app id>-counts-changelog``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.kafka.process import die_with_parent_prefix

pytestmark = pytest.mark.integration
T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 2
TABLE = "counts"
WAIT_S = 60.0
POLL_S = 0.25


# -- the worker side (runs in the subprocess) ---------------------------------------------


def build_app(app_id: str, bootstrap: str, topic_prefix: str, datadir: str) -> Any:
    """A tiny app: an agent counting events per key into a table."""
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",  # the table lives only in memory and its changelog
        web_enabled=False,
        datadir=datadir,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
    )
    events = app.topic(
        f"{topic_prefix}events",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
    )
    counts = app.Table(TABLE, default=int, key_type=str, value_type=int, partitions=PARTITIONS)

    @app.agent(events)
    async def count(stream: Any) -> None:
        async for key, _value in stream.items():
            account = key.decode()
            counts[account] = counts[account] + 1  # assigned back, so it reaches the changelog

    return app


def run_worker(app_id: str, bootstrap: str, topic_prefix: str, datadir: str) -> None:
    """Entry point of the worker subprocess; returns when SIGTERM stops the worker."""
    import faust

    app = build_app(app_id, bootstrap, topic_prefix, datadir)
    faust.Worker(app, loglevel="INFO", workdir=datadir).execute_from_commandline()


# -- the test side ------------------------------------------------------------------------


class WorkerProcess:
    """One worker subprocess, its output in a log file the failures quote."""

    def __init__(self, log_path: Path, argv: list[str], workdir: Path) -> None:
        self.log_path = log_path
        script = (
            "import sys; from tests.integration.test_faust_table_smoke import run_worker; "
            "run_worker(*sys.argv[1:])"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                # setpriv: the worker gets SIGTERM if this test process dies first.
                [*die_with_parent_prefix(), sys.executable, "-c", script, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def ready(self) -> bool:
        """True once the worker logged that recovery finished and its streams are positioned.

        Events already waiting while a worker is assigned partitions can be delivered twice
        (faust resumes its fetcher before seeking to the committed offsets: at-least-once), so
        the test produces only to a ready worker and can then expect exact counts.
        """
        return "[^Worker]: Ready" in self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"worker exited with {code}:\n{self.tail()}"

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, as a deployment stops a worker; SIGKILL if it is still there after that."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()


async def _eventually(
    observe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    what: str,
    worker: WorkerProcess,
) -> T:
    """Poll ``observe`` until ``accept`` takes its value; after ``WAIT_S`` fail with the last
    value seen and the worker's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        worker.assert_running()
        seen = await observe()
        if accept(seen):
            return seen
        if loop.time() >= deadline:
            pytest.fail(
                f"{what} not seen within {WAIT_S:.0f}s; last seen {seen!r}; worker log:\n"
                f"{worker.tail()}"
            )
        await asyncio.sleep(POLL_S)


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, keys: list[str]) -> None:
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True) as producer:
        for n, key in enumerate(keys):
            await producer.send(topic, f"event-{n}".encode(), key=key.encode())


async def _changelog(bootstrap: str, topic: str) -> dict[str, int]:
    """The table as its changelog says: the last value of each key, read from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return {}  # the worker has not created it yet
        # The worker creates the changelog with the table's partitions.
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        table: dict[str, int] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(*tps, timeout_ms=500)).values():
                for record in batch:
                    if record.key is not None and record.value is not None:
                        table[json.loads(record.key)] = int(json.loads(record.value))
        return table
    finally:
        await consumer.stop()


async def _committed_all(bootstrap: str, group: str, topic: str) -> bool:
    """True when the group's committed offsets reach the end of every partition of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return all(tp in committed and committed[tp].offset >= ends[tp] for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def test_table_counts_continue_after_a_worker_restart(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    app_id = f"{kafka_topic_prefix}app"
    events = f"{kafka_topic_prefix}events"
    changelog = f"{app_id}-{TABLE}-changelog"
    argv = [app_id, kafka_bootstrap, kafka_topic_prefix, str(tmp_path)]
    first = [f"acct-{n % 3}" for n in range(30)]  # 10 events for each of 3 accounts
    second = [f"acct-{n % 4}" for n in range(20)]  # 5 more each, and a new account
    expected_first = dict(Counter(first))
    expected_total = dict(Counter(first) + Counter(second))

    async def table() -> dict[str, int]:
        return await _changelog(kafka_bootstrap, changelog)

    async def offsets_committed() -> bool:
        return await _committed_all(kafka_bootstrap, app_id, events)

    # given a worker that counted a first batch of events into its table
    await _create_topic(kafka_bootstrap, events)
    worker = WorkerProcess(tmp_path / "worker-1.log", argv, tmp_path)
    try:
        await _eventually(worker.ready, bool, "first worker ready", worker)
        await _produce(kafka_bootstrap, events, first)
        await _eventually(table, expected_first.__eq__, "first counts", worker)
        await _eventually(offsets_committed, bool, "committed offsets", worker)
    finally:
        worker.stop()

    # when a new worker process starts (its memory store empty) and more events arrive
    worker = WorkerProcess(tmp_path / "worker-2.log", argv, tmp_path)
    try:
        await _eventually(worker.ready, bool, "second worker ready", worker)
        await _produce(kafka_bootstrap, events, second)

        # then the counts continue from the first batch: the table was restored from its changelog
        counts = await _eventually(table, expected_total.__eq__, "restored counts", worker)
        assert counts == {"acct-0": 15, "acct-1": 15, "acct-2": 15, "acct-3": 5}
    finally:
        worker.stop()
