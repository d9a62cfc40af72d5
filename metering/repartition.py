"""Copy the input topics to a new topic prefix and partition count (to grow partitions).

Partitions cannot grow in place: an account's new records would land in another partition
than the one holding its window state. A bigger deployment starts on new topics holding the
same input log instead (docs/OPERATIONS.md, section 3). Each record keeps its key, value,
headers and Kafka timestamp; the producer places it by key with the gateways' partitioner, so
an account's records stay together and in their order: each source partition is read in
order, and the idempotent producer keeps a partition's batches in order through retries.
Outputs and changelogs are not copied: the new deployment's workers derive them again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from metering.errors import ConfigError, ConsistencyError
from metering.kafka_security import KafkaSecurity
from metering.settings import Settings
from metering.topic_reader import admin_client, consumer_client, partitions
from schemas import topics
from streams.admin import ensure_topics

Progress = Callable[[int, int], None]
"""``(records copied, records to copy)``."""
SENDS_IN_FLIGHT = 10_000
"""Sends awaited together: enough to fill the producer's batches, bounded in memory."""


@dataclass(frozen=True)
class Copied:
    source: str
    target: str
    records: int


async def copy_inputs(
    settings: Settings, target_prefix: str, target_partitions: int, on_progress: Progress
) -> list[Copied]:
    """Copy the input topics under ``settings.topic_prefix`` to ``target_prefix``.

    Every topic of the new prefix is created (``target_partitions`` each); a target input
    topic that already holds records is refused (a second copy would duplicate the log).
    What is copied is each source topic up to its end when the copy starts; each target is
    checked to hold exactly that many records afterwards."""
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: the broker to copy on")
    if target_prefix == settings.topic_prefix:
        raise ConfigError(f"the new prefix must differ from the current one ({target_prefix!r})")
    security = KafkaSecurity.from_settings(settings).aiokafka_options()
    sources = [settings.topic_prefix + name for name in topics.INPUT_TOPICS]
    targets = [target_prefix + name for name in topics.INPUT_TOPICS]
    source_parts = await partitions(bootstrap, sources)  # refused if one does not exist
    await _refuse_filled(bootstrap, targets)
    target = settings.model_copy(
        update={"topic_prefix": target_prefix, "partitions": target_partitions}
    )
    await ensure_topics(target, bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20, **security,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5,
        max_batch_size=1 << 20, **security,
    )  # fmt: skip
    await consumer.start()
    await producer.start()
    try:
        ends = await consumer.end_offsets(source_parts)
        starts = await consumer.beginning_offsets(source_parts)
        total = sum(ends[tp] - starts[tp] for tp in source_parts)
        done = 0
        copied = []
        for source, name in zip(sources, targets, strict=True):
            wanted = [tp for tp in source_parts if tp.topic == source and ends[tp] > starts[tp]]
            count = 0
            for tp in wanted:
                async for sent in _copy_partition(consumer, producer, tp, ends[tp], name):
                    count += sent
                    on_progress(done + count, total)
            done += count
            copied.append(Copied(source, name, count))
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    await _check_counts(bootstrap, copied)
    return copied


async def _copy_partition(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    tp: TopicPartition,
    end: int,
    target: str,
) -> AsyncIterator[int]:
    """Send ``tp``'s records up to ``end`` to ``target``, in order; yields how many each time
    a slice of them is acknowledged."""
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    pending = []
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=SENDS_IN_FLIGHT)
        for record in batch.get(tp, []):
            if record.offset >= end:
                break
            sent = producer.send(
                target,
                record.value,
                key=record.key,
                timestamp_ms=record.timestamp,
                headers=list(record.headers),
            )
            pending.append(await sent)
        if pending:
            for delivery in pending:
                await delivery
            yield len(pending)
            pending = []


async def _refuse_filled(bootstrap: str, targets: list[str]) -> None:
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
    present = [name for name in targets if name in existing]
    if not present:
        return
    held = await _record_counts(bootstrap, present)
    filled = {name: n for name, n in held.items() if n}
    if filled:
        listed = ", ".join(f"{name} ({n:,} records)" for name, n in sorted(filled.items()))
        raise ConfigError(
            f"the new topics already hold records: {listed}; a second copy would duplicate "
            "the input log (choose another prefix, or delete those topics first)"
        )


async def _record_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    parts = await partitions(bootstrap, names)
    async with consumer_client(bootstrap) as consumer:
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
    counts = dict.fromkeys(names, 0)
    for tp in parts:
        counts[tp.topic] += ends[tp] - starts[tp]
    return counts


async def _check_counts(bootstrap: str, copied: list[Copied]) -> None:
    """Each target holds exactly what was copied to it (the final count check)."""
    held = await _record_counts(bootstrap, [c.target for c in copied])
    wrong = [c for c in copied if held[c.target] != c.records]
    if wrong:
        listed = ", ".join(f"{c.target}: {held[c.target]:,} of {c.records:,}" for c in wrong)
        raise ConsistencyError(f"copy incomplete: {listed}")
