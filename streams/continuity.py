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

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types.tuples import ack_lock

from metering.errors import ServiceUnavailable
from metering.kafka_security import KafkaSecurity
from streams.scope import applying

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
"""How long a re-read may take before the worker stops (a billing worker must not skip)."""


class InputEvent(Protocol):
    """What the worker is handed per record: Faust's ``Event`` has its ``message``."""

    @property
    def message(self) -> InputMessage: ...


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

    Completions are buffered and written by ``save`` after the batch's outputs were
    acknowledged and its accounts saved, so a stored position never runs ahead of what was
    applied; a position that lags behind only causes a re-read of records the account table
    then recognises as applied. ``expected`` sees buffered completions, so a record delivered
    twice within one batch is dropped too.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.pending: dict[str, int] = {}
        self.event: Any = None
        """The event being applied: a position is saved in its partition (``scope``)."""
        self.origins: dict[str, Any] = {}

    @staticmethod
    def key(topic: str, partition: int) -> str:
        return f"{topic}:{partition}"

    def expected(self, topic: str, partition: int) -> int | None:
        """The next offset to apply, or None for a partition never applied (any start is fine)."""
        key = self.key(topic, partition)
        if key in self.pending:
            return self.pending[key] + 1
        raw = self.table.get(key)
        return None if raw is None else int(raw) + 1

    def complete(self, topic: str, partition: int, offset: int) -> None:
        """Buffer: ``offset`` of ``topic[partition]`` is applied (written by ``save``)."""
        key = self.key(topic, partition)
        self.pending[key] = offset
        self.origins[key] = self.event

    def save(self) -> None:
        """Write the buffered positions: one changelog record per partition of the batch."""
        for key, offset in self.pending.items():
            with applying(self.origins[key]):
                self.table[key] = str(offset).encode()
        self.discard()

    def discard(self) -> None:
        self.pending.clear()
        self.origins.clear()


async def release_skipped(consumer: Any, topic: str, partition: int, offset: int) -> None:
    """Let Faust commit past offsets it skipped and this worker has applied.

    Faust commits a partition only up to the first offset it has not acknowledged, and it
    acknowledges only what it delivered. After a rebalance (a broker restart) it sometimes
    resumes a partition past its committed offset: the continuity step knows the records
    in between are applied (or re-reads them), but Faust would never commit that partition
    again, and its consumer lag would grow forever. Faust's own remedy for offsets it will
    never deliver (compacted or transactional topics) is a *gap*; this declares one from the
    committed offset up to ``offset`` when nothing is acknowledged ahead of it yet.
    Call it only once every record before ``offset`` is applied.
    """
    tp = TopicPartition(topic, partition)  # equal to Faust's TP (both are named tuples)
    committed = consumer._committed_offset[tp]
    if committed is not None and offset > committed and not consumer._acked[tp]:
        await consumer._add_gap(tp, committed, offset - 1)


async def release_reread(consumer: Any, topic: str, partition: int, start: int, stop: int) -> None:
    """Let Faust commit past offsets ``start <= offset < stop`` it skipped and the worker
    re-read, even while it holds acknowledgements not yet committed (``release_skipped``
    waits for none). Those can be of records it handed over and the worker held, then forgot
    when the partition moved (``streams.input_order``): with the re-read offsets between
    them and the next record it delivers left undeclared, Faust never committed that
    partition again (the broker-restart chaos run waited for the group to drain for good).
    Offsets it acknowledged are left out: one both acknowledged and in a gap would break
    the consecutive run Faust commits."""
    await _declare_unacked(consumer, TopicPartition(topic, partition), start, stop)


async def release_applied(consumer: Any, topic: str, partition: int, applied: int) -> None:
    """Let Faust commit a quiet partition up to ``applied`` (the worker's position: every
    record before it is applied), where its own commit stopped short.

    After rebalances in a row (a broker restarting twice), Faust forgets its gaps and
    acknowledgements of a revoked partition and resumes at its committed offset, but may
    never hand over the records after it again (it counts them as read): nothing is
    acknowledged past the commit, so no gap is ever merged and it commits that partition no
    more (the broker-restart chaos run then waited for the group to drain for good). This
    acknowledges the last applied offset the way Faust's own ``ack`` does and declares the
    offsets between its commit and that one a gap: its next commit reaches ``applied``.
    """
    tp = TopicPartition(topic, partition)
    committed = consumer._committed_offset[tp]
    if committed is None or applied <= committed + 1:  # Faust commits over one offset itself
        return
    last = applied - 1
    log.warning(
        "Faust's commit of %s[%d] stopped at %d, the worker applied up to %d: acknowledged "
        "for Faust to commit", topic, partition, committed, last,
    )  # fmt: skip
    with ack_lock:
        # Faust's merge of a gap into its acknowledgements can leave an offset there twice
        # (a gap declared, then the record handed over after all), which cuts the
        # consecutive run it commits short (in the graceful-shutdown chaos run its commit
        # crept forward 5 offsets per look).
        acked = consumer._acked[tp]
        offsets = sorted({*acked, last})
        consumer._n_acked += len(offsets) - len(set(acked))
        acked[:] = offsets
        index = consumer._acked_index[tp]
        index.clear()
        index.update(offsets)
    consumer._gap[tp].chop(0, applied)  # declared again below, apart from what is acknowledged
    await _declare_unacked(consumer, tp, committed, last)


async def _declare_unacked(consumer: Any, tp: TopicPartition, start: int, stop: int) -> None:
    """Declare a gap for each run of offsets in ``[start, stop)`` Faust has not acknowledged."""
    low = start
    for acked in sorted({a for a in consumer._acked[tp] if start <= a < stop} | {stop}):
        if acked > low:
            await consumer._add_gap(tp, low, acked - 1)
        low = acked + 1


class Reader(Protocol):
    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        """Records ``start <= offset < stop`` of one partition, in order."""
        ...

    async def log_starts(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The first offset each ``(topic, partition)`` still holds (retention deletes)."""
        ...


class RangeReader:
    """Reads a range of one partition with a consumer of its own (no group, no commits)."""

    def __init__(self, bootstrap_servers: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security or KafkaSecurity()  # the worker passes its topology's

    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        async with self.consumer() as consumer:
            return await read_range(consumer, topic, partition, start, stop)

    async def log_starts(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        async with self.consumer() as consumer:
            starts = await consumer.beginning_offsets([TopicPartition(*tp) for tp in partitions])
        return {(tp.topic, tp.partition): offset for tp, offset in starts.items()}

    @contextlib.asynccontextmanager
    async def consumer(self) -> AsyncIterator[AIOKafkaConsumer]:
        """A started group-less consumer for one call, stopped after it."""
        consumer = group_less_consumer(self.bootstrap_servers, self.security)
        await consumer.start()
        try:
            yield consumer
        finally:
            await consumer.stop()


def group_less_consumer(bootstrap_servers: str, security: KafkaSecurity) -> AIOKafkaConsumer:
    """A consumer that reads what it is told to (no group, no commits)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # records deleted by retention are gone: go on
        **security.aiokafka_options(),
    )


async def read_range(
    consumer: AIOKafkaConsumer, topic: str, partition: int, start: int, stop: int
) -> list[InputRecord]:
    """Records ``start <= offset < stop`` of one partition, with a started group-less
    consumer (which it assigns to that partition alone)."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    found: list[InputRecord] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while await consumer.position(tp) < stop:
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"reading offsets {start}-{stop - 1} of {topic}[{partition}] "
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
