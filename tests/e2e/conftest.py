"""Shared end-to-end pieces: a worker subprocess on the real broker, publishing, collecting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.kafka.config import free_ports
from schemas import topics
from tests.factories import encode, topic_for


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


@pytest.fixture
def worker(
    worker_env: dict[str, str], worker_port: int, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``metering worker`` as a subprocess, ready (Faust logged "Ready"); SIGTERM after."""
    env = worker_env
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from metering.cli.app import main; main()", "worker",
         "--store", "memory://", "--web-port", str(worker_port), "--app-id", "e2e"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while b"[^Worker]: Ready" not in (tmp_path / "worker.log").read_bytes():
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "worker did not become ready"
        time.sleep(0.2)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


async def publish(bootstrap: str, prefix: str, values: list[dict[str, Any] | bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            if isinstance(value, bytes):
                await producer.send_and_wait(prefix + topics.REQUESTS, value, key=b"acct_zen")
                continue
            key = value.get("account_id") or value["model"]
            await producer.send_and_wait(prefix + topic_for(value), encode(value), key=key.encode())
    finally:
        await producer.stop()


async def collect(
    bootstrap: str, topic: str, count: int, timeout: float = 120
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [orjson.loads(m.value) for records in batch.values() for m in records]
    finally:
        await consumer.stop()
    return found
