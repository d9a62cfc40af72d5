"""The co-partitioned inputs of one partition applied in the order they were published.

The inputs are co-partitioned but separate topics, and Faust hands the agent the records of
its partitions in an interleaving of its own. With a backlog (a worker starting on a filled
log, or catching up) it handed requests before the ``started`` published ahead of them (174
requests dead-lettered as unknown accounts in ``tests/e2e/test_lifecycle_order.py``), and an
``upgraded`` before the requests published ahead of it (charged against the upgraded cap).

So before the worker folds a record of ``gateway.requests``, ``accounts.subscriptions`` or
``accounts.adjustments``, ``Lookahead.due`` returns the records of the *other* two topics'
same partition that are not applied yet and were published before it: Kafka timestamp
earlier, or equal and the topic listed first (lifecycle, then corrections, then requests).
Each topic keeps its own order and the three are merged by timestamp — the rule Kafka
Streams uses to pick among a task's partitions. They are read straight from the broker (the
worker owns those partitions too) and applied first; when Faust delivers them later, the
continuity step drops them as applied. A batch reads the end offsets once (``refresh``); a
partition's records read ahead are kept until applied, so a backlog is read once, not once
per record.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from itertools import takewhile

from streams.continuity import InputRecord, Reader

Expected = Callable[[str, int], int | None]
"""The next offset to apply of a (topic, partition); None when none was ever applied."""


class Lookahead:
    """``topics``: the co-partitioned inputs, in the order they win a timestamp tie."""

    def __init__(self, reader: Reader, topics: tuple[str, ...]) -> None:
        self.reader = reader
        self.topics = topics
        self.rank = {topic: rank for rank, topic in enumerate(topics)}
        self.ends: dict[tuple[str, int], int] = {}
        self.read_ahead: dict[tuple[str, int], deque[InputRecord]] = {}

    def orders(self, topic: str) -> bool:
        return topic in self.rank

    async def refresh(self, partitions: Iterable[int]) -> None:
        """Ask the broker where the topics' ``partitions`` end, now."""
        wanted = [(topic, partition) for partition in set(partitions) for topic in self.topics]
        if wanted:
            self.ends.update(await self.reader.end_offsets(wanted))

    async def due(
        self, topic: str, partition: int, timestamp: float | None, expected: Expected
    ) -> list[InputRecord]:
        """The unapplied records of the other topics' ``partition`` published before the
        record of ``topic`` stamped ``timestamp`` (as of the last ``refresh``), in the order
        to apply them."""
        if timestamp is None or topic not in self.rank:
            return []
        stamp: float = timestamp
        rank = self.rank[topic]
        ready = []
        for other in self.topics:
            if other == topic:
                continue
            before = (
                (lambda r: r.timestamp is not None and r.timestamp <= stamp)
                if self.rank[other] < rank
                else (lambda r: r.timestamp is not None and r.timestamp < stamp)
            )
            pending = await self.pending(other, partition, expected(other, partition) or 0)
            ready.append([(r.timestamp, self.rank[other], r) for r in takewhile(before, pending)])
        return [record for _, _, record in heapq.merge(*ready, key=lambda item: item[:2])]

    async def pending(self, topic: str, partition: int, start: int) -> deque[InputRecord]:
        """Records from ``start`` up to the end last refreshed: read ahead, or read now."""
        kept = self.read_ahead.setdefault((topic, partition), deque())
        while kept and kept[0].offset < start:  # applied since
            kept.popleft()
        if kept and kept[0].offset != start:  # the position moved back (a rebalance)
            kept.clear()
        have = kept[-1].offset + 1 if kept else start
        end = self.ends.get((topic, partition), 0)
        if end > have:
            kept.extend(await self.reader.read(topic, partition, have, end))
        return kept
