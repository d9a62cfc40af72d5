"""The publisher refuses what breaks a contract before sending, and picks topic and key by rule.

A fake producer stands in for Kafka here (it records every send); the real broker is in
tests/integration/test_gateway.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata, TopicPartition

from billing.errors import MeteringError
from gateway import InvalidEvent, Publisher, PublishFailed, SyncPublisher, topic_for
from gateway.events import Event
from schemas import topics
from schemas.discounts import DiscountChange
from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from schemas.subscriptions import FallbackConfigured
from tests.factories import adjustment, at, discount, lifecycle, request, started


class FakeProducer:
    """Records sends; acknowledges each at once, fails it with ``error``, or never answers."""

    def __init__(self, *, error: Exception | None = None, answer: bool = True) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = False
        self.stopped = False
        self.error = error
        self.answer = answer

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        elif self.answer:
            offset = len(self.sent) - 1
            future.set_result(RecordMetadata(topic, 0, TopicPartition(topic, 0), offset, -1, 0, 0))
        return future


def publisher(fake: FakeProducer, **options: Any) -> Publisher:
    return Publisher("unused:9092", producer_factory=lambda: fake, **options)


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, **changes}


INVALID: list[tuple[str, Callable[[], Event], str, str, str]] = [
    # (case, event, topic named, field named, words of the reason)
    (
        "negative token count",
        lambda: _with(request(), usage={"input_tokens": -1, "output_tokens": 10}),
        topics.REQUESTS,
        "usage.input_tokens",
        "greater than or equal to 0",
    ),
    (
        "token count as a string",
        lambda: _with(request(), usage={"input_tokens": "5", "output_tokens": 10}),
        topics.REQUESTS,
        "usage.input_tokens",
        "valid integer",
    ),
    (
        "completed before it started",
        lambda: request(duration=timedelta(seconds=-1)),
        topics.REQUESTS,
        "<event>",
        "completed_at is before started_at",
    ),
    (
        "unknown field",
        lambda: _with(request(), region="eu"),
        topics.REQUESTS,
        "region",
        "Extra inputs are not permitted",
    ),
    (
        "naive timestamp",
        lambda: _with(request(), started_at="2026-11-02T09:00:00"),
        topics.REQUESTS,
        "started_at",
        "timezone",
    ),
    (
        "missing account",
        lambda: {k: v for k, v in request().items() if k != "account_id"},
        topics.REQUESTS,
        "account_id",
        "Field required",
    ),
    (
        "unknown supply state",
        lambda: discount("openai/gpt-5.2", "abundant", at()),
        topics.DISCOUNTS,
        "supply_state",
        "'low', 'medium', 'high' or 'surplus'",
    ),
    (
        "negative adjustment",
        lambda: adjustment("e1", "-1", when=at()),
        topics.ADJUSTMENTS,
        "amount",
        "greater than 0",
    ),
    (
        "unknown lifecycle type",
        lambda: lifecycle("paused", when=at()),
        topics.SUBSCRIPTIONS,
        "<event>",
        "does not match any of the expected tags",
    ),
    (
        "fallback enabled without a key",
        lambda: lifecycle("fallback_configured", when=at(), enabled=True),
        topics.SUBSCRIPTIONS,
        "fallback_configured",
        "fallback_key_id is required",
    ),
    (
        "bytes that are not JSON",
        lambda: b"{not json",
        "(no topic)",
        "<event>",
        "not valid JSON",
    ),
    (
        "JSON that is not an object",
        lambda: b"[1, 2]",
        "(no topic)",
        "<event>",
        "not a JSON object",
    ),
    (
        "an output contract",
        lambda: RoutingState(
            schema_version=1,
            account_id="acct_1",
            route="fallback",
            fallback_key_id="key_fb",
            until=None,
            reason="exhausted",
            seq=1,
            at=at(),
        ),
        "(no topic)",
        "<event>",
        "RoutingState is not an input event",
    ),
    (
        "a value of no supported type",
        lambda: ["request"],  # type: ignore[list-item,return-value]
        "(no topic)",
        "<event>",
        "unsupported event type list",
    ),
    (
        "a value JSON cannot hold",
        lambda: _with(request(), usage={"input_tokens": {1, 2}, "output_tokens": 1}),
        topics.REQUESTS,
        "<event>",
        "not JSON serializable",
    ),
]


@pytest.mark.parametrize(
    ("event", "topic", "field", "reason"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
async def test_an_invalid_event_is_refused_with_topic_field_and_reason_and_nothing_is_sent(
    event: Callable[[], Event], topic: str, field: str, reason: str
) -> None:
    # given a started publisher on a recording producer
    fake = FakeProducer()
    async with publisher(fake, topic_prefix="p-") as pub:
        # when an event that breaks its contract is published
        with pytest.raises(InvalidEvent) as refused:
            await pub.publish(event())

    # then the error names the topic, the field and the reason, and nothing was sent
    error = refused.value
    assert isinstance(error, MeteringError)
    assert (error.topic, error.field) == (topic, field)
    assert reason.lower() in error.reason.lower()
    assert str(error).startswith(f"invalid event for {topic}: {field}: ")
    assert fake.sent == []


async def test_every_problem_is_kept_and_the_message_counts_the_others() -> None:
    # given a request with two broken fields
    event = _with(request(), channel="fax", status="lost")

    # when it is published
    with pytest.raises(InvalidEvent) as refused:
        await publisher(FakeProducer()).publish(event)

    # then both are listed and the message says one more problem exists
    assert [field for field, _ in refused.value.errors] == ["channel", "status"]
    assert str(refused.value).endswith("(and 1 more problem)")


async def test_one_invalid_event_in_a_batch_sends_none_of_the_batch() -> None:
    # given a batch of valid requests with one invalid request in the middle
    fake = FakeProducer()
    batch: list[Event] = [request("acct_1"), request("acct_2", input_tokens=-5), request("acct_3")]

    # when the batch is published
    async with publisher(fake) as pub:
        with pytest.raises(InvalidEvent, match=r"usage\.input_tokens"):
            await pub.publish_many(batch)

    # then not even the valid events before it were sent
    assert fake.sent == []


def _request_model() -> GatewayRequest:
    return GatewayRequest.model_validate_json(json.dumps(request("acct_model")))


SELECTION: list[tuple[str, Callable[[], Event], str, bytes]] = [
    # (case, event, topic without prefix, key)
    ("request dict", lambda: request("acct_9"), topics.REQUESTS, b"acct_9"),
    ("request model", _request_model, topics.REQUESTS, b"acct_model"),
    ("request bytes", lambda: json.dumps(request("acct_b")).encode(), topics.REQUESTS, b"acct_b"),
    ("subscription started", lambda: started("acct_s"), topics.SUBSCRIPTIONS, b"acct_s"),
    (
        "subscription model",
        lambda: FallbackConfigured(
            schema_version=1,
            account_id="acct_f",
            at=at(),
            type="fallback_configured",
            enabled=True,
            fallback_key_id="key_payg",
        ),
        topics.SUBSCRIPTIONS,
        b"acct_f",
    ),
    (
        "canceled (no plan fields)",
        lambda: lifecycle("canceled", "acct_c", when=at()),
        topics.SUBSCRIPTIONS,
        b"acct_c",
    ),
    (
        "discount keyed by model",
        lambda: discount("z-ai/glm-4.7", "surplus", at()),
        topics.DISCOUNTS,
        b"z-ai/glm-4.7",
    ),
    (
        "discount model",
        lambda: DiscountChange(
            schema_version=1, model="openai/gpt-5.2", supply_state="high", effective_at=at()
        ),
        topics.DISCOUNTS,
        b"openai/gpt-5.2",
    ),
    (
        "adjustment",
        lambda: adjustment("e1", "0.5", account="acct_a", when=at()),
        topics.ADJUSTMENTS,
        b"acct_a",
    ),
]


@pytest.mark.parametrize(
    ("event", "topic", "key"),
    [case[1:] for case in SELECTION],
    ids=[case[0] for case in SELECTION],
)
async def test_topic_and_key_follow_the_rule_and_the_value_is_the_contract_json(
    event: Callable[[], Event], topic: str, key: bytes
) -> None:
    # given a publisher with a topic prefix
    fake = FakeProducer()
    async with publisher(fake, topic_prefix="p-") as pub:
        # when a valid event is published
        metadata = await pub.publish(event())

    # then it went to its prefixed topic under its key, as the contract's own JSON
    [(sent_topic, sent_key, value)] = fake.sent
    assert (sent_topic, sent_key) == ("p-" + topic, key)
    assert value is not None
    model = topics.CONTRACTS[topic].validate_json(value)
    assert value == model.model_dump_json().encode()
    assert metadata.topic == "p-" + topic


@pytest.mark.parametrize(
    ("fields", "topic"),
    [
        ({"request_id", "account_id", "model"}, topics.REQUESTS),
        ({"model", "supply_state", "effective_at"}, topics.DISCOUNTS),
        ({"adjustment_id", "account_id", "entry_id"}, topics.ADJUSTMENTS),
        ({"account_id", "type", "at"}, topics.SUBSCRIPTIONS),
        (set(), topics.SUBSCRIPTIONS),
        ({"request_id", "supply_state"}, topics.REQUESTS),  # request_id is looked at first
    ],
)
def test_topic_for_decides_by_the_fields_present(fields: set[str], topic: str) -> None:
    assert topic_for(fields) == topic


async def test_values_are_normalised_to_the_contract_form() -> None:
    # given an adjustment whose amount is a Decimal and whose time has a +02:00 offset
    local = datetime(2026, 11, 2, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    event = {**adjustment("e1", "0", when=at()), "amount": Decimal("1.250"), "at": local}

    # when it is published
    fake = FakeProducer()
    async with publisher(fake) as pub:
        await pub.publish(event)

    # then the amount is an exact decimal string and the time is UTC with a Z
    [(_, _, value)] = fake.sent
    assert value is not None
    body = json.loads(value)
    assert body["amount"] == "1.250"
    assert body["at"] == "2026-11-02T09:00:00Z"
    assert datetime.fromisoformat(body["at"]) == local.astimezone(UTC)


async def test_publish_many_sends_in_order_and_returns_metadata_in_order() -> None:
    # given three requests of one account
    events: list[Event] = [request("acct_1", request_id=f"req_{n}") for n in range(3)]

    # when they are published as a batch
    fake = FakeProducer()
    async with publisher(fake) as pub:
        metadata = await pub.publish_many(events)

    # then they were handed over in order and each has its own metadata
    assert [json.loads(v or b"")["request_id"] for _, _, v in fake.sent] == [
        "req_0",
        "req_1",
        "req_2",
    ]
    assert [m.offset for m in metadata] == [0, 1, 2]


async def test_a_refused_send_raises_publish_failed_naming_topic_and_request_with_the_cause() -> (
    None
):
    # given a producer whose broker refuses every record
    refusal = MessageSizeTooLargeError()
    fake = FakeProducer(error=refusal)

    # when a request is published
    async with publisher(fake, topic_prefix="p-") as pub:
        with pytest.raises(PublishFailed) as failed:
            await pub.publish(request(request_id="req_big"))

    # then the error names the prefixed topic and the request, and keeps the Kafka error
    assert failed.value.topic == "p-" + topics.REQUESTS
    assert failed.value.event_id == "request req_big"
    assert "req_big" in str(failed.value)
    assert "MessageSizeTooLargeError" in str(failed.value)
    assert failed.value.__cause__ is refusal


async def test_an_unacknowledged_send_times_out_as_publish_failed() -> None:
    # given a producer that never hears back from the broker, and a short delivery deadline
    fake = FakeProducer(answer=False)

    # when two requests are published
    async with publisher(fake, delivery_timeout_s=0.05) as pub:
        with pytest.raises(PublishFailed) as failed:
            await pub.publish_many([request(request_id="req_a"), request(request_id="req_b")])

    # then the first one is named, the count is given, and the cause is the timeout
    assert failed.value.event_id == "request req_a"
    assert "not acknowledged within 0.05 s" in str(failed.value)
    assert "(2 of 2 events not acknowledged)" in str(failed.value)
    assert isinstance(failed.value.__cause__, TimeoutError)


async def test_a_send_the_producer_cannot_take_raises_publish_failed() -> None:
    # given a producer whose send itself fails (e.g. its buffer stayed full)
    class BufferFull(FakeProducer):
        async def send(
            self, topic: str, value: bytes | None = None, key: bytes | None = None
        ) -> asyncio.Future[Any]:
            raise KafkaTimeoutError()

    # when a request is published
    async with publisher(BufferFull()) as pub:
        with pytest.raises(PublishFailed, match="KafkaTimeoutError") as failed:
            await pub.publish(request(request_id="req_x"))

    # then the caller gets the failure, with the cause
    assert isinstance(failed.value.__cause__, KafkaTimeoutError)


async def test_publishing_before_start_or_after_stop_fails_without_sending() -> None:
    # given a publisher that was never started, and one that was stopped
    fresh_fake, stopped_fake = FakeProducer(), FakeProducer()
    fresh = publisher(fresh_fake)
    stopped = publisher(stopped_fake)
    await stopped.start()
    await stopped.stop()

    # when each publishes a valid request, then each fails and nothing is sent
    for pub in (fresh, stopped):
        with pytest.raises(PublishFailed, match="not started"):
            await pub.publish(request())
    assert fresh_fake.sent == stopped_fake.sent == []
    assert stopped_fake.stopped


def test_sync_publisher_publishes_refuses_and_closes() -> None:
    # given a blocking publisher on a recording producer
    fake = FakeProducer()
    with SyncPublisher("unused:9092", producer_factory=lambda: fake) as pub:
        # when a valid and an invalid request are published
        metadata = pub.publish(request("acct_sync"))
        with pytest.raises(InvalidEvent, match=r"usage\.output_tokens"):
            pub.publish(request(output_tokens=-1))

    # then the valid one was sent and acknowledged, the invalid one not sent, the producer closed
    assert [key for _, key, _ in fake.sent] == [b"acct_sync"]
    assert metadata.offset == 0
    assert fake.started and fake.stopped

    # and publishing after close fails without sending
    with pytest.raises(PublishFailed, match="closed"):
        pub.publish(request())
    assert len(fake.sent) == 1
