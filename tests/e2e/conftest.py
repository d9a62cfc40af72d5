"""Shared end-to-end pieces: a worker subprocess on the real broker, publishing, collecting."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.kafka.config import free_ports
from metering.demo.stack import worker_process
from schemas import topics
from tests.factories import encode, topic_for

SOURCE_FIELDS = frozenset({"source_topic", "source_partition", "source_offset"})
"""Where an entry was read from: the live log's offsets, not the replayed file's lines."""


@pytest.fixture
def worker_env(kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    """The worker's environment; a test may add to it before ``worker`` starts."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "METERING_TOPIC_PREFIX": kafka_topic_prefix,
        "METERING_HOME": str(tmp_path),
        "METERING_PARTITIONS": "2",
    }


@pytest.fixture
def worker_port() -> int:
    return free_ports(1)[0]


@contextlib.contextmanager
def running_worker(
    env: dict[str, str], port: int, log_path: Path, store: str = "memory://"
) -> Iterator[subprocess.Popen[bytes]]:
    """``metering worker`` as a subprocess until Faust logs "Ready"; SIGTERM when done."""
    with worker_process(env, port, log_path, store=store, app_id="e2e") as proc:
        yield proc


@pytest.fixture
def worker_store() -> str:
    """The worker's table store; a test module may override it (production uses rocksdb)."""
    return "memory://"


@pytest.fixture
def worker(
    worker_env: dict[str, str], worker_port: int, worker_store: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(worker_env, worker_port, tmp_path / "worker.log", worker_store) as proc:
        yield proc


async def publish(bootstrap: str, prefix: str, values: list[dict[str, Any] | bytes]) -> list[int]:
    """Send each value to its topic keyed by account, in order; their record timestamps (ms)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    stamps = []
    try:
        for value in values:
            if isinstance(value, bytes):
                sent = await producer.send_and_wait(
                    prefix + topics.REQUESTS, value, key=b"acct_zen"
                )
            else:
                key = value.get("account_id") or value["model"]
                sent = await producer.send_and_wait(
                    prefix + topic_for(value), encode(value), key=key.encode()
                )
            stamps.append(sent.timestamp)
    finally:
        await producer.stop()
    return stamps


async def collect(
    bootstrap: str, topic: str, count: int, timeout: float = 120, distinct: str | None = None
) -> list[dict[str, Any]]:
    """Records of ``topic`` from the start until ``count`` arrived (or ``count`` distinct values
    of the field ``distinct``: at-least-once delivery may repeat a record), or the timeout."""

    def enough() -> bool:
        if distinct is None:
            return len(found) >= count
        return len({record[distinct] for record in found}) >= count

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while not enough() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [orjson.loads(m.value) for records in batch.values() for m in records]
    finally:
        await consumer.stop()
    return found


def ledger_diff(
    want: list[dict[str, Any]], got: list[dict[str, Any]]
) -> tuple[list[str], list[str], dict[str, dict[str, tuple[Any, Any]]]]:
    """(missing entry ids, extra entry ids, {entry id: {field: (wanted, got)}}) of two ledgers."""
    wanted = {row["entry_id"]: row for row in want}
    found = {row["entry_id"]: row for row in got}
    wrong = {
        entry_id: {k: (v, found[entry_id].get(k)) for k, v in row.items()
                   if found[entry_id].get(k) != v}
        for entry_id, row in wanted.items()
        if entry_id in found and found[entry_id] != row
    }  # fmt: skip
    return sorted(set(wanted) - set(found)), sorted(set(found) - set(wanted)), wrong
