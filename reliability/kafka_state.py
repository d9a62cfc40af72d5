"""What the harness reads from Kafka: end offsets, a group's commits, whole topics, progress.

Every call opens its own short-lived client, so a broker restart between two calls costs
nothing; a call made *during* a restart raises ``KafkaError`` and the caller retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from metering.errors import ServiceUnavailable
from metering.kafka_security import client_options

READ_TIMEOUT_S = 120.0


@contextlib.asynccontextmanager
async def _consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_options()
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the named topics; ``ServiceUnavailable`` if one does not exist."""
    async with _admin(bootstrap) as admin:
        described = await admin.describe_topics(topics)
    found = []
    for topic in described:
        if not topic["partitions"]:
            raise ServiceUnavailable(f"topic {topic['topic']} does not exist")
        found += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
    return sorted(found)


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    wanted = await partitions(bootstrap, topics)
    async with _consumer(bootstrap) as consumer:
        return dict(await consumer.end_offsets(wanted))


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions it never committed are absent)."""
    async with _admin(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Whether ``group`` committed every record of ``topics`` (False while the broker is away)."""
    try:
        ends = await end_offsets(bootstrap, topics)
        done = await committed(bootstrap, group)
    except (KafkaError, ServiceUnavailable):
        return False
    return bool(ends) and all(done.get(tp, 0) >= end for tp, end in ends.items())


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets at the time of the call, in partition
    and offset order."""
    wanted = await partitions(bootstrap, [topic])
    async with _consumer(bootstrap) as consumer:
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


@dataclass
class Progress:
    """Distinct ledger entries the worker has emitted so far, read from ``metering.ledger``.

    The ``entry_id`` is a pure function of the request, so re-emissions after a crash do not
    count twice: this is how far the backlog has been charged, whatever faults happened.
    """

    bootstrap: str
    topic: str
    entries: set[str]
    records: int = 0

    @classmethod
    def of(cls, bootstrap: str, topic: str) -> Progress:
        return cls(bootstrap, topic, set())

    @property
    def count(self) -> int:
        return len(self.entries)

    async def follow(self) -> None:
        """Tail the topic until cancelled, reconnecting through broker restarts."""
        while True:
            try:
                await self._tail()
            except KafkaError:
                await asyncio.sleep(1.0)  # the broker is restarting: try again

    async def _tail(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(),
        )
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.records += 1
                        self.entries.add(_entry_id(record.value))
        finally:
            await consumer.stop()

    async def reach(self, count: int, timeout_s: float, what: str) -> None:
        """Return once ``count`` distinct entries were emitted; ``ServiceUnavailable`` if not
        within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"{what}: only {self.count} of {count} ledger entries after {timeout_s:.0f}s"
                )
            await asyncio.sleep(0.05)  # poll interval of the progress wait


def _entry_id(value: bytes | None) -> str:
    """The ``entry_id`` of a ledger record (validated later, with the whole ledger)."""
    return str(orjson.loads(value or b"{}").get("entry_id", ""))
