"""The billing worker: the engine bound to Faust tables, its agents and its tick timer.

Records come in batches (``stream.take_events``: up to ``BATCH_MAX`` records, or whatever
arrived within ``BATCH_WITHIN_S``). Per batch, in this order (the argument is in
streams/README.md):
0. Continuity, per record: a record at or below its partition's position (stored, reached
   earlier in this batch, or held) was delivered before: drop it; a record beyond
   ``position + 1`` means the consumer skipped records: re-read them from the broker and
   take them first (``streams.continuity``). Then order: requests, subscription events and
   adjustments are held per partition and released in publication order
   (``streams.input_order``); held records of earlier batches go with this one.
1. Decode; a record already applied to its account (its offset is at or below the one stored
   with the account, or applied earlier in this batch) was fully processed before: skip it,
   but save its writes again (``save_again``: a crash can leave them in the local store only).
2. Fold it with the engine; table writes are only buffered. Send its outputs at once (the
   producer batches them) without waiting for the broker.
3. After the last record: wait until the broker acknowledged every output of the batch.
4. Save the buffered writes: idempotency records first, then the accounts (each with the
   offsets of the last records applied to it); wait until the broker holds them; then each
   partition's position, and wait for that too (before Faust can commit the batch).
5. Schedule the touched accounts' next reset or term end for the tick timer.
A batch interrupted before step 4 leaves nothing buffered: none of its state is saved.

Step 0 sees a skipped range only when a later record of the partition arrives. Faust can skip
the *last* records of a partition across a rebalance (the subscriptions published before a
deployment, say), and nothing may come after them: ``catch_up`` looks every ``STUCK_S`` for a
partition behind its end that delivered nothing meanwhile and seeks Faust's consumer back to
the partition's position, so Faust delivers those records again (anything delivered twice is
dropped by step 0). A quiet partition applied to its end whose Faust commit stopped short
(rebalances in a row) gets its applied position acknowledged for Faust to commit.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from billing.catalog.model import Catalog
from billing.discounts import DiscountTimeline
from billing.engine import Decoded, Engine, Result
from billing.outputs import Emitted
from billing.policy import Policy
from billing.source import Source
from schemas import topics
from schemas.discounts import DiscountChange
from schemas.ticks import Tick
from streams.codecs import decode_seen, decode_timeline, encode_seen, encode_timeline
from streams.continuity import (
    InputEvent,
    InputMessage,
    InputRecord,
    Positions,
    RangeReader,
    Reader,
    release_applied,
    release_reread,
    release_skipped,
)
from streams.discount_fence import DiscountFence, Feed, TopicFeed
from streams.input_order import Held, InputOrder
from streams.metrics import WorkerMetrics, input_lag
from streams.scope import applying
from streams.stores import AccountTable, StagedTable
from streams.topology import Topology

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1
"""How often the timer looks for due resets: the worst-case lateness of a restore it adds."""
BATCH_MAX = 1000
"""Most records folded before their outputs' acknowledgements are awaited and state saved."""
BATCH_WITHIN_S = 0.005
"""How long a batch waits for more records: the latency batching adds when traffic is light."""
RETRY_MAX_S = 5.0
"""Longest wait between two attempts at a failed batch (0.1 s, doubling)."""
STUCK_S = 5.0
"""A partition behind its end that delivered no record for this long is fetched again."""
SEEK_TIMEOUT_S = 2.0
"""Longest wait for Faust's consumer thread to carry out one catch-up seek."""
HOLD_MAX_S = 15.0
"""Longest a partition's records wait for one of its topics to be delivered (then they go
out of order, counted): longer than a catch-up (``STUCK_S``) takes to fetch it again."""
RELEASE_INTERVAL_S = 0.1
"""How often held records are looked at when no batch arrives."""
ORDERED_TOPICS = (topics.SUBSCRIPTIONS, topics.REQUESTS, topics.ADJUSTMENTS)
"""The inputs folded in publication order (ticks only move time: they are never held)."""


