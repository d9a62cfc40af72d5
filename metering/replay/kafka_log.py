"""The raw input log as the worker saw it: the input topics, from the beginning, in one order.

Each record keeps its real position (topic without prefix, partition, offset) and its Kafka
timestamp as the ingest time, so the core folds it exactly as the live worker did and the
ledger entries it derives carry the same ``source_*`` fields. Records of the different
topics are merged by timestamp (the order the gateway and the lifecycle services sent
them), then by topic (``_SAME_INSTANT_ORDER``), partition and offset; within a partition, offset order always holds.
Ticks are not read: the replay derives them from log time.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from billing.source import Source
from metering.errors import ServiceUnavailable
from metering.replay.logfile import LogRecord
from schemas import topics

READ_TIMEOUT_S = 300.0

_SAME_INSTANT_ORDER = (topics.SUBSCRIPTIONS, topics.DISCOUNTS, topics.REQUESTS, topics.ADJUSTMENTS)
"""At one timestamp: lifecycle and prices before the traffic they govern, corrections last."""


async def _input_partitions(bootstrap_servers: str, prefix: str) -> list[TopicPartition]:
    """The partitions of the input topics that exist (a topic never written may not)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [prefix + name for name in topics.INPUT_TOPICS if prefix + name in existing]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in sorted(topic["partitions"], key=lambda p: p["partition"])
    ]


async def read_inputs(
    bootstrap_servers: str,
    prefix: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> list[LogRecord]:
    """Every record of the input topics up to their end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await _input_partitions(bootstrap_servers, prefix)
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        wanted = [tp for tp in partitions if ends[tp] > 0]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        by_partition: dict[TopicPartition, list[LogRecord]] = {tp: [] for tp in wanted}
        deadline = time.monotonic() + READ_TIMEOUT_S
        read = 0
        while any([await consumer.position(tp) < ends[tp] for tp in wanted]):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"reading the input topics took over {READ_TIMEOUT_S:.0f}s ({read} read)"
                )
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    received = datetime.fromtimestamp(r.timestamp / 1000, UTC)
                    source = Source(tp.topic[len(prefix) :], tp.partition, r.offset, received)
                    key = r.key.decode("utf-8", errors="replace") if r.key else None
                    by_partition[tp].append(LogRecord(source, r.value or b"", key))
                    read += 1
            if on_progress is not None:
                on_progress(read)
    finally:
        await consumer.stop()
    order = _SAME_INSTANT_ORDER.index
    return list(
        heapq.merge(
            *by_partition.values(),
            key=lambda rec: (
                rec.source.ingest_time,
                order(rec.source.topic),
                rec.source.partition,
                rec.source.offset,
            ),
        )
    )
