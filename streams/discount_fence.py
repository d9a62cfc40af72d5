"""Requests wait for the discount changes published before them.

Kafka orders records within a partition, not across topics. The ``discounts`` agent and the
``bill`` agent consume ``catalog.discounts`` and the request topics independently, and a change
applied by another worker reaches this worker's table through its changelog later still. A
request folded before the change that governs it pays the old multiplier: the e2e ledger test
once charged 0.25× for requests published after a change to 0.50×, where the offline replay of
the same log charged 0.50×.

Before the worker folds a batch that holds requests, ``DiscountFence.cross`` asks the broker for
the end of ``catalog.discounts``, reads the records it has not checked yet (with a
``BrokerReader`` of its own: it runs outside the batch lock) and waits until the worker's discount table holds each of them. So every
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

from streams.continuity import InputRecord, Reader

log = logging.getLogger(__name__)

WAIT_S = 30.0
"""Longest wait for a published discount change to reach this worker's table."""
POLL_S = 0.002
"""How often the table is looked at while waiting."""


class DiscountFence:
    """``unapplied(record)``: whether the change in a discount record is yet to reach the
    worker's table (False for one the engine would refuse or finds there already)."""

    def __init__(
        self,
        reader: Reader,
        topic: str,
        unapplied: Callable[[InputRecord], bool],
        *,
        on_wait: Callable[[float], None] = lambda seconds: None,
        on_give_up: Callable[[int], None] = lambda count: None,
        wait_s: float = WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.topic = topic
        self.partitions: list[int] = []
        self.unapplied = unapplied
        self.on_wait = on_wait
        self.on_give_up = on_give_up
        self.wait_s = wait_s
        self.clock = clock
        self.checked: dict[int, int] = {}
        """Per partition, the next offset to read: everything before it was checked."""
        self.waiting: list[InputRecord] = []

    async def cross(self) -> None:
        """Return once every discount change on the broker now is in the worker's table."""
        if not self.partitions:
            self.partitions = await self.reader.partitions(self.topic)
        ends = await self.reader.end_offsets([(self.topic, p) for p in self.partitions])
        for (_, partition), end in sorted(ends.items()):
            start = self.checked.get(partition, 0)
            if end > start:
                self.waiting += await self.reader.read(self.topic, partition, start, end)
                self.checked[partition] = end
        began = self.clock()
        while True:
            self.waiting = [record for record in self.waiting if self.unapplied(record)]
            waited = self.clock() - began
            if not self.waiting:
                self.on_wait(waited)
                return
            if waited >= self.wait_s:
                log.warning(
                    "gave up waiting %.0f s for %d discount change(s) to reach this worker "
                    "(first: %s[%d]@%d): charging without them",
                    waited, len(self.waiting), self.waiting[0].topic,
                    self.waiting[0].partition, self.waiting[0].offset,
                )  # fmt: skip
                self.on_give_up(len(self.waiting))
                self.waiting = []
                return
            await asyncio.sleep(POLL_S)
