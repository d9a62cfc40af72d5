"""The worker's per-record order, pinned: outputs acknowledged before any state is saved;
idempotency records before the account, the partition's position last; a record already
applied is skipped; records the consumer skipped are re-read and applied first, in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from billing.catalog import load_catalog
from schemas import topics
from streams.continuity import InputRecord
from streams.topology import Topology
from streams.worker import BillingWorker
from tests.factories import at, discount, encode, request, started

calls: list[str] = []


class RecordingTable(dict[str, bytes]):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __setitem__(self, key: str, value: bytes) -> None:
        calls.append(f"save {self.name}")
        super().__setitem__(key, value)

    def on_recover(self, callback: Any) -> None:
        pass


class RecordingTopic:
    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, key: bytes, value: bytes) -> Any:
        calls.append(f"send {self.name}")

        async def delivered() -> None:
            calls.append(f"ack {self.name}")

        return delivered()


class FakeApp:
    def agent(self, *args: Any, **kwargs: Any) -> Any:
        return lambda fn: fn

    def timer(self, *args: Any, **kwargs: Any) -> Any:
        return lambda fn: fn


@dataclass
class Message:
    topic: str
    offset: int
    value: bytes
    key: bytes = b"acct_1"
    partition: int = 0
    timestamp: float | None = None


class LogReader:
    """The partition as the broker holds it: what a re-read returns."""

    def __init__(self) -> None:
        self.log: list[InputRecord] = []
        self.reads: list[tuple[str, int, int, int]] = []

    def append(self, message: Message) -> Message:
        self.log.append(
            InputRecord(message.topic, message.partition, message.offset, None, message.key,
                        message.value)
        )  # fmt: skip
        return message

    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        self.reads.append((topic, partition, start, stop))
        return [
            r for r in self.log
            if (r.topic, r.partition) == (topic, partition) and start <= r.offset < stop
        ]  # fmt: skip


def worker(reader: LogReader | None = None) -> BillingWorker:
    topology = Topology(
        app=FakeApp(),  # type: ignore[arg-type]
        inputs=None,
        discounts=None,
        outputs={name: RecordingTopic(name) for name in topics.OUTPUT_TOPICS},
        ticks=RecordingTopic(topics.TICKS),
        accounts=RecordingTable("accounts"),
        seen=RecordingTable("seen"),
        discount_table=RecordingTable("discounts"),
        positions=RecordingTable("positions"),
        prefix="",
        bootstrap_servers="unused:9092",
    )
    return BillingWorker(topology, load_catalog(), reader=reader or LogReader())


def test_outputs_are_acknowledged_before_state_is_saved() -> None:
    billing = worker()
    asyncio.run(billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started()))))
    calls.clear()
    asyncio.run(billing.handle(Message(topics.REQUESTS, 0, encode(request(start=at(1))))))
    assert calls == [
        "send metering.ledger",
        "ack metering.ledger",
        "save seen",
        "save accounts",
        "save positions",
    ]


def test_a_record_already_applied_to_its_account_is_skipped() -> None:
    billing = worker()
    asyncio.run(billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started()))))
    chat = Message(topics.REQUESTS, 5, encode(request(start=at(1))))
    asyncio.run(billing.handle(chat))
    calls.clear()
    asyncio.run(billing.handle(chat))
    assert calls == []
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 5


def test_a_record_interrupted_before_its_outputs_are_acknowledged_leaves_no_state() -> None:
    billing = worker()
    asyncio.run(billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started()))))
    ledger = billing.topology.outputs[topics.LEDGER]

    async def failing_send(key: bytes, value: bytes) -> Any:
        raise asyncio.CancelledError

    ledger.send = failing_send  # type: ignore[method-assign]
    chat = Message(topics.REQUESTS, 1, encode(request(start=at(1))))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(billing.handle(chat))
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == -1
    assert not billing.accounts.pending and not billing.seen.pending
    # the re-delivered record is applied in full
    del ledger.send
    calls.clear()
    asyncio.run(billing.handle(chat))
    assert (
        "send metering.ledger" in calls and billing.accounts.applied("acct_1", topics.REQUESTS) == 1
    )


def test_agents_handling_records_at_once_do_not_drop_each_others_writes() -> None:
    # given the billing agent waiting for the broker to acknowledge a subscription's outputs
    billing = worker()
    routing = billing.topology.outputs[topics.ROUTING]
    original = routing.send
    acknowledged = asyncio.Event()

    async def slow_send(key: bytes, value: bytes) -> Any:
        delivery = await original(key, value)

        async def later() -> None:
            await acknowledged.wait()
            await delivery

        return later()

    routing.send = slow_send  # type: ignore[method-assign]

    async def both() -> None:
        subscription = asyncio.create_task(
            billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started())))
        )
        await asyncio.sleep(0)  # the subscription is now awaiting its acknowledgement
        discount_change = discount("z-ai/glm-4.7", "high", at(0))
        change = asyncio.create_task(
            billing.handle(Message(topics.DISCOUNTS, 0, encode(discount_change), key=b"z"))
        )
        await asyncio.sleep(0)
        acknowledged.set()
        await asyncio.gather(subscription, change)

    # when the discount agent handles a record meanwhile
    asyncio.run(both())
    # then both records' state is saved
    assert billing.accounts.applied("acct_1", topics.SUBSCRIPTIONS) == 0
    assert (
        "acct_1" in billing.topology.accounts and "z-ai/glm-4.7" in billing.topology.discount_table
    )


def test_records_the_consumer_skipped_are_re_read_and_applied_first_in_order() -> None:
    # given a partition of five requests of which the consumer delivers only the last
    reader = LogReader()
    billing = worker(reader)
    asyncio.run(billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started()))))
    chats = [
        reader.append(Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}"))))
        for n in range(5)
    ]
    asyncio.run(billing.handle(chats[0]))
    calls.clear()

    # when offset 4 arrives after offset 0
    asyncio.run(billing.handle(chats[4]))

    # then offsets 1-3 were read from the broker and charged before it, in order
    assert reader.reads == [(topics.REQUESTS, 0, 1, 4)]
    assert calls.count("ack metering.ledger") == 4
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 4
    assert billing.positions.expected(topics.REQUESTS, 0) == 5
    assert billing.metrics.reread._value.get() == 3


def test_a_record_at_or_below_its_partitions_position_is_dropped() -> None:
    # given two requests applied in order
    billing = worker()
    asyncio.run(billing.handle(Message(topics.SUBSCRIPTIONS, 0, encode(started()))))
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(2)
    ]
    for chat in chats:
        asyncio.run(billing.handle(chat))
    calls.clear()

    # when the consumer delivers the first one again (a seek back after a rebalance)
    asyncio.run(billing.handle(chats[0]))

    # then nothing is sent or saved
    assert calls == []
