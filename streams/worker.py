"""The billing worker: the engine bound to Faust tables, its agents and its tick timer.

Per input record, in this order (the argument is in streams/README.md):
0. Continuity: a record at or below its partition's stored position was applied before:
   drop it; a record beyond ``position + 1`` means the consumer skipped records: re-read
   them from the broker and apply them first (``streams.continuity``).
1. Decode; a record already applied to its account (its offset is at or below the one stored
   with the account) was fully processed before a crash: skip it.
2. Fold it with the engine; table writes are only buffered.
3. Publish every output and wait until the broker acknowledged all of them.
4. Save the buffered writes: idempotency records first, then the account (with the offset),
   then the partition's position.
5. Schedule the account's next reset or term end for the tick timer.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from datetime import UTC, datetime
from typing import Any

from billing.catalog.model import Catalog
from billing.engine import Decoded, Engine, Result
from billing.outputs import Emitted
from billing.policy import Policy
from billing.source import Source
from schemas.ticks import Tick
from streams.codecs import decode_seen, decode_timeline, encode_seen, encode_timeline
from streams.continuity import InputMessage, Positions, RangeReader, Reader
from streams.metrics import WorkerMetrics
from streams.stores import AccountTable, StagedTable
from streams.topology import Topology

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1
"""How often the timer looks for due resets: the worst-case lateness of a restore it adds."""


class BillingWorker:
    """Registers the agents and the timer on ``topology.app``."""

    def __init__(
        self,
        topology: Topology,
        catalog: Catalog,
        policy: Policy | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.topology = topology
        self.positions = Positions(topology.positions)
        self.reader = reader or RangeReader(topology.bootstrap_servers)
        self.accounts = AccountTable(topology.accounts)
        self.seen = StagedTable(topology.seen, encode_seen, decode_seen)
        self.discounts = StagedTable(topology.discount_table, encode_timeline, decode_timeline)
        self.engine = Engine(
            catalog,
            accounts=self.accounts,
            seen=self.seen,
            discounts=self.discounts,
            policy=policy,
        )
        self.deadlines: list[tuple[datetime, str]] = []
        self.metrics = WorkerMetrics()
        # Both agents share the engine and its staged stores: one record at a time, or one
        # agent's save or discard would take the other's buffered writes with it.
        self.one_at_a_time = asyncio.Lock()
        app = topology.app
        app.agent(topology.inputs, name="bill", concurrency=1)(self.bill)
        app.agent(topology.discounts, name="discounts", concurrency=1)(self.discount)
        app.timer(interval=TICK_INTERVAL_S)(self.tick)
        topology.accounts.on_recover(self.rebuild_deadlines)

    async def bill(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    async def discount(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    async def handle(self, message: InputMessage) -> None:
        """Steps 0-5 of the module docstring for one Kafka message, one message at a time."""
        async with self.one_at_a_time:
            # Step 0.
            topic, partition = message.topic, message.partition
            expected = self.positions.expected(topic, partition)
            if expected is not None and message.offset < expected:
                return
            if expected is not None and message.offset > expected:
                missing = await self.reader.read(topic, partition, expected, message.offset)
                self.metrics.reread.inc(len(missing))
                log.warning(
                    "the consumer skipped offsets %d-%d of %s[%d]: re-read %d records",
                    expected, message.offset - 1, topic, partition, len(missing),
                )  # fmt: skip
                for record in missing:
                    await self._handle(record)
            await self._handle(message)

    async def _handle(self, message: InputMessage) -> None:
        topic = self.topology.unprefixed(message.topic)
        received = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
        source = Source(topic, message.partition, message.offset, received)
        key = message.key.decode("utf-8", errors="replace") if message.key else None
        self.forget()  # what the timer read between records may be stale now
        try:
            # Step 1.
            decoded = self.engine.decode(source, message.value or b"", key)
            account = decoded.account_id if isinstance(decoded, Decoded) else None
            if account is not None and self.accounts.applied(account, topic) >= message.offset:
                self.positions.complete(message.topic, message.partition, message.offset)
                return
            # Step 2.
            self.accounts.position = (topic, message.offset)
            result = decoded if isinstance(decoded, Result) else self.engine.apply(decoded)
            # Step 3.
            await self.publish(result.emitted)
            # Step 4.
            self.seen.save()
            self.discounts.save()
            self.accounts.save()
            self.positions.complete(message.topic, message.partition, message.offset)
        finally:
            # A record interrupted before step 4 (a send error, a cancelled task during a
            # rebalance) must leave nothing buffered: saved with the next record, its state
            # would mark it applied although its outputs were never acknowledged.
            self.forget()
        self.metrics.observe(topic, result)
        # Step 5.
        if account is not None:
            self.schedule(account)

    def forget(self) -> None:
        """Drop buffered writes and cached reads of every store."""
        for store in (self.seen, self.discounts, self.accounts):
            store.discard()

    async def publish(self, emitted: list[Emitted]) -> None:
        pending = []
        for item in emitted:
            topic = self.topology.outputs[item.topic]
            value = item.value.model_dump_json().encode()
            pending.append(await topic.send(key=item.key.encode(), value=value))
        for delivery in pending:
            await delivery

    def schedule(self, account_id: str) -> None:
        deadline = self.engine.deadline(account_id)
        if deadline is not None:
            heapq.heappush(self.deadlines, (deadline, account_id))

    async def tick(self) -> None:
        """Publish a tick for every account whose reset or term end is due by the wall clock."""
        now = datetime.now(UTC)
        while self.deadlines and self.deadlines[0][0] <= now:
            due, account_id = heapq.heappop(self.deadlines)
            if self.engine.deadline(account_id) != due:
                continue
            tick = Tick(schema_version=1, account_id=account_id, at=due)
            await self.topology.ticks.send(
                key=account_id.encode(), value=tick.model_dump_json().encode()
            )

    async def rebuild_deadlines(self) -> None:
        """After a recovery, the timer must know every local account's next deadline."""
        self.deadlines = []
        for account_id in list(self.topology.accounts.keys()):
            self.schedule(account_id)
        log.info("tick schedule rebuilt for %d accounts", len(self.deadlines))
