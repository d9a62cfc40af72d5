"""Requests wait for the discount changes published before them.

Kafka orders records within a partition, not across topics. The ``discounts`` agent and the
``bill`` agent consume ``catalog.discounts`` and the request topics independently, and a change
applied by another worker reaches this worker's table through its changelog later still. A
request folded before the change that governs it pays the old multiplier: the e2e ledger test
once charged 0.25× for requests published after a change to 0.50×, where the offline replay of
the same log charged 0.50×.

Before the worker folds a batch that holds requests, ``DiscountFence.cross`` asks the broker for
the end of ``catalog.discounts``, reads the records it has not checked yet (with a group-less
consumer of its own) and waits until the worker's discount table holds each of them. So every
change the broker acknowledged before a request was read governs that request as in the
replay. A change the engine would refuse (bad record, unknown model, conflict) is not waited
for. One that has not arrived after ``WAIT_S`` (its partition's worker is gone and not yet
replaced) is given up, logged and counted: requests are then charged as before the fence,
rather than billing stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from metering.kafka_security import KafkaSecurity
from metering.topic_reader import partitions
from streams.continuity import InputRecord, group_less_consumer, read_range

log = logging.getLogger(__name__)

WAIT_S = 30.0
"""Longest wait for a published discount change to reach this worker's table."""
POLL_S = 0.002
"""How often the table is looked at while waiting."""
Change = TypeVar("Change")


class Feed(Protocol):
    """One topic as the fence reads it."""

    async def end_offsets(self) -> dict[int, int]: ...

    async def read(self, partition: int, start: int, stop: int) -> list[InputRecord]: ...

    async def stop(self) -> None: ...


class TopicFeed:
    """A topic read with one long-lived group-less consumer (started on first use): the fence
    asks for the end offsets before every batch of requests."""

    def __init__(self, topic: str, bootstrap_servers: str, security: KafkaSecurity) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def end_offsets(self) -> dict[int, int]:
        consumer = await self.started()
        if not self.partitions:
            self.partitions = await partitions(self.bootstrap_servers, [self.topic], self.security)
        ends = await consumer.end_offsets(self.partitions)
        return {tp.partition: end for tp, end in ends.items()}

    async def read(self, partition: int, start: int, stop: int) -> list[InputRecord]:
        return await read_range(await self.started(), self.topic, partition, start, stop)

    async def started(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = group_less_consumer(self.bootstrap_servers, self.security)
            await consumer.start()
            self.consumer = consumer
        return self.consumer

    async def stop(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()


class DiscountFence(Generic[Change]):
    """``change_of(record)``: the change a discount record holds, or None if the engine
    would refuse it (decoded once, when read); ``unapplied(change)``: whether it is yet to
    reach the worker's table."""

    def __init__(
        self,
        feed: Feed,
        change_of: Callable[[InputRecord], Change | None],
        unapplied: Callable[[Change], bool],
        *,
        on_wait: Callable[[float], None] = lambda seconds: None,
        on_give_up: Callable[[int], None] = lambda count: None,
        wait_s: float = WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.change_of = change_of
        self.unapplied = unapplied
        self.on_wait = on_wait
        self.on_give_up = on_give_up
        self.wait_s = wait_s
        self.clock = clock
        self.checked: dict[int, int] = {}
        """Per partition, the next offset to read: everything before it was checked."""
        self.waiting: list[tuple[InputRecord, Change]] = []

    async def cross(self) -> None:
        """Return once every discount change on the broker now is in the worker's table."""
        for partition, end in sorted((await self.feed.end_offsets()).items()):
            start = self.checked.get(partition, 0)
            if end > start:
                for record in await self.feed.read(partition, start, end):
                    change = self.change_of(record)
                    if change is not None:
                        self.waiting.append((record, change))
                self.checked[partition] = end
        began = self.clock()
        while True:
            self.waiting = [held for held in self.waiting if self.unapplied(held[1])]
            waited = self.clock() - began
            if not self.waiting:
                self.on_wait(waited)
                return
            if waited >= self.wait_s:
                log.warning(
                    "gave up waiting %.0f s for %d discount change(s) to reach this worker "
                    "(first: %s[%d]@%d): charging without them",
                    waited, len(self.waiting), self.waiting[0][0].topic,
                    self.waiting[0][0].partition, self.waiting[0][0].offset,
                )  # fmt: skip
                self.on_give_up(len(self.waiting))
                self.waiting = []
                return
            await asyncio.sleep(POLL_S)
