"""Shared by the ledger integration tests: a billed scenario, Kafka publishing, a running sink,
and the analyst query files.

The ledger entries come from the real billing core (``run_scenario``), so ClickHouse holds what
the worker would write: ZenMux windows exhausted with and without a fallback key, payg by
choice, Lilac discounts in several supply states, a refund, and a month boundary.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import cache
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import TopicPartition
from clickhouse_connect.driver.client import Client

from billing.charging import charge_entry_id
from metering.demo.stack import ledger_sink
from metering.sink.consumer import SinkConfig, kafka_consumer
from metering.warehouse import migrate
from schemas import topics
from schemas.ledger import LedgerEntry
from tests.factories import adjustment, at, discount, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario

PARTITIONS = 3
WAIT_S = 90.0

ZEN = "acct_zen"  # ZenMux Pro with a fallback key: exhausts a 5h window, then payg_fallback
LEAK = "acct_leak"  # ZenMux Pro without fallback: exhausts, then unfunded leakage
LIL = "acct_lil"  # Lilac Basic: discounts low / medium / surplus, a refund, a month boundary
IMAGE_MODEL = "nanobanana/nanobanana-pro"


def scenario() -> list[dict[str, Any]]:
    """The input log (subscriptions, discounts, requests, an adjustment), in log order."""
    log: list[dict[str, Any]] = [
        started(ZEN, family="zenmux", plan="pro"),
        lifecycle(
            "fallback_configured", ZEN, when=at(-30), enabled=True, fallback_key_id="key_payg"
        ),
        started(LEAK, family="zenmux", plan="pro"),
        started(LIL, family="lilac", plan="basic", paid="10"),
        discount("z-ai/glm-4.7", "surplus", at(-20)),
        discount("anthropic/claude-sonnet-4.5", "medium", at(-20)),
    ]
    # ≈1.56 Flow per image: the 50-Flow 5h window of both ZenMux accounts exhausts at ~32.
    for n in range(40):
        channel = "studio" if n % 3 == 0 else "api"
        for account in (ZEN, LEAK):
            log.append(
                request(
                    account,
                    start=at(n * 3),
                    model=IMAGE_MODEL,
                    images=1,
                    input_tokens=200,
                    output_tokens=0,
                    channel=channel,
                )
            )
    # ZenMux chats in the next 5h window, and payg by choice.
    for n in range(12):
        log.append(
            request(ZEN, start=at(hours=6, minutes=n * 5), channel="studio" if n % 2 else "api")
        )
    for n in range(4):
        log.append(
            request(
                ZEN, start=at(hours=7, minutes=n), mode="payg", model="anthropic/claude-sonnet-4.5"
            )
        )
    # Lilac: three supply states (glm surplus 0.25x, sonnet medium 0.75x, gpt-5.2 low 1.00x).
    for n in range(24):
        model = ("z-ai/glm-4.7", "anthropic/claude-sonnet-4.5", "openai/gpt-5.2")[n % 3]
        log.append(request(LIL, start=at(n * 7), model=model, request_id=f"lil_{n}"))
    log.append(discount("z-ai/glm-4.7", "high", at(hours=5)))
    for n in range(6):
        log.append(request(LIL, start=at(hours=5, minutes=n + 1), model="z-ai/glm-4.7"))
    # Across the month boundary (the period runs Nov 2 08:00 → Dec 2 08:00): two partitions.
    log.append(request(LIL, start=at(days=28, hours=14), model="openai/gpt-5.2"))
    log.append(
        request(LIL, start=at(days=29, hours=1), model="openai/gpt-5.2", request_id="lil_dec")
    )
    # A refund of part of one Lilac charge.
    log.append(adjustment(charge_entry_id(LIL, "lil_1"), "0.001", account=LIL, when=at(hours=9)))
    return log


@cache
def billed_ledger() -> tuple[LedgerEntry, ...]:
    """The scenario's ledger entries, as the billing core emits them (no dead letters)."""
    run = run_scenario(scenario())
    assert not run.dead, [d.reason for d in run.dead]
    return tuple(run.ledger)


def total(entries: Iterable[LedgerEntry], field: str) -> Decimal:
    return sum((getattr(e, field) for e in entries), Decimal(0))


async def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, values: Iterable[tuple[str, bytes]]) -> int:
    """Send ``(key, value)`` records keyed like the worker (by account); returns how many."""
    count = 0
    async with AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1 << 20,
        key_serializer=str.encode,
    ) as producer:
        pending = []
        for key, value in values:
            pending.append(await producer.send(topic, value, key=key))
            count += 1
        await asyncio.gather(*pending)
    return count


def entry_records(entries: Iterable[LedgerEntry]) -> list[tuple[str, bytes]]:
    return [(e.account_id, e.model_dump_json().encode()) for e in entries]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S
) -> float:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``. Returns seconds."""
    started_at = time.perf_counter()
    deadline = started_at + timeout_s
    while not await condition():
        if time.perf_counter() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)  # poll interval, not a wait for an outcome
    return time.perf_counter() - started_at


class GroupOffsets:
    """The committed offsets of a consumer group against the topic's end offsets."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic, self.group = topic, group
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.probe = kafka_consumer(bootstrap, SinkConfig(topic=topic, group_id=f"{group}-probe"))

    async def __aenter__(self) -> GroupOffsets:
        await self.admin.start()
        await self.probe.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.probe.stop()
        await self.admin.close()

    async def committed(self) -> dict[int, int]:
        try:
            offsets = await self.admin.list_consumer_group_offsets(self.group)
        except GroupCoordinatorNotAvailableError:
            return {}  # a fresh broker creates its offsets topic on the first group: not yet
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic}

    async def ends(self) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await self.probe.end_offsets(tps)).items()}

    async def caught_up(self) -> bool:
        ends = await self.ends()
        committed = await self.committed()
        return all(committed.get(p, 0) == end for p, end in ends.items() if end > 0)


running_sink = ledger_sink
"""The sink in a task of the test process (owner of the test's chDB store)."""


@asynccontextmanager
async def sink_filled_database(bootstrap: str, client: Client, label: str) -> AsyncIterator[str]:
    """A fresh database whose ledger the sink filled, through Kafka, with the billed scenario
    (``billed_ledger``); dropped on exit. ``label`` names the database and topic prefix."""
    name = f"test_{label}_{uuid.uuid4().hex[:12]}"
    prefix = f"t-{label.replace('_', '-')}-{uuid.uuid4().hex[:8]}-"
    topic = f"{prefix}{topics.LEDGER}"
    migrate(client, database=name)
    try:
        await create_topic(bootstrap, topic)
        await publish(bootstrap, topic, entry_records(billed_ledger()))
        group = SinkConfig.for_prefix(prefix).group_id
        async with (
            GroupOffsets(bootstrap, topic, group) as offsets,
            running_sink(bootstrap, prefix, client, name),
        ):
            await wait_until(offsets.caught_up, "the sink to write the scenario")
        yield name
    finally:
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
