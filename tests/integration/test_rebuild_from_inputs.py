"""``metering rebuild --from-inputs`` gives the ledger the worker wrote: the raw input topics
folded by the core (rebuilt into one database) against the ledger topic a live worker wrote
from the same inputs (rebuilt into another), entry for entry, source positions included."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from billing.catalog import load_catalog
from deploy.kafka.config import free_ports
from metering.rebuild import InputTopics, LedgerTopic, rebuild
from metering.sink.writer import ClickHouseLedgerStore
from schemas import topics
from tests.e2e.conftest import collect, publish, running_worker
from tests.factories import topic_for
from tests.integration.ledger_pipeline import scenario
from tests.integration.test_rebuild import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def now_or_before(value: dict[str, Any]) -> bool:
    """Not a request from the future (the live worker refuses those; so does the fold)."""
    started_at = value.get("started_at")
    return started_at is None or datetime.fromisoformat(started_at) <= datetime.now(UTC)


@pytest.fixture
def two_databases(clickhouse_client: Client) -> Iterator[tuple[str, str]]:
    names = (f"test_from_ledger_{uuid.uuid4().hex[:8]}", f"test_from_inputs_{uuid.uuid4().hex[:8]}")
    yield names
    for name in names:
        clickhouse_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


async def test_a_rebuild_from_the_inputs_equals_one_from_the_ledger_the_worker_wrote(
    clickhouse_client: Client,
    two_databases: tuple[str, str],
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
) -> None:
    # given a worker that charged the scenario (exhaustion, fallback, leakage, discounts, a
    # refund) from the input topics into the ledger topic, and then stopped
    prefix = kafka_topic_prefix
    log = [v for v in scenario() if now_or_before(v)]
    setup = log[:6]  # subscriptions and discounts first, as the gateways' world would have it
    refunds = [v for v in log if topic_for(v) == topics.ADJUSTMENTS]
    traffic = [v for v in log if v not in setup and v not in refunds]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "METERING_TOPIC_PREFIX": prefix,
        "METERING_HOME": str(tmp_path),
        "METERING_PARTITIONS": "2",
    }
    with running_worker(env, free_ports(1)[0], tmp_path / "worker.log"):
        await publish(kafka_bootstrap, prefix, setup)
        await collect(kafka_bootstrap, prefix + topics.ROUTING, 3, timeout=60)
        charges = sum(topic_for(v) == topics.REQUESTS for v in traffic)
        await publish(kafka_bootstrap, prefix, traffic)
        ledger_topic = prefix + topics.LEDGER
        await collect(kafka_bootstrap, ledger_topic, charges, distinct="entry_id")
        await publish(kafka_bootstrap, prefix, refunds)  # after the charge they refund
        written = await collect(
            kafka_bootstrap, ledger_topic, charges + len(refunds), distinct="entry_id"
        )
    assert any(entry["kind"] == "adjustment" for entry in written)

    # when one database is rebuilt from that ledger topic and the other from the inputs
    from_ledger, from_inputs = two_databases
    by_ledger = await rebuild(
        clickhouse_client, from_ledger, LedgerTopic(kafka_bootstrap, prefix, max_records=40),
        chunk_size=40,
    )  # fmt: skip
    by_inputs = await rebuild(
        clickhouse_client, from_inputs, InputTopics(kafka_bootstrap, load_catalog(), prefix),
        chunk_size=40,
    )  # fmt: skip

    # then both hold the same entries, field for field, and read the same everywhere
    ledger = ClickHouseLedgerStore(clickhouse_client, from_ledger).entries()
    assert len(ledger) == len({entry["entry_id"] for entry in written})
    assert ClickHouseLedgerStore(clickhouse_client, from_inputs).entries() == ledger
    assert snapshot(clickhouse_client, from_inputs) == snapshot(clickhouse_client, from_ledger)
    assert by_inputs.stored == by_ledger.stored == len(ledger)
    assert by_inputs.tally.chunks > 1  # checkpointed across input topics and partitions
