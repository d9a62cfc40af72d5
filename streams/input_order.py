"""The co-partitioned inputs of a partition folded in the order they were published.

Faust hands the ``bill`` agent the records of its topics in its own interleaving: per
topic-partition in offset order, but across topics as its fetches return them. Live, that
is the order of publication near enough; on a backlog (a restart, a catch-up after an
outage) it put one topic's records before another's: a request read before the ``started``
published ahead of it was dead-lettered as an unknown account, an ``upgraded`` applied
before the requests sent ahead of it. ``metering replay`` and the audit merge the topics by
record timestamp, then ``topics.SAME_INSTANT_ORDER``, then offset; the worker must fold in
that order too, or the bill depends on when the worker ran.

This is Kafka Streams' rule (its ``PartitionGroup``): of one partition's topics, the head
record with the smallest (timestamp, rank, offset) goes next, once every other topic either
has a head to compare with or has nothing more on the broker (it is caught up to its high
watermark). A record that must wait for a topic behind is *held* here, not applied. Faust
may commit past a held record: that is safe, because the worker's own positions (not
Faust's commits) decide what is read again after a restart or a rebalance
(``streams.continuity``). A partition blocked for ``hold_max_s`` lets its heads go anyway
(counted by the caller): it must not stall on a topic Faust does not deliver.

Pure: no I/O; the clock and the caught-up test are passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.continuity import InputMessage

CaughtUp = Callable[[str, int, int | None], bool]
"""``(topic, partition, given)``: nothing of it is left on the broker that was not delivered.
``given``: the offset after the last record of it the same release gave out (not folded
yet), or None."""
Held = tuple[Any, InputMessage]
"""A held record and the event that delivered it (a table write goes to its partition)."""


@dataclass
class _Partition:
    queues: dict[str, deque[Held]] = field(default_factory=dict)
    blocked_since: float | None = None
    """When a head first had to wait for a topic behind; None while heads flow."""


@dataclass(frozen=True)
class Released:
    """Records to fold now, in order; ``forced`` of them went without waiting any longer."""

    records: list[Held]
    forced: int


class InputOrder:
    """The records delivered but not yet folded, per partition and topic, and their release."""

    def __init__(self, topics: Sequence[str], rank: Callable[[str], int], hold_max_s: float):
        self.topics = tuple(topics)
        self.rank = rank
        self.hold_max_s = hold_max_s
        self._partitions: dict[int, _Partition] = {}

    def received(self, topic: str, partition: int) -> int | None:
        """The offset after the last record held for ``topic[partition]``; None: none held."""
        part = self._partitions.get(partition)
        queue = part.queues.get(topic) if part is not None else None
        return queue[-1][1].offset + 1 if queue else None

    def add(self, event: Any, message: InputMessage) -> bool:
        """Hold ``message``; False (not held) if it repeats a record already held."""
        part = self._partitions.setdefault(message.partition, _Partition())
        queue = part.queues.setdefault(message.topic, deque())
        if queue and message.offset <= queue[-1][1].offset:
            return False
        queue.append((event, message))
        return True

    def put_back(self, records: Sequence[Held]) -> None:
        """Hold again records ``release`` gave out (in their order) that were not folded."""
        for event, message in reversed(records):
            part = self._partitions.setdefault(message.partition, _Partition())
            queue = part.queues.setdefault(message.topic, deque())
            if not queue or message.offset < queue[0][1].offset:
                queue.appendleft((event, message))

    @property
    def partitions(self) -> list[int]:
        """The partitions holding records."""
        return list(self._partitions)

    def held(self) -> int:
        return sum(len(q) for part in self._partitions.values() for q in part.queues.values())

    def drop(self, partition: int) -> None:
        """Forget what is held for ``partition`` (it moved to another worker)."""
        self._partitions.pop(partition, None)

    def release(self, partition: int, caught_up: CaughtUp, now: float) -> Released:
        """Take the records of ``partition`` that may be folded now, in publication order."""
        part = self._partitions.get(partition)
        if part is None:
            return Released([], 0)
        records: list[Held] = []
        given: dict[str, int] = {}
        forced = 0
        while True:
            heads = [(self._key(q[0][1]), topic) for topic, q in part.queues.items() if q]
            if not heads:
                del self._partitions[partition]
                break
            first = min(heads)[1]
            behind = any(
                topic != first
                and not part.queues.get(topic)
                and not caught_up(topic, partition, given.get(topic))
                for topic in self.topics
            )
            if behind:
                if part.blocked_since is None:
                    part.blocked_since = now
                if now - part.blocked_since < self.hold_max_s:
                    break
                forced += 1  # blocked_since stays: later heads go too, until one need not wait
            else:  # need not wait
                part.blocked_since = None
            records.append(part.queues[first].popleft())
            given[first] = records[-1][1].offset + 1
        return Released(records, forced)

    def _key(self, message: InputMessage) -> tuple[float, int, int]:
        return (message.timestamp or 0.0, self.rank(message.topic), message.offset)
