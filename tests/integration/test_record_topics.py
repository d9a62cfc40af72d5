"""The system-of-record topics on a real broker: the inputs, the ledger and the DLQ are created
to be kept forever; an older one with a retention is named in a warning; and a reader that
must see a topic from its first record (audit, rebuild) refuses one that lost it, in one
line, instead of folding or copying what is left as if it were whole."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.structs import TopicPartition

from metering.errors import IncompleteLog
from metering.rebuild.sources import LedgerTopic
from metering.replay.kafka_log import account_partition, read_inputs
from metering.settings import Settings
from schemas import topics
from streams.admin import RECORD_TOPICS, _with_retention, ensure_topics
from tests.e2e.conftest import publish
from tests.factories import request, started
from tests.integration.ledger_pipeline import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 3
ACCOUNT = "acct_kept"


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


async def listed(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return topic in set(await admin.list_topics())


def settings(prefix: str, home: Path) -> Settings:
    return Settings(
        METERING_HOME=home, METERING_TOPIC_PREFIX=prefix, METERING_PARTITIONS=PARTITIONS
    )


async def test_record_topics_are_created_without_retention_and_the_others_keep_theirs(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, admin: AIOKafkaAdminClient
) -> None:
    created = await ensure_topics(settings(kafka_topic_prefix, tmp_path), kafka_bootstrap)
    finite = await _with_retention(admin, created)
    kept = {kafka_topic_prefix + name for name in RECORD_TOPICS}
    assert kept <= set(created) and not kept & set(finite)
    assert kafka_topic_prefix + topics.QUOTA in finite  # derived events: the broker's default


async def test_an_existing_record_topic_with_a_retention_is_named_in_a_warning(
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    tmp_path: Path,
    admin: AIOKafkaAdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    older = kafka_topic_prefix + topics.LEDGER
    week = {"retention.ms": str(7 * 24 * 3600 * 1000)}
    await admin.create_topics([NewTopic(older, PARTITIONS, 1, topic_configs=week)])
    await wait_until(lambda: listed(admin, older), f"{older} listed", timeout_s=30)
    with caplog.at_level(logging.WARNING, logger="streams.admin"):
        await ensure_topics(settings(kafka_topic_prefix, tmp_path), kafka_bootstrap)
    warned = [r.getMessage() for r in caplog.records if r.name == "streams.admin"]
    assert len(warned) == 1 and f"topic {older} has a time or size retention" in warned[0]


async def test_an_audit_and_a_rebuild_refuse_a_topic_that_lost_its_first_records(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path, admin: AIOKafkaAdminClient
) -> None:
    prefix = kafka_topic_prefix
    await ensure_topics(settings(prefix, tmp_path), kafka_bootstrap)
    await publish(kafka_bootstrap, prefix, [started(ACCOUNT), request(ACCOUNT), request(ACCOUNT)])
    assert len(await read_inputs(kafka_bootstrap, prefix, account_id=ACCOUNT)) == 3  # whole
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for value in (b"{}", b"{}"):
            await producer.send_and_wait(prefix + topics.LEDGER, value, partition=0)

    # when retention deletes the first request (and the first ledger record)
    requests = TopicPartition(prefix + topics.REQUESTS, account_partition(ACCOUNT, PARTITIONS))
    ledger = TopicPartition(prefix + topics.LEDGER, 0)
    await admin.delete_records({requests: RecordsToDelete(1), ledger: RecordsToDelete(1)})

    # then the readers name the partition and where it now begins
    gone = rf"{requests.topic}\[{requests.partition}\] begins at offset 1: .* deleted \(retention\)"
    with pytest.raises(IncompleteLog, match=gone):
        await read_inputs(kafka_bootstrap, prefix, account_id=ACCOUNT)
    with pytest.raises(IncompleteLog, match=rf"{ledger.topic}\[0\] begins at offset 1"):
        async with LedgerTopic(kafka_bootstrap, prefix):
            pass

    # and the audit command says so in one line, exit 1
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    env.update(METERING_TOPIC_PREFIX=prefix, CLICKHOUSE_URL=f"chdb://{tmp_path / 'chdb'}")
    done = subprocess.run(
        [sys.executable, "-c", "from metering.cli.app import main; main()", "audit",
         "--account", ACCOUNT, "--period", "2026-01", "-q"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line[:4].isdigit()]  # no logs
    assert len(errors) == 1 and errors[0].startswith(f"error: {requests.topic}[")
