"""The live worker on a real broker produces the ledger ``metering replay`` produces offline."""

from __future__ import annotations

import asyncio
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
from tests.factories import at, discount, encode, lifecycle, request, started, topic_for
from tests.unit.billing.conftest import run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SOURCE_FIELDS = {"source_topic", "source_partition", "source_offset"}


def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any] | bytes]]:
    """Lifecycle and discounts first, then traffic: exhaustion, fallback, duplicate, bad input."""
    setup = [
        started("acct_zen"),
        lifecycle(
            "fallback_configured", "acct_zen", when=at(-30), enabled=True, fallback_key_id="kp"
        ),
        started("acct_lil", family="lilac", plan="basic", paid="10"),
        discount("z-ai/glm-4.7", "surplus", at(-10)),
    ]
    traffic: list[dict[str, Any] | bytes] = [
        request("acct_zen", start=at(i), request_id=f"z{i}") for i in range(195)
    ]
    traffic += [
        request("acct_lil", start=at(i), model="z-ai/glm-4.7", request_id=f"l{i}") for i in range(5)
    ]
    traffic.append(traffic[3])  # a duplicate delivery
    # the log's own clock passes the 5h reset (the live worker's wall clock already has)
    traffic.append(request("acct_lil", start=at(hours=6), model="z-ai/glm-4.7", request_id="late"))
    traffic.append(b'{"schema_version": 1, "request_id": "broken"')
    return setup, traffic


@pytest.fixture
def worker(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "METERING_TOPIC_PREFIX": kafka_topic_prefix,
        "METERING_HOME": str(tmp_path),
        "METERING_PARTITIONS": "2",
    }
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from metering.cli.app import main; main()", "worker",
         "--store", "memory://", "--web-port", str(free_ports(1)[0]), "--app-id", "e2e"],
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


def canonical(values: list[Any]) -> list[dict[str, Any]]:
    rows = [
        {k: v for k, v in orjson.loads(x.model_dump_json()).items() if k not in SOURCE_FIELDS}
        for x in values
    ]
    return sorted(rows, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = [{k: v for k, v in r.items() if k not in SOURCE_FIELDS} for r in rows]
    return sorted(cleaned, key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def test_ledger_from_the_worker_equals_offline_replay(
    worker: Any, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    setup, traffic = scenario()
    expected = run_scenario([*setup, *traffic])
    prefix = kafka_topic_prefix
    asyncio.run(publish(kafka_bootstrap, prefix, setup))
    started_routes = asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, 2, timeout=60))
    assert {r["account_id"] for r in started_routes} == {"acct_zen", "acct_lil"}
    asyncio.run(publish(kafka_bootstrap, prefix, traffic))
    ledger = asyncio.run(collect(kafka_bootstrap, prefix + topics.LEDGER, len(expected.ledger)))
    assert strip(ledger) == canonical(expected.ledger)
    quota = asyncio.run(collect(kafka_bootstrap, prefix + topics.QUOTA, len(expected.quota)))
    assert strip(quota) == canonical(expected.quota)
    routing = asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, len(expected.routing)))
    assert strip(routing) == canonical(expected.routing)
    dead = asyncio.run(collect(kafka_bootstrap, prefix + topics.DLQ, 1))
    assert [d["code"] for d in dead] == ["invalid"]
