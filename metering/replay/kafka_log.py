"""The raw input log as the worker saw it: the input topics, from the beginning, in one order.

Each record keeps its real position (topic without prefix, partition, offset) and its Kafka
timestamp as the ingest time, so the core folds it exactly as the live worker did and the
ledger entries it derives carry the same ``source_*`` fields. Records of the different
topics are merged by timestamp (the order the gateway and the lifecycle services sent
them), then by topic (``topics.SAME_INSTANT_ORDER``), partition and offset; within a partition, offset order always holds.
Ticks are not read: the replay derives them from log time.

For one account (an audit), only the partitions its key hashes to are read — Kafka's default
partitioner, which the gateway SDK and the workers use — plus every discount partition.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from billing.source import Source
from metering.errors import ServiceUnavailable
from metering.kafka_security import client_options
from metering.replay.logfile import LogRecord
from metering.topic_reader import require_whole
from schemas import topics

READ_TIMEOUT_S = 300.0


def account_partition(account_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key ``account_id``."""
    return int(murmur2(account_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def mentions(account_id: str | None, prefix: str = "") -> Callable[[str, bytes | None], bool]:
    """Whether a record of a topic may concern the account: every discount change does; any
    other record only if its JSON holds the account id as a string (a byte search, no parse:
    a false positive only costs the fold a record of another account)."""
    if account_id is None:
        return lambda topic, value: True
    needle = f'"{account_id}"'.encode()
    discounts = prefix + topics.DISCOUNTS
    return lambda topic, value: topic == discounts or (value is not None and needle in value)


async def _input_partitions(
    bootstrap_servers: str, prefix: str, account_id: str | None = None
) -> list[TopicPartition]:
    """The partitions of the input topics that exist (a topic never written may not); for
    one account, the discounts' and the account's own."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [prefix + name for name in topics.INPUT_TOPICS if prefix + name in existing]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    chosen = []
    for topic in described:
        numbers = sorted(partition["partition"] for partition in topic["partitions"])
        if account_id is not None and topic["topic"] != prefix + topics.DISCOUNTS:
            numbers = [account_partition(account_id, len(numbers))]
        chosen += [TopicPartition(topic["topic"], number) for number in numbers]
    return chosen


async def read_inputs(
    bootstrap_servers: str,
    prefix: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    account_id: str | None = None,
) -> list[LogRecord]:
    """Every record of the input topics up to their end offsets at the time of the call
    (with ``account_id``: the records of its partitions that mention it, and every discount
    change). ``on_progress(read, total)`` is called after each fetch."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options(),  # METERING_KAFKA_* of this process
    )
    await consumer.start()
    try:
        partitions = await _input_partitions(bootstrap_servers, prefix, account_id)
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        wanted = [tp for tp in partitions if ends[tp] > 0]
        require_whole(await consumer.beginning_offsets(wanted), "a fold of the raw inputs")
        total = sum(ends[tp] for tp in wanted)
        keep = mentions(account_id, prefix)
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
                read += len(records)
                for r in records:
                    if r.offset >= ends[tp] or not keep(tp.topic, r.value):
                        continue
                    received = datetime.fromtimestamp(r.timestamp / 1000, UTC)
                    source = Source(tp.topic[len(prefix) :], tp.partition, r.offset, received)
                    key = r.key.decode("utf-8", errors="replace") if r.key else None
                    by_partition[tp].append(LogRecord(source, r.value or b"", key))
            if on_progress is not None:
                on_progress(read, total)
    finally:
        await consumer.stop()
    order = topics.SAME_INSTANT_ORDER.index
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
