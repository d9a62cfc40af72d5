"""The discount fence: a batch of requests waits for the discount changes the broker held
when it was read, and only for those the engine would apply."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from schemas import topics
from streams.discount_fence import DiscountFence
from streams.worker import BillingWorker
from tests.factories import at, discount, encode, request, started
from tests.unit.streams.test_worker_order import DiscountFeed, Message, worker

MODEL = "z-ai/glm-4.7"
LIST_COST_AT_HIGH = Decimal("0.50")


def lilac_worker(feed: DiscountFeed) -> tuple[BillingWorker, list[dict[str, Any]]]:
    """A worker with a Lilac account, already charging at ``surplus`` (0.25×); its ledger."""
    billing = worker(feed=feed)
    ledger: list[dict[str, Any]] = []
    topic = billing.topology.outputs[topics.LEDGER]
    original = topic.send

    async def recording_send(key: bytes, value: bytes) -> Any:
        ledger.append(json.loads(value))
        return await original(key, value)

    topic.send = recording_send  # type: ignore[method-assign]
    subscription = started("acct_1", family="lilac", plan="pro", paid="30", when=at(-60))
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(subscription))]))
    surplus = feed.append(
        Message(topics.DISCOUNTS, 0, encode(discount(MODEL, "surplus", at(-30))), key=b"z")
    )
    asyncio.run(billing.handle([surplus]))
    return billing, ledger


def chat(offset: int, minute: float) -> Message:
    return Message(
        topics.REQUESTS, offset, encode(request(start=at(minute), model=MODEL,
                                                request_id=f"r{offset}"))
    )  # fmt: skip


def test_requests_wait_for_a_discount_change_published_before_them() -> None:
    # given a change to "high" on the broker that the discounts agent has not applied yet
    feed = DiscountFeed()
    billing, ledger = lilac_worker(feed)
    high = feed.append(
        Message(topics.DISCOUNTS, 1, encode(discount(MODEL, "high", at(10))), key=b"z")
    )

    async def run() -> None:
        # when a request that started after it is handed to the billing agent
        bill = asyncio.create_task(billing.handle_until_done([chat(0, 20)], fenced=True))
        await asyncio.wait_for(feed.read_once.wait(), timeout=5)
        assert not bill.done() and ledger == []
        # and only then the discounts agent applies the change
        await billing.handle_until_done([high])
        await asyncio.wait_for(bill, timeout=5)

    asyncio.run(run())
    # then the request pays the multiplier of the change, as the offline replay charges it
    assert [(e["supply_state"], Decimal(e["multiplier"])) for e in ledger] == [
        ("high", LIST_COST_AT_HIGH)
    ]
    assert billing.metrics.discount_gave_up._value.get() == 0


def test_changes_the_engine_refuses_are_not_waited_for() -> None:
    feed = DiscountFeed()
    billing, ledger = lilac_worker(feed)
    billing.fence.wait_s = 3600.0  # a wait would hang the test: wait_for fails it instead
    feed.append(Message(topics.DISCOUNTS, 1, b"{not json", key=b"z"))
    feed.append(
        Message(topics.DISCOUNTS, 2, encode(discount("nobody/unknown", "high", at(10))), key=b"u")
    )
    feed.append(  # another state at an instant that already has one: a conflict
        Message(topics.DISCOUNTS, 3, encode(discount(MODEL, "low", at(-30))), key=b"z")
    )

    asyncio.run(asyncio.wait_for(billing.handle_until_done([chat(0, 20)], fenced=True), 5))

    assert [e["supply_state"] for e in ledger] == ["surplus"]


def test_a_change_that_never_arrives_is_given_up_once_and_counted() -> None:
    feed = DiscountFeed()
    billing, ledger = lilac_worker(feed)
    billing.fence.wait_s = 0.05
    feed.append(Message(topics.DISCOUNTS, 1, encode(discount(MODEL, "high", at(10))), key=b"z"))

    asyncio.run(billing.handle_until_done([chat(0, 20)], fenced=True))
    billing.fence.wait_s = 3600.0  # the next batch must not wait for it again
    asyncio.run(asyncio.wait_for(billing.handle_until_done([chat(1, 21)], fenced=True), 5))

    assert [e["supply_state"] for e in ledger] == ["surplus", "surplus"]
    assert billing.metrics.discount_gave_up._value.get() == 1


def test_a_batch_without_requests_is_not_fenced() -> None:
    feed = DiscountFeed()
    billing, _ = lilac_worker(feed)
    billing.fence.wait_s = 3600.0
    feed.append(Message(topics.DISCOUNTS, 1, encode(discount(MODEL, "high", at(10))), key=b"z"))

    class Stream:
        async def take_events(self, *args: Any, **kwargs: Any) -> Any:
            yield [Message(topics.SUBSCRIPTIONS, 1, encode(started("acct_2", when=at(0))),
                           key=b"acct_2")]  # fmt: skip

    asyncio.run(asyncio.wait_for(billing.bill(Stream()), 5))

    assert "acct_2" in billing.topology.accounts


def test_each_record_is_read_once_and_an_applied_one_does_not_wait() -> None:
    # given a worker restarted with every change already in its table
    feed = DiscountFeed()
    for offset in range(3):
        feed.append(Message(topics.DISCOUNTS, offset, b"{}", key=b"z"))
    reads: list[tuple[int, int, int]] = []
    original = feed.read

    async def counting_read(partition: int, start: int, stop: int) -> Any:
        reads.append((partition, start, stop))
        return await original(partition, start, stop)

    feed.read = counting_read  # type: ignore[method-assign]
    given_up: list[int] = []
    fence = DiscountFence(
        feed, lambda record: record, lambda record: False, on_give_up=given_up.append, wait_s=0
    )

    async def twice() -> None:
        await fence.cross()
        await fence.cross()

    asyncio.run(twice())

    assert reads == [(0, 0, 3)] and given_up == []


def test_a_waited_for_record_is_decoded_once_however_long_it_is_waited_for() -> None:
    feed = DiscountFeed()
    feed.append(Message(topics.DISCOUNTS, 0, b"{}", key=b"z"))
    decoded: list[Any] = []
    looks: list[Any] = []

    def change_of(record: Any) -> Any:
        decoded.append(record)
        return record

    def unapplied(change: Any) -> bool:
        looks.append(change)
        return len(looks) < 4  # in the table at the fourth look

    asyncio.run(DiscountFence(feed, change_of, unapplied).cross())

    assert len(decoded) == 1 and len(looks) == 4
