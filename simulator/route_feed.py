"""The gateway's view of ``metering.routing``: the compacted topic tailed in the background, the
latest record per account (by ``seq``) kept for ``RoutingGate`` lookups.

On entry the feed reads the topic up to its current end before returning, so routes published
before the run are known to its first request; after that it lags the worker by however long
a record takes to arrive — the lag the gate counts as leakage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from metering.errors import ServiceUnavailable
from metering.kafka_security import client_options
from schemas import topics
from schemas.routing import RoutingState

log = logging.getLogger(__name__)

CATCH_UP_S = 60.0


class RouteFeed:
    """``route(account_id)``: the newest routing state read so far, or None."""

    def __init__(self) -> None:
        self.states: dict[str, RoutingState] = {}
        self.skipped = 0

    def route(self, account_id: str) -> RoutingState | None:
        return self.states.get(account_id)

    def take(self, value: bytes | None) -> None:
        """Keep one record if it is newer than what the account has (compaction may replay)."""
        try:
            state = RoutingState.model_validate_json(value or b"")
        except ValidationError:
            self.skipped += 1
            return
        known = self.states.get(state.account_id)
        if known is None or state.seq >= known.seq:
            self.states[state.account_id] = state


@contextlib.asynccontextmanager
async def kafka_route_feed(bootstrap_servers: str, topic_prefix: str) -> AsyncIterator[RouteFeed]:
    """A ``RouteFeed`` over ``<prefix>metering.routing``, caught up with the topic's end."""
    topic = topic_prefix + topics.ROUTING
    feed = RouteFeed()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,  # no group: every partition is assigned at start, read from the start
        auto_offset_reset="earliest",
        **client_options(),  # METERING_KAFKA_* of this process
    )
    try:
        await consumer.start()
        partitions = list(consumer.assignment())
        if not partitions:
            raise ServiceUnavailable(f"topic {topic} does not exist: the worker creates it")
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(CATCH_UP_S):
            while await _behind(consumer, ends):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        feed.take(record.value)
    except ServiceUnavailable:
        await consumer.stop()
        raise
    except (KafkaError, TimeoutError) as exc:
        await consumer.stop()
        raise ServiceUnavailable(
            f"kafka at {bootstrap_servers}: cannot read {topic}: {type(exc).__name__}: {exc}"
        ) from exc

    async def tail() -> None:
        async for record in consumer:
            feed.take(record.value)

    task = asyncio.create_task(tail())
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await task
        await consumer.stop()
        if feed.skipped:
            log.warning("skipped %d routing records that are not RoutingState", feed.skipped)


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False
