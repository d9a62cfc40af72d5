"""A partition's requests, subscription events and adjustments are folded in publication
order (timestamp, then ``topics.SAME_INSTANT_ORDER``, then offset), whatever order Faust
delivers them in: a record waits for a topic of its partition that is behind its end, never
longer than the hold bound, and what a failed batch took is held again."""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas import topics
from streams.input_order import InputOrder
from streams.worker import HOLD_MAX_S
from tests.factories import at, encode, request, started
from tests.unit.streams.test_worker_order import LogReader, Message, calls, worker

ORDERED = (topics.SUBSCRIPTIONS, topics.REQUESTS, topics.ADJUSTMENTS)


def order(hold_max_s: float = 10.0) -> InputOrder:
    return InputOrder(ORDERED, topics.SAME_INSTANT_ORDER.index, hold_max_s)


def msg(topic: str, offset: int, timestamp: float, partition: int = 0) -> Message:
    return Message(topic, offset, b"", partition=partition, timestamp=timestamp)


def ids(records: list[tuple[Any, Any]]) -> list[tuple[str, int]]:
    return [(m.topic, m.offset) for _, m in records]


def everything_delivered(topic: str, partition: int, given: int | None) -> bool:
    return True


def nothing_delivered(topic: str, partition: int, given: int | None) -> bool:
    return False


def test_heads_go_by_timestamp_then_topic_rank_then_offset() -> None:
    held = order()
    for m in (
        msg(topics.REQUESTS, 0, 5.0),
        msg(topics.REQUESTS, 1, 7.0),
        msg(topics.ADJUSTMENTS, 0, 5.0),
        msg(topics.SUBSCRIPTIONS, 0, 5.0),
        msg(topics.SUBSCRIPTIONS, 1, 6.0),
    ):
        held.add(m, m)

    released = held.release(0, everything_delivered, now=0.0)

    assert ids(released.records) == [
        (topics.SUBSCRIPTIONS, 0), (topics.REQUESTS, 0), (topics.ADJUSTMENTS, 0),
        (topics.SUBSCRIPTIONS, 1), (topics.REQUESTS, 1),
    ]  # fmt: skip
    assert released.forced == 0 and held.held() == 0 and held.partitions == []


def test_a_head_waits_for_a_topic_behind_its_end_then_goes_when_it_arrives() -> None:
    held = order()
    first = msg(topics.REQUESTS, 0, 5.0)
    held.add(first, first)
    # subscriptions[0] has a record on the broker not delivered yet
    behind = {topics.SUBSCRIPTIONS: True}

    def caught_up(topic: str, partition: int, given: int | None) -> bool:
        return not behind.get(topic, False)

    assert held.release(0, caught_up, now=0.0).records == []
    assert held.received(topics.REQUESTS, 0) == 1  # a re-delivery of offset 0 is not held twice
    assert held.add(first, first) is False

    delivered = msg(topics.SUBSCRIPTIONS, 0, 4.0)
    held.add(delivered, delivered)
    behind.clear()

    assert ids(held.release(0, caught_up, now=1.0).records) == [
        (topics.SUBSCRIPTIONS, 0),
        (topics.REQUESTS, 0),
    ]


def test_a_partition_blocked_for_the_hold_bound_lets_its_heads_go_counted() -> None:
    held = order(hold_max_s=10.0)
    for offset in range(3):
        m = msg(topics.REQUESTS, offset, float(offset))
        held.add(m, m)

    assert held.release(0, nothing_delivered, now=100.0).records == []
    assert held.release(0, nothing_delivered, now=109.9).records == []
    released = held.release(0, nothing_delivered, now=110.0)

    assert ids(released.records) == [(topics.REQUESTS, n) for n in range(3)]
    assert released.forced == 3


def test_partitions_are_ordered_apart_and_one_can_be_dropped() -> None:
    held = order()
    a, b = msg(topics.REQUESTS, 0, 1.0, partition=0), msg(topics.REQUESTS, 0, 1.0, partition=1)
    held.add(a, a)
    held.add(b, b)
    held.drop(1)

    assert held.partitions == [0]
    assert held.release(1, everything_delivered, now=0.0).records == []


def test_records_put_back_go_first_again() -> None:
    held = order()
    for offset in range(3):
        m = msg(topics.REQUESTS, offset, float(offset))
        held.add(m, m)
    taken = held.release(0, everything_delivered, now=0.0).records
    later = msg(topics.REQUESTS, 3, 3.0)
    held.add(later, later)

    held.put_back(taken)
    held.put_back(taken[:1])  # twice: held once

    assert ids(held.release(0, everything_delivered, now=0.0).records) == [
        (topics.REQUESTS, n) for n in range(4)
    ]


