"""The worker's per-batch order, pinned: every output of a batch acknowledged before any
state is saved; idempotency records before the accounts, the partitions' positions last, each
key once per batch; a record already applied is skipped; records the consumer skipped are
re-read and applied first, in order; an interrupted batch leaves nothing saved or buffered."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

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

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key: bytes, value: bytes) -> Any:
        calls.append(f"send {self.name}")
        return Acknowledgement(self.name)


class RecordingProducer:
    """The app's producer: a send goes through the output topic's (patchable) ``send``."""

    def __init__(self, outputs: dict[str, RecordingTopic]) -> None:
        self.outputs = outputs

    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> Any:
        return await self.outputs[topic].send(key, value)

    async def flush(self) -> None:
        """Waiting until the broker holds every table write sent so far."""
        calls.append("flush")


class Acknowledgement:
    """What a send returns: awaiting it is waiting for the broker's acknowledgement."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def __await__(self) -> Iterator[None]:
        calls.append(f"ack {self.topic}")
        return iter(())


class FaustConsumer:
    """Faust's commit bookkeeping: committed offset, acknowledged offsets and gaps per partition."""

    def __init__(self) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self._acked: dict[Any, list[int]] = defaultdict(list)
        self._acked_index: dict[Any, set[int]] = defaultdict(set)
        self._gap: dict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._n_acked = 0
        self.gaps: list[tuple[Any, int, int]] = []
        self.ends: dict[tuple[str, int], int] = {}

    def highwater(self, tp: Any) -> int:
        """The end of a partition as last fetched: a test's, or nothing beyond what it hands
        over (0: caught up)."""
        return self.ends.get((tp.topic, tp.partition), 0)

    def assignment(self) -> set[TP]:
        return {TP(topics.REQUESTS, partition) for partition in range(4)}

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


class Signal:
    def connect(self, receiver: Any) -> None:
        pass


class FakeApp:
    def __init__(self, outputs: dict[str, RecordingTopic]) -> None:
        self.producer = RecordingProducer(outputs)
        self.consumer = FaustConsumer()
        self.on_before_shutdown = Signal()

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

    @property
    def message(self) -> Message:
        """A test record is its own event (Faust's ``Event`` wraps the ``Message``)."""
        return self


def as_record(message: Message) -> InputRecord:
    """``message`` as a read from the broker returns it."""
    return InputRecord(
        message.topic, message.partition, message.offset, None, message.key, message.value
    )


