"""Lifecycle records on the broker, stamped at or before a request, are applied before it
even when Faust delivers the request first (``streams.lookahead``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from schemas import topics
from streams.worker import BillingWorker
from tests.factories import at, encode, lifecycle, request, started
from tests.unit.streams.test_worker_order import LogReader, Message, worker


def recording(billing: BillingWorker, topic: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    output = billing.topology.outputs[topic]
    original = output.send

    async def send(key: bytes, value: bytes) -> Any:
        sent.append(json.loads(value))
        return await original(key, value)

    output.send = send  # type: ignore[method-assign]
    return sent


def stamped(topic: str, offset: int, value: dict[str, Any], second: float) -> Message:
    return Message(topic, offset, encode(value), timestamp=1_800_000_000 + second)


def test_a_request_delivered_before_its_accounts_start_is_charged_after_it() -> None:
    # given the account's start and its fallback key on the broker, not yet delivered
    broker = LogReader()
    billing = worker(reader=broker)
    ledger, routing, dead = (recording(billing, t) for t in (topics.LEDGER, topics.ROUTING,
                                                                topics.DLQ))  # fmt: skip
    start = broker.append(stamped(topics.SUBSCRIPTIONS, 0, started(when=at(-60)), 1))
    fallback = broker.append(
        stamped(topics.SUBSCRIPTIONS, 1, lifecycle("fallback_configured", when=at(-1),
                enabled=True, fallback_key_id="kp"), 2)
    )  # fmt: skip
    chat = stamped(topics.REQUESTS, 0, request(start=at(1)), 3)

    # when Faust hands the request over first, then the lifecycle records
    asyncio.run(billing.handle([chat]))
    asyncio.run(billing.handle([start, fallback]))

    # then the request was charged after both, and they were applied once
    assert dead == [] and [e["funding"] for e in ledger] == ["subscription"]
    assert [r["route"] for r in routing] == ["subscription"]  # the start's, once
    assert billing.positions.expected(topics.SUBSCRIPTIONS, 0) == 2


def test_lifecycle_records_stamped_after_the_request_wait_their_turn() -> None:
    broker = LogReader()
    billing = worker(reader=broker)
    ledger = recording(billing, topics.LEDGER)
    asyncio.run(billing.handle([stamped(topics.SUBSCRIPTIONS, 0, started(when=at(-60)), 1)]))
    broker.append(stamped(topics.SUBSCRIPTIONS, 1, lifecycle("canceled", when=at(0)), 5))

    asyncio.run(billing.handle([stamped(topics.REQUESTS, 0, request(start=at(1)), 3)]))

    assert [e["funding"] for e in ledger] == ["subscription"]  # not refused as canceled
    assert billing.positions.expected(topics.SUBSCRIPTIONS, 0) == 1


def test_a_lifecycle_record_delivered_first_waits_for_the_requests_published_before_it() -> None:
    # given an account at its 5-hour cap's edge and, on the broker, a big request then an
    # upgrade published after it
    broker = LogReader()
    billing = worker(reader=broker)
    ledger = recording(billing, topics.LEDGER)
    asyncio.run(billing.handle([stamped(topics.SUBSCRIPTIONS, 0, started(when=at(-60)), 1)]))
    images = broker.append(
        stamped(topics.REQUESTS, 0, request(start=at(1), model="nanobanana/nanobanana-pro",
                                            images=40, request_id="img"), 2)
    )  # fmt: skip
    after = broker.append(stamped(topics.REQUESTS, 1, request(start=at(2), request_id="b"), 3))
    upgrade = stamped(
        topics.SUBSCRIPTIONS, 1, lifecycle("upgraded", when=at(3), plan="max", paid_usd="80"), 4
    )

    # when Faust hands the upgrade over before the requests
    asyncio.run(billing.handle([upgrade, images, after]))

    # then the requests were charged against the Pro caps they were published under: the
    # image request exhausted the window, so the next one found no subscription quota
    assert [(e["request_id"], e["plan"]) for e in ledger] == [("img", "pro"), ("b", "pro")]
    assert ledger[1]["funding"] != "subscription"
    assert billing.positions.expected(topics.REQUESTS, 0) == 2
