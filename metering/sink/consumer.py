"""The sink's consumer loop: ``metering.ledger`` → batches → ``{db}.ledger``, commit after insert.

One consumer group of its own (``enable_auto_commit=False``): offsets move only when the rows
they cover are in ClickHouse. While ClickHouse refuses, the loop keeps retrying the same batch
with the partitions paused (still polling, so the group keeps it), never drops it, and never
touches charging: the Faust worker runs in another process and Kafka holds the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from metering.kafka_security import KafkaSecurity, client_options
from metering.sink.batch import Batch, Received
from metering.sink.metrics import SinkMetrics
from metering.sink.rows import PoisonValue, decode
from metering.sink.writer import Backoff, LedgerWriter
from schemas import topics

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.5  # longest wait for records in one poll: bounds how long a stop goes unseen


@dataclass(frozen=True)
class SinkConfig:
    """Where the sink reads and how it batches; ``for_prefix`` names topic and group."""

    topic: str
    group_id: str
    max_rows: int = 5000
    max_wait_s: float = 0.2
    shutdown_grace_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def for_prefix(cls, prefix: str, **overrides: Any) -> SinkConfig:
        """``<prefix>metering.ledger`` read by group ``<prefix>metering.ledger-sink``."""
        return cls(
            topic=f"{prefix}{topics.LEDGER}",
            group_id=f"{prefix}{topics.LEDGER}-sink",
            **overrides,
        )


class Consumer(Protocol):
    """The slice of ``AIOKafkaConsumer`` the loop uses (a fake implements it in unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Any]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


def kafka_consumer(
    bootstrap_servers: str, config: SinkConfig, security: KafkaSecurity | None = None
) -> AIOKafkaConsumer:
    """The sink's consumer: own group, manual commits, from the earliest offset when new.

    ``security``: how it logs in (default: this process's ``METERING_KAFKA_*`` settings).
    """
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=config.group_id,
        client_id=f"{config.group_id}-consumer",
        enable_auto_commit=False,  # offsets are committed only after the insert (flush, step 4)
        auto_offset_reset="earliest",  # a new group must start at the first entry, not skip any
        isolation_level="read_committed",  # never sink an aborted transactional write
        max_poll_records=config.max_rows,
        **client_options(security),
    )


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[Iterable[TopicPartition]], None]) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None