class BillingWorker:
    """Registers the agents and the timer on ``topology.app``."""

    def __init__(
        self,
        topology: Topology,
        catalog: Catalog,
        policy: Policy | None = None,
        reader: Reader | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.topology = topology
        self.positions = Positions(topology.positions)
        self.reader = reader or RangeReader(topology.bootstrap_servers, topology.security)
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
        self.clock = time.monotonic
        self.delivered: dict[tuple[str, int], float] = {}
        """When each input partition last delivered a record, or was first seen behind."""
        self.metrics = WorkerMetrics()
        self.metrics.watch(  # read at each scrape of /metrics
            lag=lambda: input_lag(topology.app.consumer, self.consumed, self.positions.expected),
            next_deadline=lambda: self.deadlines[0][0] if self.deadlines else None,
        )
        # Both agents share the engine and its staged stores: one batch at a time, or one
        # agent's save or discard would take the other's buffered writes with it.
        self.one_at_a_time = asyncio.Lock()
        self.requests_topic = topology.prefix + topics.REQUESTS
        self.log_starts: dict[tuple[str, int], int] = {}
        """Where ordered partitions this worker never applied begin (``caught_up``)."""
        self.order = InputOrder(
            [topology.prefix + name for name in ORDERED_TOPICS],
            rank=lambda topic: topics.SAME_INSTANT_ORDER.index(topology.unprefixed(topic)),
            hold_max_s=HOLD_MAX_S,
        )
        self.metrics.held.set_function(self.order.held)
        self.feed = feed or TopicFeed(
            topology.prefix + topics.DISCOUNTS, topology.bootstrap_servers, topology.security
        )
        self.fence = DiscountFence(
            self.feed,
            self.change_of,
            self.unapplied,
            on_wait=self.metrics.discount_wait.observe,
            on_give_up=self.metrics.discount_gave_up.inc,
        )
        app = topology.app
        app.on_before_shutdown.connect(self.close_feed)
        app.agent(topology.inputs, name="bill", concurrency=1)(self.bill)
        app.agent(topology.discounts, name="discounts", concurrency=1)(self.discount)
        app.timer(interval=TICK_INTERVAL_S)(self.tick)
        app.timer(interval=STUCK_S)(self.catch_up)
        app.timer(interval=RELEASE_INTERVAL_S)(self.release_held)
        topology.accounts.on_recover(self.rebuild_deadlines)

    async def bill(self, stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            fenced = any(event.message.topic == self.requests_topic for event in events)
            await self.handle_until_done(events, fenced=fenced)

    async def discount(self, stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await self.handle_until_done(events)

    async def handle_until_done(self, events: Sequence[InputEvent], fenced: bool = False) -> None:
        """``handle`` the batch, retrying it (with backoff) until it succeeds.

        Faust's ``take_events`` acknowledges a batch's input offsets when the agent's body
        for it ends, failed or not: a batch that raised and was left to Faust's agent
        restart would be committed unapplied. A failed attempt leaves nothing buffered, so a
        retry re-applies the batch to unchanged state (identical outputs). A billing worker
        stalls, logging, rather than skip input (cf. ``continuity.READ_TIMEOUT_S``).
        A ``fenced`` batch (it holds requests) first waits for the discount changes published
        before it (``streams.discount_fence``), outside the lock the ``discounts`` agent needs.
        """
        failures = 0
        while True:
            try:
                if fenced:
                    await self.fence.cross()
                await self.handle(events)
                return
            except Exception:
                failures += 1
                delay = min(RETRY_MAX_S, 0.1 * 2 ** (failures - 1))
                log.exception(
                    "a batch of %d records failed (attempt %d): retrying it in %.1f s",
                    len(events), failures, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)

    async def release_held(self) -> None:
        """The timer's look at held records: a topic they wait for may be caught up now."""
        if self.order.held():
            await self.handle_until_done([])

    async def handle(self, events: Sequence[InputEvent]) -> None:
        """Steps 0-5 of the module docstring for one batch of Kafka records, in order."""
        async with self.one_at_a_time:
            self.forget()  # what the timer read between batches may be stale now
            folded: list[tuple[str, str | None, Result]] = []
            deliveries: list[Awaitable[Any]] = []
            now = self.clock()
            ready: list[Held] = []
            taken: dict[tuple[str, int], int] = {}  # past the records of ``ready``, per partition
            try:
                for event in events:  # Step 0.
                    self.delivered[event.message.topic, event.message.partition] = now
                    with applying(event):
                        for record in await self.continuous(event.message, taken):
                            if record.topic in self.order.topics:
                                self.order.add(event, record)
                            else:
                                ready.append((event, record))
                                taken[record.topic, record.partition] = record.offset + 1
                await self.learn_log_starts(
                    (topic, partition)
                    for partition in self.order.partitions
                    for topic in self.order.topics
                    if self.positions.expected(topic, partition) is None
                )
                ready += self.released(now)
                for event, record in ready:
                    # Each record is applied, and its writes later saved, in its partition.
                    for store in (self.seen, self.discounts, self.accounts, self.positions):
                        store.event = event
                    with applying(event):
                        outcome = await self.fold(record, deliveries)  # Steps 1-2.
                        if outcome is not None:
                            folded.append(outcome)
                # Step 3.
                for delivery in deliveries:
                    await delivery
                # Step 4.
                if self.seen.pending or self.discounts.pending or self.accounts.pending:
                    self.seen.save()
                    self.discounts.save()
                    self.accounts.save()
                    await self.durable()  # no position may be durable before its accounts
                if self.positions.pending:
                    self.positions.save()
                    await self.durable()  # nor the offset Faust commits before the position
                # Step 5 (from the states just saved, still in the account store's cache).
                for account in {account for _, account, _ in folded if account is not None}:
                    self.schedule(account)
            except BaseException:
                self.order.put_back([held for held in ready if held[1].topic in self.order.topics])
                raise
            finally:
                # A batch interrupted before step 4 (a send error, a cancelled task during a
                # rebalance) must leave nothing buffered: saved with the next batch, its state
                # would mark it applied although its outputs were never acknowledged.
                self.forget()
            for topic, _, result in folded:
                self.metrics.observe(topic, result)

    async def learn_log_starts(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Ask the broker once where each of ``partitions`` (never applied here) begins.

        Without a position, a partition counts from there. Continuity: Faust commits past
        records the worker holds, and a worker killed while holding a partition's first
        records restarts past them (the kill -9 chaos run charged later requests first, on
        accounts without their windows). Order: a topic whose records retention deleted
        before this worker read any would look behind its end for ever."""
        unknown = [tp for tp in partitions if tp not in self.log_starts]
        if unknown:
            self.log_starts.update(await self.reader.log_starts(unknown))

    def released(self, now: float) -> list[Held]:
        """Step 0, order: the held records that may be folded now, partition by partition.

        A partition no longer assigned is forgotten (its new owner reads from its position);
        a record its partition's position passed meanwhile is dropped."""
        assigned = self.assigned()
        applied: dict[tuple[str, int], int] = {}  # positions, read once per call

        def position(topic: str, partition: int) -> int:
            if (topic, partition) not in applied:
                expected = self.positions.expected(topic, partition)
                start = self.log_starts.get((topic, partition), 0)
                applied[topic, partition] = start if expected is None else expected
            return applied[topic, partition]

        def caught_up(topic: str, partition: int, given: int | None) -> bool:
            high = self.topology.app.consumer.highwater(TP(topic, partition))
            if high is None:
                return False  # not fetched yet: unknown, not empty
            return max(position(topic, partition), given or 0) >= high

        ready: list[Held] = []
        for partition in self.order.partitions:
            if assigned is not None and partition not in assigned:
                self.order.drop(partition)
                continue
            released = self.order.release(partition, caught_up, now)
            if released.forced:
                self.metrics.order_forced.inc(released.forced)
                log.warning(
                    "partition %d: %d records folded out of publication order, after waiting "
                    "%.0f s for a topic behind its end", partition, released.forced, HOLD_MAX_S,
                )  # fmt: skip
            ready += [
                (event, record)
                for event, record in released.records
                if record.offset >= position(record.topic, partition)
            ]
        return ready

    def assigned(self) -> set[int] | None:
        """The input partitions this worker owns; None while that is unknown."""
        try:
            assignment = self.topology.app.consumer.assignment()
        except ConsumerNotStarted:
            return None
        return {tp.partition for tp in assignment if tp.topic in self.order.topics}

    async def continuous(
        self, message: InputMessage, taken: dict[tuple[str, int], int]
    ) -> Sequence[InputMessage]:
        """Step 0: what to take for ``message``, in order: nothing if its partition is past
        it; the records the consumer skipped before it, then itself; or just itself.
        Past means past what is applied, held, or ``taken`` earlier in this batch."""
        topic, partition = message.topic, message.partition
        known = (
            self.positions.expected(topic, partition),
            self.order.received(topic, partition),
            taken.get((topic, partition)),
        )
        found = [offset for offset in known if offset is not None]
        if not found:  # never applied here: everything from its log start is due
            await self.learn_log_starts([(topic, partition)])
        expected = max(found) if found else self.log_starts[topic, partition]
        if message.offset < expected:
            return []
        # every record before this one is (or will now be) applied
        await release_skipped(self.topology.app.consumer, topic, partition, message.offset)
        if message.offset > expected:
            missing = await self.reader.read(topic, partition, expected, message.offset)
            await release_reread(
                self.topology.app.consumer, topic, partition, expected, message.offset
            )
            self.metrics.reread.inc(len(missing))
            log.warning(
                "the consumer skipped offsets %d-%d of %s[%d]: re-read %d records",
                expected, message.offset - 1, topic, partition, len(missing),
            )  # fmt: skip
            return [*missing, message]
        return [message]

    async def fold(
        self, message: InputMessage, deliveries: list[Awaitable[Any]]
    ) -> tuple[str, str | None, Result] | None:
        """Steps 1-2 for one record: (topic, account, result), or None if it was applied."""
        topic = self.topology.unprefixed(message.topic)
        received = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
        source = Source(topic, message.partition, message.offset, received)
        key = message.key.decode("utf-8", errors="replace") if message.key else None
        # Step 1.
        decoded = self.engine.decode(source, message.value or b"", key)
        account = decoded.account_id if isinstance(decoded, Decoded) else None
        if (
            isinstance(decoded, Decoded)
            and account is not None
            and self.accounts.applied(account, topic) >= message.offset
        ):
            self.save_again(decoded)
            self.positions.complete(message.topic, message.partition, message.offset)
            return None
        # Step 2.
        self.accounts.position = (topic, message.offset)
        if isinstance(decoded, Result):
            result = decoded
        else:
            result = self.engine.apply(decoded)
            if result.duplicate:
                self.save_again(decoded)
        deliveries += await self.publish(result.emitted)
        self.positions.complete(message.topic, message.partition, message.offset)
        return topic, account, result

    def save_again(self, decoded: Decoded) -> None:
        """Write again what applying ``decoded`` wrote, as it is stored now.

        A record found already applied (step 1) or a duplicate is what a re-delivery after a
        crash looks like. Faust writes a table value to the local RocksDB at once and sends it
        to the changelog later, so a ``kill -9`` in between leaves the local store ahead of the
        changelog: the restarted worker is right, but whoever recovers the partition from the
        changelog (a takeover, a wiped disk) would get the older value. Saving it again with
        this batch sends it to the changelog. Costs nothing when no record repeats.
        """
        keys = self.engine.written_keys(decoded)
        if keys.account is not None and keys.account in self.accounts:
            self.accounts.save_again(keys.account)
        for key in keys.seen:
            if key in self.seen:
                self.seen[key] = self.seen[key]
        if keys.discount is not None and keys.discount in self.discounts:
            self.discounts[keys.discount] = self.discounts[keys.discount]

    def change_of(self, record: InputRecord) -> DiscountChange | None:
        """The discount change in ``record``; None if refused (dead-lettered by the agent,
        never in the table)."""
        source = Source(topics.DISCOUNTS, record.partition, record.offset)
        decoded = self.engine.decode(source, record.value or b"")
        if not isinstance(decoded, Decoded) or not isinstance(decoded.record, DiscountChange):
            return None
        return decoded.record

    def unapplied(self, change: DiscountChange) -> bool:
        """Whether ``change`` is yet to reach this worker's table (False: the engine would
        refuse it against the table, or finds it there already)."""
        raw = self.topology.discount_table.get(change.model)
        timeline = DiscountTimeline() if raw is None else decode_timeline(raw)
        return isinstance(self.engine.discount_update(change, timeline), DiscountTimeline)

    async def close_feed(self, app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Faust's ``on_before_shutdown`` receiver: stop the fence's consumer."""
        await self.feed.stop()

    def forget(self) -> None:
        """Drop buffered writes and cached reads of every store."""
        for store in (self.seen, self.discounts, self.accounts, self.positions):
            store.discard()
            store.event = None

    async def durable(self) -> None:
        """Wait until the broker holds every table write saved so far.

        Faust sends changelog records in the background, each topic-partition on its own, and
        commits input offsets without waiting for them. Unwaited, a ``kill -9`` could leave a
        batch's position in its changelog but not the accounts it applied: on restart the
        continuity step dropped those records as applied, and the windows missed charges the
        ledger holds (the fault harness's kill test found it).
        """
        await self.topology.app.producer.flush()

    async def publish(self, emitted: list[Emitted]) -> list[Awaitable[Any]]:
        """Send each output (the producer batches them); their acknowledgements, to await.

        Straight to the app's producer (aiokafka underneath): ``Topic.send`` would wrap every
        record in Faust's future-message machinery, a fifth of the fold's time when profiled.
        """
        producer = self.topology.app.producer
        pending = []
        for item in emitted:
            topic = self.topology.outputs[item.topic].get_topic_name()
            value = item.value.__pydantic_serializer__.to_json(item.value)
            pending.append(await producer.send(topic, item.key.encode(), value, None, None, None))
        return pending

    def schedule(self, account_id: str) -> None:
        deadline = self.engine.deadline(account_id)
        if deadline is not None:
            heapq.heappush(self.deadlines, (deadline, account_id))

    @property
    def consumed(self) -> set[str]:
        """The input topics whose records the worker applies (and tracks the positions of)."""
        return {*self.topology.inputs.topics, *self.topology.discounts.topics}

    async def catch_up(self) -> None:
        """Seek Faust back to the position of each owned partition that is behind its end
        and delivered nothing for ``STUCK_S`` (module docstring); let Faust commit such a
        quiet partition that is applied to its end (``continuity.release_applied``).

        Not under ``one_at_a_time``: a seek goes through Faust's consumer thread, which during
        a rebalance waits for the agents to drain, and an agent waiting for that lock would
        never drain. Each seek is bounded by ``SEEK_TIMEOUT_S``; a failed one is tried again
        at a later look (the partition may have moved to another worker meanwhile)."""
        consumer = self.topology.app.consumer
        now = self.clock()
        try:
            lag = input_lag(consumer, self.consumed, self.positions.expected)
        except Exception as exc:  # the assignment moved meanwhile (another thread's)
            log.warning("catch-up skipped: %s: %s", type(exc).__name__, exc)
            return
        for (topic, partition), behind in lag.items():
            since = self.delivered.setdefault((topic, partition), now)
            if now - since < STUCK_S:
                continue
            if not behind:
                applied = self.positions.expected(topic, partition)
                if applied is not None and self.order.received(topic, partition) is None:
                    await release_applied(consumer, topic, partition, applied)
                continue
            start = self.positions.expected(topic, partition) or 0
            log.warning(
                "%s[%d] is %d records behind its end and delivered none for %.0f s: "
                "fetching again from offset %d", topic, partition, behind, now - since, start,
            )  # fmt: skip
            self.delivered[topic, partition] = now  # the next look gives it time
            try:
                await asyncio.wait_for(consumer.seek(TP(topic, partition), start), SEEK_TIMEOUT_S)
            except Exception as exc:  # revoked meanwhile, or the consumer is busy rebalancing
                log.warning("catch-up of %s[%d] failed: %s: %s", topic, partition,
                            type(exc).__name__, exc)  # fmt: skip
                continue
            self.metrics.refetched.inc()

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
        self.deadlines = list(self.accounts.deadlines())
        heapq.heapify(self.deadlines)
        log.info("tick schedule rebuilt for %d accounts", len(self.deadlines))
