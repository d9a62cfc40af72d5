"""Whole topics and their end offsets, read with short-lived clients.

Every call opens its own client, so a broker restart between two calls costs nothing; a call
made *during* a restart raises ``KafkaError`` and the caller retries. The DLQ tool reads its
topic this way, and so does the reliability harness. ``require_whole`` is the check of every
reader that must see a topic from its very first record (audit, rebuild).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from metering.errors import IncompleteLog, ServiceUnavailable
from metering.kafka_security import KafkaSecurity, client_options

READ_TIMEOUT_S = 120.0


def require_whole(beginnings: dict[TopicPartition, int], purpose: str) -> None:
    """Raise ``IncompleteLog`` unless every partition still begins at offset 0.

    The system-of-record topics are created to be kept forever (``streams.admin``); one whose
    first records are gone (an older topic, or a retention set by hand) cannot back an audit
    or a rebuild: a subscription's ``started`` deleted after a week would make the fold
    refuse every request of the account, and a ledger would come back without its oldest
    entries while its count check still passed."""
    for tp, offset in sorted(beginnings.items()):
        if offset > 0:
            raise IncompleteLog(
                f"{tp.topic}[{tp.partition}] begins at offset {offset}: its first records were "
                f"deleted (retention), so {purpose} would silently lack them; keep the topic "
                "forever (retention.ms=-1, see docs/OPERATIONS.md)"
            )


@contextlib.asynccontextmanager
async def consumer_client(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_options()
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap: str, security: KafkaSecurity | None = None
) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(security))
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions(
    bootstrap: str, topics: list[str], security: KafkaSecurity | None = None
) -> list[TopicPartition]:
    """Every partition of the named topics; ``ServiceUnavailable`` if one does not exist."""
    async with admin_client(bootstrap, security) as admin:
        described = await admin.describe_topics(topics)
    found = []
    for topic in described:
        if not topic["partitions"]:
            raise ServiceUnavailable(f"topic {topic['topic']} does not exist")
        found += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
    return sorted(found)


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    wanted = await partitions(bootstrap, topics)
    async with consumer_client(bootstrap) as consumer:
        return dict(await consumer.end_offsets(wanted))


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets at the time of the call, in partition
    and offset order."""
    wanted = await partitions(bootstrap, [topic])
    async with consumer_client(bootstrap) as consumer:
        ends = await consumer.end_offsets(wanted)
        wanted = [tp for tp in wanted if ends[tp] > 0]
        if not wanted:
            return []
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        found: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {tp: [] for tp in wanted}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any([await consumer.position(tp) < ends[tp] for tp in wanted]):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"reading {topic} took over {READ_TIMEOUT_S:.0f}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                found[tp] += [r for r in records if r.offset < ends[tp]]
        return [r for tp in sorted(found) for r in found[tp]]