class LogReader:
    """The partition as the broker holds it: what a re-read returns."""

    def __init__(self) -> None:
        self.log: list[InputRecord] = []
        self.reads: list[tuple[str, int, int, int]] = []
        self.deleted_before: dict[tuple[str, int], int] = {}

    def append(self, message: Message) -> Message:
        self.log.append(as_record(message))
        return message

    async def read(self, topic: str, partition: int, start: int, stop: int) -> list[InputRecord]:
        self.reads.append((topic, partition, start, stop))
        return [
            r for r in self.log
            if (r.topic, r.partition) == (topic, partition) and start <= r.offset < stop
        ]  # fmt: skip

    async def log_starts(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Nothing deleted, unless a test says so."""
        return {tp: self.deleted_before.get(tp, 0) for tp in partitions}


class DiscountFeed:
    """``catalog.discounts`` as the broker holds it: what the discount fence reads."""

    def __init__(self) -> None:
        self.log: list[InputRecord] = []
        self.read_once = asyncio.Event()

    def append(self, message: Message) -> Message:
        self.log.append(as_record(message))
        return message

    async def end_offsets(self) -> dict[int, int]:
        return {0: len(self.log)}

    async def read(self, partition: int, start: int, stop: int) -> list[InputRecord]:
        self.read_once.set()
        return self.log[start:stop]

    async def stop(self) -> None:
        pass


def worker(reader: LogReader | None = None, feed: DiscountFeed | None = None) -> BillingWorker:
    outputs = {name: RecordingTopic(name) for name in topics.OUTPUT_TOPICS}
    topology = Topology(
        app=FakeApp(outputs),  # type: ignore[arg-type]
        inputs=None,
        discounts=None,
        outputs=outputs,
        ticks=RecordingTopic(topics.TICKS),
        accounts=RecordingTable("accounts"),
        seen=RecordingTable("seen"),
        discount_table=RecordingTable("discounts"),
        positions=RecordingTable("positions"),
        prefix="",
        bootstrap_servers="unused:9092",
    )
    return BillingWorker(
        topology, load_catalog(), reader=reader or LogReader(), feed=feed or DiscountFeed()
    )


def test_outputs_are_acknowledged_before_state_is_saved() -> None:
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    calls.clear()
    asyncio.run(billing.handle([Message(topics.REQUESTS, 0, encode(request(start=at(1))))]))
    assert calls == [
        "send metering.ledger",
        "ack metering.ledger",
        "save seen",
        "save accounts",
        "flush",
        "save positions",
        "flush",
    ]


def test_a_record_already_applied_to_its_account_is_skipped() -> None:
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chat = Message(topics.REQUESTS, 5, encode(request(start=at(1))))
    asyncio.run(billing.handle([chat]))
    calls.clear()
    asyncio.run(billing.handle([chat]))
    assert calls == []
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 5


def test_a_record_interrupted_before_its_outputs_are_acknowledged_leaves_no_state() -> None:
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    ledger = billing.topology.outputs[topics.LEDGER]

    async def failing_send(key: bytes, value: bytes) -> Any:
        raise asyncio.CancelledError

    ledger.send = failing_send  # type: ignore[method-assign]
    chat = Message(topics.REQUESTS, 1, encode(request(start=at(1))))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(billing.handle([chat]))
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == -1
    assert not billing.accounts.pending and not billing.seen.pending
    # the re-delivered record is applied in full
    del ledger.send
    calls.clear()
    asyncio.run(billing.handle([chat]))
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
            billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))])
        )
        await asyncio.sleep(0)  # the subscription is now awaiting its acknowledgement
        discount_change = discount("z-ai/glm-4.7", "high", at(0))
        change = asyncio.create_task(
            billing.handle([Message(topics.DISCOUNTS, 0, encode(discount_change), key=b"z")])
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
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chats = [
        reader.append(Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}"))))
        for n in range(5)
    ]
    asyncio.run(billing.handle([chats[0]]))
    calls.clear()

    # when offset 4 arrives after offset 0
    asyncio.run(billing.handle([chats[4]]))

    # then offsets 1-3 were read from the broker and charged before it, in order
    assert reader.reads == [(topics.REQUESTS, 0, 1, 4)]
    assert calls.count("ack metering.ledger") == 4
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 4
    assert billing.positions.expected(topics.REQUESTS, 0) == 5
    assert billing.metrics.reread._value.get() == 3


def test_a_record_at_or_below_its_partitions_position_is_dropped() -> None:
    # given two requests applied in order
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(2)
    ]
    for chat in chats:
        asyncio.run(billing.handle([chat]))
    calls.clear()

    # when the consumer delivers the first one again (a seek back after a rebalance)
    asyncio.run(billing.handle([chats[0]]))

    # then nothing is sent or saved
    assert calls == []


def test_a_batch_waits_for_all_its_acknowledgements_then_saves_each_key_once() -> None:
    # given a subscribed account
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    calls.clear()
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(3)
    ]

    # when three of its requests arrive in one batch
    asyncio.run(billing.handle(chats))

    # then every output is sent, then all are acknowledged, then the state is saved: one
    # idempotency record per request, the account once, the partition's position once
    assert calls == [
        *["send metering.ledger"] * 3,
        *["ack metering.ledger"] * 3,
        *["save seen"] * 3,
        "save accounts",
        "flush",  # the broker holds the accounts before any position says they were applied
        "save positions",
        "flush",  # and the positions before Faust may commit the batch's input offsets
    ]
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 2
    assert billing.positions.expected(topics.REQUESTS, 0) == 3


def test_each_account_stores_the_offset_of_the_last_record_applied_to_it() -> None:
    # given two subscribed accounts on one partition
    billing = worker()
    subscriptions = [
        Message(topics.SUBSCRIPTIONS, n, encode(started(account)), key=account.encode())
        for n, account in enumerate(("acct_1", "acct_2"))
    ]
    asyncio.run(billing.handle(subscriptions))

    # when one batch holds requests of both, interleaved
    batch = [
        Message(topics.REQUESTS, n, encode(request(account, start=at(n), request_id=f"r{n}")),
                key=account.encode())
        for n, account in enumerate(("acct_1", "acct_2", "acct_1", "acct_2", "acct_2"))
    ]  # fmt: skip
    asyncio.run(billing.handle(batch))

    # then each account is marked with its own last offset
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 2
    assert billing.accounts.applied("acct_2", topics.REQUESTS) == 4
    assert billing.accounts.applied("acct_2", topics.SUBSCRIPTIONS) == 1


def test_a_batch_interrupted_before_its_acknowledgements_saves_nothing() -> None:
    # given a subscribed account whose second request's output cannot be sent
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    ledger = billing.topology.outputs[topics.LEDGER]
    original = ledger.send
    sent = 0

    async def second_send_fails(key: bytes, value: bytes) -> Any:
        nonlocal sent
        sent += 1
        if sent == 2:
            raise asyncio.CancelledError
        return await original(key, value)

    ledger.send = second_send_fails  # type: ignore[method-assign]
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(3)
    ]
    calls.clear()

    # when the batch is interrupted
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(billing.handle(chats))

    # then nothing was saved and nothing is left buffered, not even the first record's state
    assert not [c for c in calls if c.startswith("save")]
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == -1
    assert billing.positions.expected(topics.REQUESTS, 0) is None
    assert not (billing.accounts.pending or billing.seen.pending or billing.positions.pending)

    # and the re-delivered batch is applied in full
    del ledger.send
    calls.clear()
    asyncio.run(billing.handle(chats))
    assert calls.count("ack metering.ledger") == 3
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 2


def test_a_record_delivered_twice_in_one_batch_is_applied_once() -> None:
    # given a subscribed account
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(2)
    ]
    calls.clear()

    # when the consumer delivers offsets 0, 1, 0, 1 in one batch (a seek back mid-batch)
    asyncio.run(billing.handle([*chats, *chats]))

    # then each is charged once
    assert calls.count("send metering.ledger") == 2


def test_a_failed_batch_is_retried_until_it_is_applied() -> None:
    # given a subscribed account whose next output fails once (a broker error, say)
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    ledger = billing.topology.outputs[topics.LEDGER]
    original = ledger.send
    failures = 1

    async def fails_once(key: bytes, value: bytes) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("broker unavailable")
        return await original(key, value)

    ledger.send = fails_once  # type: ignore[method-assign]
    chats = [Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
             for n in range(2)]  # fmt: skip
    calls.clear()

    # when the agent hands the batch over
    asyncio.run(billing.handle_until_done(chats))

    # then the second attempt applied it in full (Faust acknowledges it afterwards)
    assert calls.count("ack metering.ledger") == 2
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 1


def test_a_record_found_applied_after_a_crash_saves_its_writes_again_unchanged() -> None:
    # given a charged request whose position never reached the store (killed during step 4)
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chat = Message(topics.REQUESTS, 5, encode(request(start=at(1))))
    asyncio.run(billing.handle([chat]))
    stored = {name: dict(getattr(billing.topology, name)) for name in ("accounts", "seen")}
    billing.topology.positions.clear()
    calls.clear()

    # when it is delivered again
    asyncio.run(billing.handle([chat]))

    # then nothing is sent, but its account and idempotency record are written again, as
    # they were (the local store may hold writes whose changelog records were lost)
    assert calls == ["save seen", "save accounts", "flush", "save positions", "flush"]
    assert {name: dict(getattr(billing.topology, name)) for name in stored} == stored
    assert billing.accounts.applied("acct_1", topics.REQUESTS) == 5


def test_a_repeated_discount_is_written_again() -> None:
    # given a discount applied, whose position was lost
    billing = worker()
    change = Message(topics.DISCOUNTS, 0, encode(discount("openai/gpt-5.2", "surplus", at(0))))
    asyncio.run(billing.handle([change]))
    billing.topology.positions.clear()
    calls.clear()

    # when it is delivered again, then its timeline is saved again (a duplicate changes nothing)
    asyncio.run(billing.handle([change]))
    assert calls == ["save discounts", "flush", "save positions", "flush"]


def test_offsets_faust_skipped_after_a_rebalance_do_not_stop_its_commits() -> None:
    # given a partition applied up to offset 9, and Faust's last commit at offset 4
    billing = worker()
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chats = [
        Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}")))
        for n in range(12)
    ]
    asyncio.run(billing.handle(chats[:10]))
    consumer = billing.topology.app.consumer
    tp = (topics.REQUESTS, 0)
    consumer._committed_offset[tp] = 4

    # when Faust, after a rebalance, resumes the partition at offset 10 (never delivering 4-9)
    asyncio.run(billing.handle([chats[10]]))

    # then offsets 4-9 are declared a gap, so Faust can commit past them
    assert consumer.gaps == [(tp, 4, 9)]

    # and while Faust holds acknowledgements not yet committed, nothing more is declared
    consumer._acked[tp] = [10]
    asyncio.run(billing.handle([chats[11]]))
    assert consumer.gaps == [(tp, 4, 9)]


def subscribed_with_chats_in_the_log(count: int) -> tuple[BillingWorker, LogReader, list[Message]]:
    """A worker that applied ``acct_1``'s ``started``, and ``count`` chats of it on the broker
    (requests[0], offsets 0 up), none handed over yet."""
    reader = LogReader()
    billing = worker(reader)
    asyncio.run(billing.handle([Message(topics.SUBSCRIPTIONS, 0, encode(started()))]))
    chats = [
        reader.append(Message(topics.REQUESTS, n, encode(request(start=at(n), request_id=f"r{n}"))))
        for n in range(count)
    ]  # fmt: skip
    return billing, reader, chats


def test_records_faust_acknowledged_but_the_worker_forgot_do_not_stop_its_commits() -> None:
    # given a partition applied up to offset 3; Faust handed over 4 and 5 and acknowledged
    # them, but the worker only held them and forgot them when the partition moved away
    # (streams.input_order), and Faust's last commit is at offset 4
    billing, reader, chats = subscribed_with_chats_in_the_log(11)
    asyncio.run(billing.handle(chats[:4]))
    consumer = billing.topology.app.consumer
    tp = (topics.REQUESTS, 0)
    consumer._committed_offset[tp] = 4
    consumer._acked[tp] = [4, 5]

    # when Faust, back on the partition, resumes at offset 10 (it counts 4-9 as read)
    asyncio.run(billing.handle([chats[10]]))

    # then 4-9 are re-read, and the offsets among them Faust did not acknowledge are a gap
    assert reader.reads == [(topics.REQUESTS, 0, 4, 10)]
    assert consumer.gaps == [(tp, 6, 9)]


def test_a_batch_of_consecutive_records_of_an_unordered_topic_re_reads_nothing() -> None:
    reader = LogReader()
    billing = worker(reader)
    changes = [
        reader.append(
            Message(topics.DISCOUNTS, n, encode(discount("z-ai/glm-4.7", "high", at(n))), b"z")
        )
        for n in range(4)
    ]
    asyncio.run(billing.handle(changes[:1]))

    asyncio.run(billing.handle(changes[1:]))

    assert reader.reads == []
    assert billing.positions.expected(topics.DISCOUNTS, 0) == 4


def test_a_partition_never_applied_is_due_from_its_log_start() -> None:
    # given a worker killed while it held the first records of a partition (none applied, so
    # no position), and Faust, which had committed past them, resuming after them
    billing, reader, chats = subscribed_with_chats_in_the_log(4)

    asyncio.run(billing.handle([chats[3]]))

    # then the records before it are read from the log start and applied first
    assert reader.reads == [(topics.REQUESTS, 0, 0, 3)]
    assert billing.positions.expected(topics.REQUESTS, 0) == 4
