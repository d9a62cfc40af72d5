"""The broker the tests run against behaves as Kafka: key partitioning and committed offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from metering.settings import Settings
from streams.admin import ensure_topics
from streams.topology import build

pytestmark = pytest.mark.integration

PARTITIONS = 3
KEYS = [f"acct-{n}" for n in range(6)]
WAIT_S = 60.0


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(
    bootstrap: str, topic: str, records: list[tuple[str, str]]
) -> dict[str, set[int]]:
    """Send ``(key, value)`` records in order; return the partitions each key landed on."""
    partitions: dict[str, set[int]] = defaultdict(set)
    async with AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        key_serializer=str.encode,
        value_serializer=str.encode,
    ) as producer:
        for key, value in records:
            sent = await producer.send_and_wait(topic, value, key=key)
            partitions[key].add(sent.partition)
    return partitions


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        key_deserializer=bytes.decode,
        value_deserializer=bytes.decode,
    )


async def _take(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[str, str]]:
    """Exactly ``count`` records, or a failure after ``WAIT_S`` naming how many came."""
    taken: list[ConsumerRecord[str, str]] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(taken) < count:
                batches = await consumer.getmany(timeout_ms=500, max_records=count - len(taken))
                for batch in batches.values():
                    taken.extend(batch)
    except TimeoutError:
        pytest.fail(f"got {len(taken)} of {count} records within {WAIT_S:.0f}s")
    return taken


async def _nothing_left(consumer: AIOKafkaConsumer) -> bool:
    """True when the consumer's position is at the end of every partition it was given."""
    assigned = consumer.assignment()
    ends = await consumer.end_offsets(list(assigned))
    positions = {tp: await consumer.position(tp) for tp in assigned}
    return positions == ends


def _by_key(records: list[ConsumerRecord[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for record in records:
        assert record.key is not None and record.value is not None
        grouped[record.key].append(record.value)
    return dict(grouped)


async def test_records_with_one_key_share_a_partition_and_keep_their_order(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a topic with several partitions
    topic = f"{kafka_topic_prefix}events"
    await _create_topic(kafka_bootstrap, topic, PARTITIONS)

    # when keyed records are produced by an idempotent producer
    records = [(KEYS[n % len(KEYS)], f"v{n}") for n in range(60)]
    partitions = await _produce(kafka_bootstrap, topic, records)

    # then each key went to exactly one partition, and more than one partition was used
    assert all(len(p) == 1 for p in partitions.values()), partitions
    assert len(set().union(*partitions.values())) > 1

    # and a consumer group reads every key's records in the order they were sent
    async with _consumer(kafka_bootstrap, topic, f"{kafka_topic_prefix}group") as consumer:
        got = await _take(consumer, len(records))
    sent: dict[str, list[str]] = defaultdict(list)
    for key, value in records:
        sent[key].append(value)
    assert _by_key(got) == sent


async def test_a_new_consumer_in_the_group_resumes_from_the_committed_offset(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a topic holding a first batch, read in full by a consumer group that commits
    topic = f"{kafka_topic_prefix}events"
    group = f"{kafka_topic_prefix}group"
    await _create_topic(kafka_bootstrap, topic, PARTITIONS)
    first = [(KEYS[n % len(KEYS)], f"first-{n}") for n in range(30)]
    await _produce(kafka_bootstrap, topic, first)
    async with _consumer(kafka_bootstrap, topic, group) as consumer:
        got_first = await _take(consumer, len(first))
        await consumer.commit()
    assert sorted(r.value for r in got_first if r.value) == sorted(v for _, v in first)

    # when more records arrive while nobody consumes, and a new consumer joins the same group
    second = [(KEYS[n % len(KEYS)], f"second-{n}") for n in range(18)]
    await _produce(kafka_bootstrap, topic, second)
    async with _consumer(kafka_bootstrap, topic, group) as consumer:
        got_second = await _take(consumer, len(second))

        # then it gets only the new records, and none are left behind
        assert sorted(r.value for r in got_second if r.value) == sorted(v for _, v in second)
        assert await _nothing_left(consumer)


async def test_the_worker_topics_and_changelogs_exist_before_faust_joins(
    kafka_bootstrap: str, kafka_topic_prefix: str, tmp_path: Path
) -> None:
    # given the topics a worker would need on a fresh broker
    settings = Settings(METERING_HOME=tmp_path, METERING_TOPIC_PREFIX=kafka_topic_prefix)
    changelogs = build(settings, web_enabled=False).changelogs()

    # when the worker's admin step runs, twice (a second worker starting)
    created = await ensure_topics(settings, kafka_bootstrap, changelogs=changelogs)
    again = await ensure_topics(settings, kafka_bootstrap, changelogs=changelogs)

    # then every changelog exists, compacted, before Faust's consumer ever joins the group,
    # and the second start creates nothing
    assert set(changelogs) <= set(created) and again == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, n, {"cleanup.policy": None})
                for n in changelogs
            ]
        )
    finally:
        await admin.close()
    policies = {
        resource["resource_name"]: entry["config_value"]
        for response in responses
        for resource in response.to_object()["resources"]
        for entry in resource["config_entries"]
        if entry["config_names"] == "cleanup.policy"
    }
    assert policies == dict.fromkeys(changelogs, "compact")
