"""Where a rebuild reads its entries: the ledger topic, or the raw input topics through the core.

Both are opened before ClickHouse is touched (``--fresh`` drops nothing if Kafka cannot be
read) and fix their extent when opened: the ledger topic up to its end offsets at that moment
(later records are the sink's), the input topics likewise (``read_inputs``). Both read from
the very beginning every time, even when resuming: the final count check needs every
entry id, and the core must fold the whole log to derive any of it. Records before the
checkpoint are only counted, not written again (``chunks.Item.done``). A topic that lost
its first records is refused (``require_whole``): a rebuild from what is left would pass
its count check without the oldest entries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Protocol, Self

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from billing.catalog.model import Catalog
from metering.demo.report import replay_ledger
from metering.errors import ServiceUnavailable
from metering.kafka_security import client_options
from metering.rebuild.chunks import Item
from metering.rebuild.errors import SourceMissing
from metering.replay.kafka_log import read_inputs
from metering.sink.rows import PoisonValue, decode
from metering.topic_reader import require_whole
from schemas import topics
from schemas.ledger import LedgerEntry

logger = logging.getLogger(__name__)

STALL_TIMEOUT_S = 120.0
"""Longest wait for the next record while the end offsets are not reached yet."""


class EntrySource(Protocol):
    """An opened (``async with``) source: its name in the checkpoint, its size, its items."""

    name: str
    description: str
    total: int

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def items(self) -> AsyncIterator[Item]: ...


class LedgerTopic:
    """``<prefix>metering.ledger``, read group-less from the beginning to its end offsets."""

    name = "ledger"

    def __init__(self, bootstrap_servers: str, prefix: str = "", max_records: int = 5000) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = prefix + topics.LEDGER
        self.description = self.topic
        self.total = 0
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> Self:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,  # no group: a rebuild moves no one's committed offsets
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",  # the entries the sink would store, no others
            **client_options(),  # METERING_KAFKA_* of this process
        )
        try:
            await consumer.start()
            partitions = await _partitions(self.bootstrap_servers, self.topic)
            begins = await consumer.beginning_offsets(partitions)
            require_whole(begins, "a rebuild from the ledger topic")
            self._ends = dict(await consumer.end_offsets(partitions))
            self.total = sum(self._ends.values())  # every partition begins at 0
            if not self.total:
                raise SourceMissing(f"topic {self.topic} holds no record: nothing to rebuild from")
        except KafkaError as exc:
            await consumer.stop()
            raise ServiceUnavailable(
                f"kafka at {self.bootstrap_servers}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def items(self) -> AsyncIterator[Item]:
        """Every record below the end offsets, partition by partition in offset order."""
        consumer = self._consumer
        assert consumer is not None, "open the source with `async with` first"
        wanted = [tp for tp, end in self._ends.items() if end > 0]
        if not wanted:
            return
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        last_progress = time.monotonic()
        while any([await consumer.position(tp) < self._ends[tp] for tp in wanted]):
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            except KafkaError as exc:
                raise ServiceUnavailable(
                    f"reading {self.topic}: {type(exc).__name__}: {exc}"
                ) from exc
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise ServiceUnavailable(
                    f"reading {self.topic}: no record for {STALL_TIMEOUT_S:.0f} s before its "
                    "end offsets"
                )
            for tp, records in batch.items():
                for record in records:
                    if record.offset < self._ends[tp]:
                        yield Item((tp.topic, tp.partition), record.offset, _entry(tp, record))


async def _partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    """The topic's partitions; ``SourceMissing`` when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options())
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            raise SourceMissing(
                f"topic {topic} does not exist: nothing to rebuild from (check "
                "KAFKA_BOOTSTRAP_SERVERS and METERING_TOPIC_PREFIX)"
            )
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


def _entry(tp: TopicPartition, record: Any) -> LedgerEntry | None:
    """The record's entry, or None for poison (logged, counted, skipped like the sink does)."""
    try:
        return decode(record.value)
    except PoisonValue as exc:
        logger.warning(
            "skipping poison record %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc
        )
        return None


class InputTopics:
    """The input topics as one log, folded by the billing core (``metering replay``'s path):
    the entries the worker derived, each at the position of the input record behind it."""

    name = "inputs"

    def __init__(
        self,
        bootstrap_servers: str,
        catalog: Catalog,
        prefix: str = "",
        on_read: Callable[[int, int], None] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.catalog = catalog
        self.prefix = prefix
        self.description = f"the input topics ({prefix}{', '.join(topics.INPUT_TOPICS)})"
        self.total = 0
        self._on_read = on_read
        self._items: list[Item] = []

    async def __aenter__(self) -> Self:
        try:
            records = await read_inputs(self.bootstrap_servers, self.prefix, self._on_read)
        except KafkaError as exc:
            raise ServiceUnavailable(
                f"kafka at {self.bootstrap_servers}: {type(exc).__name__}: {exc}"
            ) from exc
        if not records:
            raise SourceMissing(
                f"the input topics hold no record: nothing to rebuild from (check "
                f"KAFKA_BOOTSTRAP_SERVERS and METERING_TOPIC_PREFIX={self.prefix!r})"
            )
        self._items = [
            Item((self.prefix + e.source_topic, e.source_partition), e.source_offset, e)
            for e in replay_ledger(records, self.catalog)
        ]
        self.total = len(self._items)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._items = []

    async def items(self) -> AsyncIterator[Item]:
        for item in self._items:
            yield item
