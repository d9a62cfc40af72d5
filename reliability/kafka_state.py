"""What the harness reads from Kafka beyond whole topics: a group's commits, its progress.

Every call opens its own short-lived client (``metering.topic_reader``), so a broker restart
between two calls costs nothing; a call made during one raises ``KafkaError``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from metering.errors import ServiceUnavailable
from metering.kafka_security import client_options
from metering.topic_reader import admin_client, end_offsets


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions it never committed are absent)."""
    async with admin_client(bootstrap) as admin:
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
