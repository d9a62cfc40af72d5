"""The gateway SDK against the real broker: published records as the contract says, send
errors surfaced, and the routing view caught up, kept current and rebuilt after a restart."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from deploy.kafka.config import free_ports
from gateway import (
    BrokerUnavailable,
    Publisher,
    PublishFailed,
    RoutingTopicMissing,
    RoutingView,
    SyncPublisher,
)
from schemas import topics
from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from tests.factories import at, request

pytestmark = pytest.mark.integration

WAIT_S = 60.0
PARTITIONS = 2


async def _create_topic(bootstrap: str, name: str, configs: dict[str, str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, replication_factor=1, topic_configs=configs or {})]
        )
    finally:
        await admin.close()


async def _topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names: list[str] = await admin.list_topics()
        return names
    finally:
        await admin.close()


async def _read(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``count`` records of ``topic``, or a failure after ``WAIT_S``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    taken: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(taken) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    taken.extend(batch)
    except TimeoutError:
        pytest.fail(f"read {len(taken)} of {count} records of {topic} within {WAIT_S:.0f}s")
    finally:
        await consumer.stop()
    return taken


def _route(account: str, seq: int, route: str = "fallback") -> RoutingState:
    return RoutingState.model_validate(
        {
            "schema_version": 1,
            "account_id": account,
            "route": route,
            "fallback_key_id": "key_payg" if route == "fallback" else None,
            "until": None if route == "subscription" else at(hours=5),
            "reason": "reset" if route == "subscription" else "exhausted",
            "seq": seq,
            "at": at(minutes=seq),
        }
    )


async def _produce_routing(bootstrap: str, topic: str, records: list[tuple[str, Any]]) -> None:
    """Write ``(account, value)`` records as the worker does; a value may be raw bytes or None."""
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True) as producer:
        for account, value in records:
            if isinstance(value, RoutingState):
                value = value.model_dump_json().encode()
            await producer.send_and_wait(topic, value, key=account.encode())


class Changes:
    """An ``on_change`` callback collecting changes, and a way to wait for a given one."""

    def __init__(self) -> None:
        self.seen: list[RoutingState] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, state: RoutingState) -> None:
        async with self._arrived:
            self.seen.append(state)
            self._arrived.notify_all()

    async def wait_for(self, account: str, seq: int) -> None:
        def arrived() -> bool:
            return any(s.account_id == account and s.seq == seq for s in self.seen)

        try:
            async with asyncio.timeout(WAIT_S), self._arrived:
                await self._arrived.wait_for(arrived)
        except TimeoutError:
            pytest.fail(f"no change for {account} seq {seq} within {WAIT_S:.0f}s: {self.seen}")

    def seqs(self) -> dict[str, list[int]]:
        by_account: dict[str, list[int]] = defaultdict(list)
        for state in self.seen:
            by_account[state.account_id].append(state.seq)
        return dict(by_account)


async def test_a_published_request_is_on_its_topic_keyed_by_account_as_the_contract(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given the requests topic
    topic = kafka_topic_prefix + topics.REQUESTS
    await _create_topic(kafka_bootstrap, topic)
    one = request("acct_one", request_id="req_one")
    batch = [request("acct_many", request_id=f"req_many_{n}") for n in range(5)]

    # when a gateway publishes one request, then a batch of one account's requests
    async with Publisher(kafka_bootstrap, topic_prefix=kafka_topic_prefix) as publisher:
        sent = await publisher.publish(one)
        sent_many = await publisher.publish_many(batch)

    # then each record is keyed by its account and its value is the validated contract
    records = await _read(kafka_bootstrap, topic, 1 + len(batch))
    by_id = {GatewayRequest.model_validate_json(r.value).request_id: r for r in records}
    record = by_id["req_one"]
    assert record.key == b"acct_one"
    assert GatewayRequest.model_validate_json(record.value) == GatewayRequest.model_validate_json(
        json.dumps(one)
    )
    assert (record.partition, record.offset) == (sent.partition, sent.offset)

    # and the batch kept its order on its account's one partition
    many = sorted((r for r in records if r.key == b"acct_many"), key=lambda r: r.offset)
    assert [json.loads(r.value)["request_id"] for r in many] == [e["request_id"] for e in batch]
    assert {r.partition for r in many} == {m.partition for m in sent_many}
    assert len({m.partition for m in sent_many}) == 1


async def test_the_blocking_publisher_writes_to_the_broker(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given the requests topic
    topic = kafka_topic_prefix + topics.REQUESTS
    await _create_topic(kafka_bootstrap, topic)

    # when a threaded gateway publishes a request with the blocking publisher
    def publish() -> Any:
        with SyncPublisher(kafka_bootstrap, topic_prefix=kafka_topic_prefix) as publisher:
            return publisher.publish(request("acct_sync", request_id="req_sync"))

    sent = await asyncio.to_thread(publish)

    # then the record is on the topic where the metadata says
    [record] = await _read(kafka_bootstrap, topic, 1)
    assert (record.key, record.partition, record.offset) == (
        b"acct_sync",
        sent.partition,
        sent.offset,
    )
    assert json.loads(record.value)["request_id"] == "req_sync"


async def test_a_record_the_broker_refuses_surfaces_as_publish_failed(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a requests topic whose broker takes no record batch over 128 bytes
    topic = kafka_topic_prefix + topics.REQUESTS
    await _create_topic(kafka_bootstrap, topic, {"max.message.bytes": "128"})

    # when a (valid) request is published to it
    async with Publisher(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, delivery_timeout_s=WAIT_S
    ) as publisher:
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(request(request_id="req_refused"))

    # then the caller gets the refusal, naming topic and request, with the Kafka error as cause
    assert failed.value.topic == topic
    assert failed.value.event_id == "request req_refused"
    assert "MessageSizeTooLarge" in str(failed.value)
    assert isinstance(failed.value.__cause__, KafkaError)


async def test_a_closed_port_fails_at_start_for_every_client() -> None:
    # given an address where nothing listens
    address = f"127.0.0.1:{free_ports(1)[0]}"

    # when the async publisher, the blocking one and the routing view start there
    with pytest.raises(BrokerUnavailable, match=re.escape(address)) as publisher_failed:
        await Publisher(address).start()
    with pytest.raises(BrokerUnavailable, match=re.escape(address)):
        await asyncio.to_thread(SyncPublisher, address)
    with pytest.raises(BrokerUnavailable, match=re.escape(address)):
        await RoutingView(address).start()

    # then each says so with the connection error as cause
    assert isinstance(publisher_failed.value.__cause__, KafkaConnectionError)


async def test_a_missing_routing_topic_is_reported_and_not_auto_created(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a prefix under which no routing topic exists
    view = RoutingView(kafka_bootstrap, topic_prefix=kafka_topic_prefix)

    # when the view starts, then it says the topic is missing
    with pytest.raises(RoutingTopicMissing, match=re.escape(view.topic)):
        await view.start()

    # and it did not create it (an auto-created topic would not be compacted)
    assert view.topic not in await _topic_names(kafka_bootstrap)


async def test_the_view_of_an_empty_topic_is_ready_and_follows_new_routes(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given an empty compacted routing topic and a view of it
    topic = kafka_topic_prefix + topics.ROUTING
    await _create_topic(kafka_bootstrap, topic, {"cleanup.policy": "compact"})
    changes = Changes()
    async with RoutingView(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, on_change=changes
    ) as view:
        # when it catches up
        await view.wait_ready(WAIT_S)

        # then it is ready with no routes
        assert view.ready
        assert len(view) == 0
        assert view.route("acct_1") is None

        # and when the worker routes an account, the view announces and answers it
        await _produce_routing(kafka_bootstrap, topic, [("acct_1", _route("acct_1", 1))])
        await changes.wait_for("acct_1", 1)
        assert view.route("acct_1") == _route("acct_1", 1)


async def test_the_view_rebuilds_the_latest_routes_and_a_restarted_view_has_the_same(
    kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    # given a routing topic holding several changes per account, a re-delivered stale state,
    # a tombstone and a value that is not a routing state
    topic = kafka_topic_prefix + topics.ROUTING
    await _create_topic(kafka_bootstrap, topic, {"cleanup.policy": "compact"})
    await _produce_routing(
        kafka_bootstrap,
        topic,
        [
            ("acct_a", _route("acct_a", 1)),
            ("acct_b", _route("acct_b", 2, "blocked")),
            ("acct_a", _route("acct_a", 2, "subscription")),
            ("acct_b", _route("acct_b", 1, "subscription")),  # stale: seq 1 after seq 2
            ("acct_z", None),  # tombstone
            ("acct_x", b"not a routing state"),
            ("acct_a", _route("acct_a", 3)),
            ("acct_c", _route("acct_c", 1, "subscription")),
        ],
    )

    # when a view starts and catches up
    changes = Changes()
    async with RoutingView(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, on_change=changes
    ) as view:
        await view.wait_ready(WAIT_S)

        # then it answers each account's highest-seq route and announced only accepted changes
        assert view.ready
        assert view.route("acct_a") == _route("acct_a", 3)
        assert view.route("acct_b") == _route("acct_b", 2, "blocked")
        assert view.route("acct_c") == _route("acct_c", 1, "subscription")
        assert view.route("acct_z") is None and view.route("acct_x") is None
        assert len(view) == 3
        assert changes.seqs() == {"acct_a": [1, 2, 3], "acct_b": [2], "acct_c": [1]}

        # and a change published after it was ready is announced and answered
        await _produce_routing(kafka_bootstrap, topic, [("acct_b", _route("acct_b", 3))])
        await changes.wait_for("acct_b", 3)
        assert view.route("acct_b") == _route("acct_b", 3)
        before_restart = dict(view.routes())

    # when the gateway restarts with a new view of the same topic
    async with RoutingView(kafka_bootstrap, topic_prefix=kafka_topic_prefix) as restarted:
        await restarted.wait_ready(WAIT_S)

        # then it rebuilt exactly the same routes
        assert dict(restarted.routes()) == before_restart
        assert before_restart["acct_b"] == _route("acct_b", 3)
