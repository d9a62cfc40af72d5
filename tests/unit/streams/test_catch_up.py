"""Records Faust skipped at the end of a partition, with no later record to reveal the gap,
are fetched again: the worker seeks Faust's consumer back to the partition's position once
the partition has delivered nothing for ``STUCK_S`` while behind its end."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from schemas import topics
from streams.worker import STUCK_S, BillingWorker
from tests.factories import encode, started
from tests.unit.streams.test_worker_order import FaustConsumer, Message, worker


class Consumer(FaustConsumer):
    """Faust's consumer as the catch-up sees it: its assignment, high watermarks, seeks."""

    def __init__(self, highwaters: dict[TP, int]) -> None:
        super().__init__()
        self.highwaters = highwaters
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int:
        return self.highwaters.get(tp, 0)  # a partition a test leaves out is empty

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


SUBS0, SUBS1, REQS0 = (
    TP(topics.SUBSCRIPTIONS, 0),
    TP(topics.SUBSCRIPTIONS, 1),
    TP(topics.REQUESTS, 0),
)


def billing_at(highwaters: dict[TP, int], clock: list[float]) -> tuple[BillingWorker, Consumer]:
    """A worker that applied subscription offset 0 of partition 0 at ``clock[0]``."""
    billing = worker()
    consumer = Consumer(highwaters)
    app: Any = billing.topology.app
    app.consumer = consumer
    billing.topology.inputs = SimpleNamespace(topics=(topics.REQUESTS, topics.SUBSCRIPTIONS))
    billing.topology.discounts = SimpleNamespace(topics=(topics.DISCOUNTS,))
    billing.clock = lambda: clock[0]
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    return billing, consumer


def test_a_partition_behind_its_end_and_silent_is_fetched_again_from_its_position() -> None:
    clock = [100.0]
    # records 1 and 2 of subscriptions[0] were skipped; subscriptions[1] was never delivered
    billing, consumer = billing_at({SUBS0: 3, SUBS1: 2, REQS0: 0}, clock)

    asyncio.run(billing.catch_up())  # just delivered, and [1] only now seen behind: wait
    assert consumer.seeks == []
    clock[0] += STUCK_S

    asyncio.run(billing.catch_up())

    assert sorted(consumer.seeks) == [(SUBS0, 1), (SUBS1, 0)]  # never applied: from the start
    consumer.seeks.clear()
    asyncio.run(billing.catch_up())  # the re-fetch is given time before the next look
    assert consumer.seeks == []


def test_a_partition_at_its_end_or_still_delivering_is_left_alone() -> None:
    clock = [100.0]
    billing, consumer = billing_at({SUBS0: 1, REQS0: 0}, clock)  # subscriptions[0]: all applied
    clock[0] += 10 * STUCK_S

    asyncio.run(billing.catch_up())

    assert consumer.seeks == []
    consumer.highwaters[SUBS0] = 2  # a new record, being delivered right now
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 1, encode(started("acct_2")))]))
    consumer.highwaters[SUBS0] = 3
    clock[0] += STUCK_S / 2
    asyncio.run(billing.catch_up())
    assert consumer.seeks == []


def test_a_partition_revoked_during_the_look_does_not_stop_the_worker() -> None:
    clock = [100.0]
    billing, consumer = billing_at({SUBS0: 3}, clock)
    refused: list[TP] = []

    async def revoked(tp: TP, offset: int) -> None:
        refused.append(tp)
        raise AssertionError("Partition is not assigned")  # what aiokafka's seek raises

    consumer.seek = revoked  # type: ignore[method-assign]
    clock[0] += STUCK_S

    asyncio.run(billing.catch_up())  # logged, not raised: a timer's error would crash Faust

    assert refused == [SUBS0]
    clock[0] += STUCK_S
    asyncio.run(billing.catch_up())  # and looked at again later
    assert refused == [SUBS0, SUBS0]


def test_the_look_does_not_wait_for_a_batch_in_progress() -> None:
    # a seek goes through Faust's consumer thread, which in a rebalance waits for the agent
    # to drain: a look holding the batch lock while it seeks would deadlock the worker
    clock = [100.0]
    billing, consumer = billing_at({SUBS0: 3}, clock)
    clock[0] += STUCK_S

    async def during_a_batch() -> None:
        async with billing.one_at_a_time:
            await asyncio.wait_for(billing.catch_up(), timeout=10)

    asyncio.run(during_a_batch())

    assert consumer.seeks == [(SUBS0, 1)]


def applied_to_its_end_committed_at_4(clock: list[float]) -> tuple[BillingWorker, Consumer]:
    """subscriptions[0] applied to its end (offsets 0-9), Faust's commit at offset 4."""
    billing, consumer = billing_at({SUBS0: 10, REQS0: 0}, clock)
    billing.positions.complete(topics.SUBSCRIPTIONS, 0, 9)
    billing.positions.save()
    consumer._committed_offset[SUBS0] = 4
    return billing, consumer


def test_a_quiet_partition_applied_to_its_end_is_released_for_faust_to_commit() -> None:
    # given subscriptions[0] applied to its end (offsets 0-9), and Faust's commit stuck at 4
    # with nothing acknowledged past it (it forgot them in rebalances and never hands them
    # over again)
    clock = [100.0]
    billing, consumer = applied_to_its_end_committed_at_4(clock)

    asyncio.run(billing.catch_up())  # it delivered just now: left to Faust
    assert consumer.gaps == [] and consumer._acked[SUBS0] == []
    clock[0] += STUCK_S
    asyncio.run(billing.catch_up())

    # then the last applied offset is acknowledged and the ones before it are a gap, so
    # Faust's next commit reaches the position; nothing is sought
    assert consumer._acked[SUBS0] == [9] and consumer._acked_index[SUBS0] == {9}
    assert consumer.gaps == [(SUBS0, 4, 8)] and consumer.seeks == []
    asyncio.run(billing.catch_up())  # once
    assert consumer._acked[SUBS0] == [9]


def test_a_released_partition_holds_each_acknowledged_offset_once_and_no_gap_over_one() -> None:
    # given subscriptions[0] applied to offset 9, Faust's commit at 4, an acknowledgement
    # left twice by Faust's own merge of a gap (which cuts the run it commits) and an old
    # gap over an offset acknowledged since
    clock = [100.0]
    billing, consumer = applied_to_its_end_committed_at_4(clock)
    consumer._acked[SUBS0] = [6, 6, 7]
    consumer._acked_index[SUBS0] = {6, 7}
    consumer._gap[SUBS0].addi(5, 8)
    clock[0] += STUCK_S

    asyncio.run(billing.catch_up())

    # then each acknowledged offset is there once, the old gap is gone and the offsets
    # between them are declared again: one consecutive run up to the position
    assert consumer._acked[SUBS0] == [6, 7, 9] and consumer._acked_index[SUBS0] == {6, 7, 9}
    assert not consumer._gap[SUBS0]
    assert consumer.gaps == [(SUBS0, 4, 5), (SUBS0, 8, 8)]