class LedgerSink:
    """Consume the ledger topic and write it to ClickHouse, committing only what is stored.

    ``run()`` until ``stop()``; then the pending batch is flushed (for at most
    ``shutdown_grace_s`` if ClickHouse is failing), committed, and the consumer closed.
    """

    def __init__(
        self,
        consumer: Consumer,
        writer: LedgerWriter,
        config: SinkConfig,
        metrics: SinkMetrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer = consumer
        self.writer = writer
        self.config = config
        self.metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._batch = Batch(config.topic)
        self._stop_requested_at: float | None = None
        self._paused = False

    def stop(self) -> None:
        """Ask the loop to finish: flush, commit, close (safe to call from a signal handler)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = self._clock()
            logger.info("sink stopping: flushing %d pending records", len(self._batch))

    @property
    def stopping(self) -> bool:
        return self._stop_requested_at is not None

    async def run(self) -> None:
        """Consume until ``stop()``; raises ``BatchNotWritten`` if the last flush gave up."""
        try:
            await self.consumer.start()
            self.consumer.subscribe([self.config.topic], listener=_Revocations(self._revoked))
            logger.info(
                "sink consuming %s as group %s (batches of %d rows or %.0f ms)",
                self.config.topic,
                self.config.group_id,
                self.config.max_rows,
                self.config.max_wait_s * 1000,
            )
            while not self.stopping:
                await self._poll()
                if self._batch.ready(self._clock(), self.config.max_rows, self.config.max_wait_s):
                    await self.flush()
            if len(self._batch):
                await self.flush()
        finally:
            await self.consumer.stop()
            logger.info("sink stopped")

    async def flush(self) -> None:
        """Write the pending batch, then commit its offsets. The order is the guarantee:

        1. Take the pending batch; records read from now on go to a new one.
        2. Ask ClickHouse which of its entry_ids are stored already (a worker re-emission, a
           batch re-read after a restart) and keep the others, each once.
        3. Insert those rows with the batch's ``insert_deduplication_token``. On failure wait
           (exponential backoff, partitions paused but polled) and send the identical rows
           with the identical token again, so an insert that did land is kept once. Repeat
           until it succeeds; only a stop past the grace period gives up (no commit).
        4. Commit, per partition, the offset after the batch's last record (poison records
           included) — only now, after the insert succeeded.
        5. Count rows, batches, duplicates, delay and lag; resume paused partitions.
        """
        # Step 1.
        batch, self._batch = self._batch, Batch(self.config.topic)
        entries = batch.entries()
        # Step 2.
        fresh = await self.writer.unstored(entries, self._paused_wait, self._give_up)
        # Step 3.
        if fresh:
            await self.writer.insert(
                batch.topic, batch.ranges(), fresh, self._paused_wait, self._give_up
            )
        # Step 4.
        await self._commit(batch)
        # Step 5.
        self.metrics.rows_inserted.inc(len(fresh))
        self.metrics.batches.inc()
        self.metrics.duplicates.inc(len(batch) - len(batch.poison) - len(fresh))
        oldest = batch.oldest_timestamp_ms()
        delay = max(0.0, self._wall_clock() - oldest / 1000) if oldest and oldest > 0 else 0.0
        self.metrics.delay.observe(delay)
        self._record_lag(batch)
        if self._paused:
            self.consumer.resume(*self.consumer.assignment())
            self._paused = False
        logger.debug(
            "batch %s: %d inserted, %d skipped as stored, %d poison, oldest record %.0f ms old",
            batch.ranges(),
            len(fresh),
            len(entries) - len(fresh),
            len(batch.poison),
            delay * 1000,
        )

    async def _poll(self) -> None:
        now = self._clock()
        # Never longer than IDLE_POLL_S, even when the batch may wait longer: a stop requested
        # meanwhile must be seen (a long window on an idle topic would hold it for that long).
        timeout = min(IDLE_POLL_S, self._batch.wait_left(now, self.config.max_wait_s))
        fetched = await self.consumer.getmany(
            timeout_ms=int(timeout * 1000),
            max_records=max(1, self.config.max_rows - len(self._batch)),
        )
        self._take(fetched)

    def _take(self, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        received: list[Received] = []
        for tp, records in fetched.items():
            for record in records:
                try:
                    entry = decode(record.value)
                except PoisonValue as exc:
                    self.metrics.poison.inc()
                    logger.error(
                        "skipping poison record %s[%d]@%d: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        exc,
                    )
                    entry = None
                received.append(Received(tp.partition, record.offset, record.timestamp, entry))
        self._batch.add(received, self._clock())

    async def _paused_wait(self, delay: float) -> None:
        """Between retries: partitions paused, but the group still sees us poll."""
        deadline = self._clock() + delay
        self.consumer.pause(*self.consumer.assignment())
        self._paused = True
        # Only partitions assigned since the pause can return records: keep them for later.
        self._take(await self.consumer.getmany(timeout_ms=int(delay * 1000)))
        left = deadline - self._clock()
        if left > 0:  # getmany may return early; never retry faster than the backoff says
            await asyncio.sleep(left)

    def _give_up(self) -> bool:
        return (
            self._stop_requested_at is not None
            and self._clock() - self._stop_requested_at >= self.config.shutdown_grace_s
        )

    async def _commit(self, batch: Batch) -> None:
        owned = self.consumer.assignment()
        offsets = {
            tp: offset
            for partition, offset in batch.commit_offsets().items()
            if (tp := TopicPartition(batch.topic, partition)) in owned
        }
        if len(offsets) < len(batch.commit_offsets()):
            logger.info(
                "not committing revoked partitions of the batch: their new owner re-reads them"
            )
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # The rows are stored; whoever reads these offsets again finds them stored (step 2).
            self.metrics.commit_failures.inc()
            logger.warning(
                "offset commit refused (%s): the records will be re-read and skipped", exc
            )

    def _revoked(self, revoked: Iterable[TopicPartition]) -> None:
        partitions = [tp.partition for tp in revoked if tp.topic == self.config.topic]
        dropped = self._batch.drop_partitions(partitions)
        if dropped:
            logger.info(
                "partitions %s revoked: %d uncommitted records left to their new owner",
                partitions,
                dropped,
            )

    def _record_lag(self, batch: Batch) -> None:
        owned = self.consumer.assignment()
        for partition, committed in batch.commit_offsets().items():
            tp = TopicPartition(batch.topic, partition)
            if tp not in owned:  # revoked during the flush: aiokafka asserts on its highwater
                continue
            high = self.consumer.highwater(tp)
            if high is not None:
                self.metrics.lag.labels(batch.topic, str(partition)).set(max(0, high - committed))
