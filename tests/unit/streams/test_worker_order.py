"""The worker's per-record order, pinned: outputs acknowledged before any state is saved;
idempotency records before the account; a record already applied is skipped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from billing.catalog import load_catalog
from schemas import topics
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


def worker() -> BillingWorker:
    topology = Topology(
        app=FakeApp(),  # type: ignore[arg-type]
        inputs=None,
        discounts=None,
        outputs={name: RecordingTopic(name) for name in topics.OUTPUT_TOPICS},
        ticks=RecordingTopic(topics.TICKS),
        accounts=RecordingTable("accounts"),
        seen=RecordingTable("seen"),
        discount_table=RecordingTable("discounts"),
        prefix="",
    )
    return BillingWorker(topology, load_catalog())


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
