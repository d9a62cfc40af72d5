"""Every input record applied once, in partition order: positions and the re-read of skipped ones.

faust-streaming 0.15.3 can skip input records across a rebalance: records fetched before the
seek to the committed offset are dropped from its stream buffer, and when they are fetched
again its consumer drops them as "already read" (its ``_read_offset``), then acks them as a
"gap" (faust-streaming #216/#221; the gap handling exists for compacted and transactional
topics, which our inputs are not). The worker does not rely on Faust for this:

- ``Positions`` keeps, per input topic-partition, the offset of the last record whose
  processing completed, in a table (so it moves with the partition on a rebalance and
  survives a restart, whatever Faust committed).
- A record beyond ``position + 1`` means records were skipped: ``RangeReader`` reads the
  missing range straight from the broker and the worker applies it first, in order.
- A record at or below ``position`` was applied before: it is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from metering.errors import ServiceUnavailable

READ_TIMEOUT_S = 60.0
"""How long a re-read may take before the worker stops (a billing worker must not skip)."""


class InputMessage(Protocol):
    """What the worker needs of an input record: Faust's ``Message`` has these attributes."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class InputRecord:
    """A record read by ``RangeReader``; ``timestamp`` in seconds, as Faust gives it."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    key: bytes | None
    value: bytes | None


class Positions:
    """The last completed offset per input topic-partition, in a Faust table.

    Written after a record's outputs were acknowledged and its account saved, so a stored
    position never runs ahead of what was applied; a position that lags behind only causes
    a re-read of records the account table then recognises as applied.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    @staticmethod
    def key(topic: str, partition: int) -> str:
        return f"{topic}:{partition}"

    def expected(self, topic: str, partition: int) -> int | None:
        """The next offset to apply, or None for a partition never applied (any start is fine)."""
        raw = self.table.get(self.key(topic, partition))
        return None if raw is None else int(raw) + 1

    def complete(self, topic: str, partition: int, offset: int) -> None:
        self.table[self.key(topic, partition)] = str(offset).encode()


class Reader(Protocol):
    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        """Records ``start <= offset < stop`` of one partition, in order."""
        ...


class RangeReader:
    """Reads a range of one partition with a consumer of its own (no group, no commits)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # records deleted by retention are gone: go on
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            found: list[InputRecord] = []
            deadline = time.monotonic() + READ_TIMEOUT_S
            while await consumer.position(tp) < stop:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"re-reading offsets {start}-{stop - 1} of {topic}[{partition}] "
                        f"took over {READ_TIMEOUT_S:.0f}s"
                    )
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=stop - start)
                found += [
                    InputRecord(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        timestamp=None if r.timestamp is None else r.timestamp / 1000,
                        key=r.key,
                        value=r.value,
                    )
                    for r in batch.get(tp, [])
                    if r.offset < stop
                ]
            return found
        finally:
            await consumer.stop()