@given(
    st.lists(st.tuples(st.sampled_from(ORDERED), st.integers(0, 20)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_any_delivery_interleaving_folds_as_the_replay_merges(
    published: list[tuple[str, int]], rng: Any
) -> None:
    # given records of three topics (per topic in offset order, timestamps not monotone)
    per_topic: dict[str, list[Message]] = {t: [] for t in ORDERED}
    for topic, stamp in published:
        per_topic[topic].append(msg(topic, len(per_topic[topic]), float(stamp)))
    # when Faust delivers them in some interleaving, a release after each record
    pending = {t: list(ms) for t, ms in per_topic.items() if ms}
    held, folded = order(), []
    while pending:
        topic = rng.choice(sorted(pending))
        m = pending[topic].pop(0)
        if not pending[topic]:
            del pending[topic]
        held.add(m, m)
        folded += held.release(0, lambda t, p, given: t not in pending, now=0.0).records
    # then every record is folded, in the replay's order
    assert held.held() == 0
    assert ids(folded) == ids([(m, m) for m in _merged(per_topic)])


def _merged(per_topic: dict[str, list[Message]]) -> list[Message]:
    """The replay's order (``metering.replay.kafka_log``: ``heapq.merge`` of the topics)."""
    return list(
        heapq.merge(
            *per_topic.values(),
            key=lambda m: (m.timestamp, topics.SAME_INSTANT_ORDER.index(m.topic), m.offset),
        )
    )


def stamp(minutes: float) -> float:
    """A Kafka timestamp (seconds, as Faust gives it) ``minutes`` after the factories' T0."""
    return at(minutes).timestamp()


def test_a_backlog_delivered_topic_by_topic_is_charged_as_published() -> None:
    # given a started published before the account's requests, and Faust handing over the
    # requests first (its fetch of the subscriptions topic came back later)
    billing = worker()
    app: Any = billing.topology.app
    app.consumer.ends[topics.SUBSCRIPTIONS, 0] = 1
    sub = Message(topics.SUBSCRIPTIONS, 0, encode(started()), timestamp=stamp(0))
    reqs = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")),
                timestamp=stamp(n + 1))
        for n in range(3)
    ]  # fmt: skip

    calls.clear()
    asyncio.run(billing.handle(reqs))
    assert billing.order.held() == 3  # not charged to an account it does not know yet
    asyncio.run(billing.handle([sub]))

    assert f"send {topics.DLQ}" not in calls
    assert calls.count(f"send {topics.LEDGER}") == 3
    assert billing.order.held() == 0


def test_held_records_go_at_the_hold_bound_without_a_new_batch() -> None:
    billing = worker()
    app: Any = billing.topology.app
    app.consumer.ends[topics.SUBSCRIPTIONS, 0] = 1
    clock = [50.0]
    billing.clock = lambda: clock[0]
    sub = Message(topics.SUBSCRIPTIONS, 0, encode(started()), timestamp=stamp(0))
    asyncio.run(billing.handle([sub]))
    calls.clear()
    # a second subscription event is on the broker and never delivered
    app.consumer.ends[topics.SUBSCRIPTIONS, 0] = 2
    req = Message(topics.REQUESTS, 0, encode(request(start=at(1))), timestamp=stamp(2))
    asyncio.run(billing.handle([req]))
    asyncio.run(billing.release_held())
    assert billing.order.held() == 1

    clock[0] += HOLD_MAX_S
    asyncio.run(billing.release_held())

    assert billing.order.held() == 0
    assert calls.count(f"send {topics.LEDGER}") == 1
    assert billing.metrics.order_forced._value.get() == 1


def test_a_topic_emptied_by_retention_before_any_record_was_read_holds_nothing() -> None:
    # given adjustments[0] whose 5 records were all deleted before this worker read any
    reader = LogReader()
    reader.deleted_before[topics.ADJUSTMENTS, 0] = 5
    billing = worker(reader)
    app: Any = billing.topology.app
    app.consumer.ends[topics.ADJUSTMENTS, 0] = 5
    sub = Message(topics.SUBSCRIPTIONS, 0, encode(started()), timestamp=stamp(0))
    req = Message(topics.REQUESTS, 0, encode(request(start=at(1))), timestamp=stamp(2))
    calls.clear()

    asyncio.run(billing.handle([sub, req]))

    assert billing.order.held() == 0
    assert calls.count(f"send {topics.LEDGER}") == 1
