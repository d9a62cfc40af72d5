"""What the harness found, reproduced without any service: a bug fixed here stays fixed; a
strict xfail is one reported and not fixed yet (it then passes, and the marker must go)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiokafka.structs import TopicPartition

from billing.catalog import load_catalog
from billing.engine import Engine
from billing.source import Source
from metering.sink.consumer import LedgerSink, SinkConfig
from metering.sink.metrics import SinkMetrics
from metering.sink.writer import ClickHouseLedgerStore, LedgerWriter
from schemas.ledger import LedgerEntry
from tests.factories import at, encode, request, started, topic_for
from tests.unit.billing.conftest import run_scenario
from tests.unit.sink.conftest import TOPIC, Clock, FakeClient, FakeConsumer, Record, encoded

HEAVY = {"input_tokens": 400_000, "output_tokens": 100_000}


def charges(reset_ticked_before_stragglers: bool) -> dict[str, LedgerEntry]:
    """A ZenMux Pro 5h window crossed at 09:20:05; then, read hours later, a straggler that
    completed at 09:15 and a request that started at 09:17 — with or without the window's
    reset (14:00) ticked first, as a live worker's wall-clock timer does when it lags."""
    engine = Engine(load_catalog(), accounts={}, seen={}, discounts={})
    first = [started(), *(request(start=at(m), request_id=f"r{m}", **HEAVY) for m in range(0, 60, 10))]  # fmt: skip
    later = [
        request(start=at(5), duration=timedelta(minutes=10), request_id="straggler", **HEAVY),
        request(start=at(17), request_id="after"),
    ]
    found: dict[str, LedgerEntry] = {}

    def feed(values: list[dict[str, object]], offset: int, hours: int) -> None:
        for number, value in enumerate(values, start=offset):
            source = Source(topic_for(value), 0, number, at(hours=hours))
            for item in engine.process(source, encode(value)).emitted:
                if isinstance(item.value, LedgerEntry):
                    found[item.value.request_id] = item.value

    feed(first, 0, hours=3)
    if reset_ticked_before_stragglers:
        deadline = engine.deadline("acct_1")
        assert deadline == at(hours=5)
        engine.tick("acct_1", deadline)
    feed(later, 100, hours=6)
    return found


def test_the_ledger_does_not_depend_on_when_a_reset_is_ticked() -> None:
    assert charges(reset_ticked_before_stragglers=False) == charges(
        reset_ticked_before_stragglers=True
    )


class RebalancingConsumer(FakeConsumer):
    """aiokafka's ``highwater`` asserts that the partition is assigned."""

    def highwater(self, partition: TopicPartition) -> int | None:
        assert partition in self.assignment(), "Partition is not assigned"
        return 100


class RevokingClient(FakeClient):
    """The group rebalances while the insert runs: partition 1 moves to another consumer."""

    consumer: RebalancingConsumer | None = None

    def insert(self, table: str, data: Any, **kwargs: Any) -> None:
        super().insert(table, data, **kwargs)
        assert self.consumer is not None
        self.consumer.partitions = (0,)


async def test_a_partition_revoked_during_an_insert_does_not_crash_the_sink() -> None:
    """Seen in the sink-rebalance scenario (full mode): the lag gauge asked aiokafka for the
    high watermark of a partition revoked mid-flush, and the sink died on an AssertionError
    after committing (the sink process exited 1, its last batch's metrics unrecorded)."""
    values = [started(), *(request(start=at(n)) for n in range(4))]
    ledger_entries = run_scenario(values).ledger
    log: list[Any] = []
    clock = Clock()
    fetch = {
        p: [Record(p, n, encoded(e)) for n, e in enumerate(ledger_entries[p::2][:2])]
        for p in (0, 1)
    }
    consumer = RebalancingConsumer(log, clock, fetches=[fetch])
    client = RevokingClient(log)
    client.consumer = consumer
    config = SinkConfig(topic=TOPIC, group_id="g", max_rows=4, max_wait_s=0.2)
    metrics = SinkMetrics()
    writer = LedgerWriter(ClickHouseLedgerStore(client, "metering"), metrics, config.backoff)  # type: ignore[arg-type]
    sink = LedgerSink(consumer, writer, config, metrics, clock=clock, wall_clock=lambda: 1.7e9)
    consumer.when_idle = sink.stop
    await sink.run()
    assert len(client.stored) == 4
    assert ("commit", {0: 2}) in log  # the revoked partition is left to its new owner
    assert metrics.value("lag_records", topic=TOPIC, partition="0") == 98


class TimedConsumer(FakeConsumer):
    """Records how long each poll may wait."""

    waits: list[int]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Any:
        self.waits.append(timeout_ms)
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)


async def test_a_sink_holding_a_long_batch_stops_within_a_poll_not_a_batch_window() -> None:
    """Seen in the graceful-shutdown scenario: a sink with a one-hour batch window, asked to
    stop while idle, sat in a one-hour poll until SIGKILL (its batch never written)."""
    entries = run_scenario([started(), *(request(start=at(n)) for n in range(2))]).ledger
    log: list[Any] = []
    clock = Clock()
    fetch = {0: [Record(0, n, encoded(e)) for n, e in enumerate(entries)]}
    consumer = TimedConsumer(log, clock, fetches=[fetch])
    consumer.waits = []
    client = FakeClient(log)
    config = SinkConfig(topic=TOPIC, group_id="g", max_rows=1000, max_wait_s=3600)
    metrics = SinkMetrics()
    writer = LedgerWriter(ClickHouseLedgerStore(client, "metering"), metrics, config.backoff)  # type: ignore[arg-type]
    sink = LedgerSink(consumer, writer, config, metrics, clock=clock, wall_clock=lambda: 1.7e9)
    consumer.when_idle = sink.stop
    await sink.run()
    assert len(client.stored) == 2  # flushed at the stop
    assert max(consumer.waits) <= 500  # a stop is noticed within half a second
