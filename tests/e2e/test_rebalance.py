"""A second worker joining mid-stream: partitions and tables move, nothing is lost or charged twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.kafka.config import free_ports
from metering.demo.stack import wait_for_log
from schemas import topics
from tests.e2e.conftest import (
    SOURCE_FIELDS,
    collect,
    ledger_diff,
    publish,
    running_worker,
)
from tests.factories import at, request, started
from tests.unit.billing.conftest import run_scenario

# faust-streaming 0.15.3 skips records across a rebalance in about 1 run in 3 here
# (#216/#221); the worker's continuity check re-reads them (streams/continuity.py).
pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_second_worker_joining_loses_nothing_and_charges_nothing_twice(
    worker: Any,
    worker_env: dict[str, str],
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
) -> None:
    accounts = [f"acct_{n}" for n in range(8)]
    setup = [started(a) for a in accounts]
    first = [
        request(a, start=at(i), request_id=f"{a}-{i}") for i in range(0, 100) for a in accounts
    ]
    second = [
        request(a, start=at(i), request_id=f"{a}-{i}") for i in range(100, 220) for a in accounts
    ]
    expected = run_scenario([*setup, *first, *second])
    prefix = kafka_topic_prefix
    asyncio.run(publish(kafka_bootstrap, prefix, setup))
    asyncio.run(collect(kafka_bootstrap, prefix + topics.ROUTING, len(accounts), timeout=60))
    asyncio.run(publish(kafka_bootstrap, prefix, first))
    # a second worker joins (another process, same app): the group rebalances mid-stream
    log = tmp_path / "worker-2.log"
    with running_worker(worker_env, free_ports(1)[0], log) as joined:
        asyncio.run(publish(kafka_bootstrap, prefix, second))
        ledger = asyncio.run(
            collect(
                kafka_bootstrap,
                prefix + topics.LEDGER,
                len(expected.ledger),
                180,
                distinct="entry_id",
            )
        )
        wait_for_log(joined, log, b"Setting newly assigned partitions")
    # at-least-once: an entry may arrive twice, but always with the same content
    by_id: dict[str, dict[str, Any]] = {}
    for entry in ledger:
        body = {k: v for k, v in entry.items() if k not in SOURCE_FIELDS}
        assert by_id.setdefault(body["entry_id"], body) == body, "one entry id, two contents"
    want = [
        {k: v for k, v in orjson.loads(e.model_dump_json()).items() if k not in SOURCE_FIELDS}
        for e in expected.ledger
    ]
    assert ledger_diff(want, list(by_id.values())) == ([], [], {})
    funded = sum(1 for e in expected.ledger if e.funding == "subscription")
    assert funded < len(expected.ledger)  # windows were exhausted on the way
