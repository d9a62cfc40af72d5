"""The sink's commit ordering, pinned by the order of recorded calls (flush steps 1-5).

Insert before commit, always; no commit while the insert fails; stop flushes, commits,
closes; poison is skipped and committed past; revoked partitions are not committed.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from metering.sink.consumer import LedgerSink, SinkConfig
from metering.sink.errors import BatchNotWritten
from metering.sink.metrics import SinkMetrics
from metering.sink.writer import Backoff, ClickHouseLedgerStore, LedgerWriter
from schemas.ledger import LedgerEntry
from tests.unit.sink.conftest import TOPIC, Clock, FakeClient, FakeConsumer, Record, encoded


def build(
    fetches: list[dict[int, list[Record]]],
    *,
    client: FakeClient | None = None,
    max_rows: int = 5,
    grace_s: float = 10.0,
) -> tuple[LedgerSink, FakeConsumer, FakeClient, list[Any]]:
    log: list[Any] = client.log if client is not None else []
    clock = Clock()
    consumer = FakeConsumer(log, clock, fetches=list(fetches))
    client = client or FakeClient(log)
    metrics = SinkMetrics()
    config = SinkConfig(
        topic=TOPIC,
        group_id="g",
        max_rows=max_rows,
        max_wait_s=0.2,
        shutdown_grace_s=grace_s,
        backoff=Backoff(first_s=0.05),
    )
    store = ClickHouseLedgerStore(client, "metering")  # type: ignore[arg-type]
    writer = LedgerWriter(store, metrics, config.backoff)
    sink = LedgerSink(consumer, writer, config, metrics, clock=clock, wall_clock=lambda: 1.7e9)
    consumer.when_idle = sink.stop  # the queue drained: stop (after any due flush)
    return sink, consumer, client, log


def records(partition: int, first: int, entries: list[LedgerEntry]) -> list[Record]:
    return [Record(partition, first + n, encoded(e)) for n, e in enumerate(entries)]


def names(log: list[Any]) -> list[str]:
    return [entry if isinstance(entry, str) else entry[0] for entry in log]


async def test_insert_then_commit_then_close(ledger_entries: list[LedgerEntry]) -> None:
    # given five entries on two partitions (a full batch)
    sink, _, client, log = build(
        [{0: records(0, 0, ledger_entries[:3])}, {1: records(1, 0, ledger_entries[3:5])}]
    )
    # when the sink runs until the topic is drained
    await sink.run()
    # then: look up, insert, commit the offsets after each partition's last record, close
    assert names(log) == ["start", "fetch", "fetch", "lookup", "insert", "commit", "stop"]
    assert log[-2] == ("commit", {0: 3, 1: 2})
    assert len(client.stored) == 5
    assert sink.metrics.value("rows_inserted_total") == 5
    assert sink.metrics.value("batches_total") == 1
    assert sink.metrics.value("lag_records", topic=TOPIC, partition="0") == 100 - 3


async def test_no_commit_while_the_insert_fails(ledger_entries: list[LedgerEntry]) -> None:
    # given ClickHouse refusing the first two inserts
    log: list[Any] = []
    sink, consumer, _, log = build(
        [{0: records(0, 0, ledger_entries[:5])}], client=FakeClient(log, fail_inserts=2)
    )
    # when the sink runs
    await sink.run()
    # then it pauses the partitions and keeps polling between attempts, commits only after
    # the insert that landed, and resumes
    assert names(log) == [
        "start",
        "fetch",
        "lookup",
        "insert failed",
        "pause",
        "poll paused",
        "insert failed",
        "pause",
        "poll paused",
        "insert",
        "commit",
        "resume",
        "stop",
    ]
    tokens = {entry[1] for entry in log if isinstance(entry, tuple) and "insert" in entry[0]}
    assert len(tokens) == 1  # every attempt sent the same token
    assert consumer.paused == set()
    assert sink.metrics.value("retries_total") == 2


async def test_stop_flushes_the_pending_batch_commits_and_closes(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given two records, far from a full batch, and a stop before the batch is due
    sink, consumer, client, log = build([{0: records(0, 10, ledger_entries[:2])}])
    consumer.idle_advances_clock = False
    # when the sink runs and is stopped
    await sink.run()
    # then the stop flushes them: insert, commit, then close
    assert names(log) == ["start", "fetch", "lookup", "insert", "commit", "stop"]
    assert log[-2] == ("commit", {0: 12})
    assert len(client.stored) == 2


async def test_a_stop_while_clickhouse_is_down_commits_nothing(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given ClickHouse refusing every insert and a short grace period
    log: list[Any] = []
    sink, consumer, _, log = build(
        [{0: records(0, 0, ledger_entries[:2])}],
        client=FakeClient(log, fail_inserts=10_000),
        grace_s=1.0,
    )
    consumer.idle_advances_clock = False
    # when the sink is stopped, it retries for the grace period, then gives up
    with pytest.raises(BatchNotWritten, match="not committed"):
        await sink.run()
    # then nothing was committed (the records are read again on the next start) and the
    # consumer was closed
    assert not any(n.startswith("commit") for n in names(log))
    assert log[-1] == "stop"


async def test_poison_is_counted_skipped_and_committed_past(
    ledger_entries: list[LedgerEntry],
) -> None:
    fetch = [*records(0, 0, ledger_entries[:2]), Record(0, 2, b"{not json")]
    fetch += records(0, 3, ledger_entries[2:4])
    sink, _, client, log = build([{0: fetch}])
    await sink.run()
    assert client.stored == [e.entry_id for e in ledger_entries[:4]]
    assert ("commit", {0: 5}) in log
    assert sink.metrics.value("poison_records_total") == 1


async def test_a_refused_commit_is_counted_and_the_sink_goes_on(
    ledger_entries: list[LedgerEntry],
) -> None:
    sink, consumer, client, log = build(
        [{0: records(0, 0, ledger_entries[:5])}, {0: records(0, 5, ledger_entries[5:10])}]
    )
    consumer.commit_error = CommitFailedError("rebalanced")
    await sink.run()
    assert names(log).count("commit refused") == 2
    assert len(client.stored) == 10
    assert sink.metrics.value("commit_failures_total") == 2


async def test_stored_entries_are_skipped_and_still_committed(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given a re-delivery: the first three entries are in ClickHouse already
    log: list[Any] = []
    client = FakeClient(log, stored=[e.entry_id for e in ledger_entries[:3]])
    sink, _, _, log = build([{0: records(0, 0, ledger_entries[:5])}], client=client)
    await sink.run()
    assert client.stored == [e.entry_id for e in ledger_entries[:5]]  # two new ones appended
    assert ("commit", {0: 5}) in log
    assert sink.metrics.value("duplicates_skipped_total") == 3
    assert sink.metrics.value("rows_inserted_total") == 2


async def test_revoked_partitions_are_neither_written_nor_committed(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given records of partitions 0 and 1, then partition 1 revoked before the flush
    sink, consumer, client, log = build(
        [{0: records(0, 0, ledger_entries[:2]), 1: records(1, 0, ledger_entries[2:4])}]
    )
    consumer.idle_advances_clock = False

    def revoke_then_stop() -> None:
        consumer.partitions = (0,)
        sink._revoked([TopicPartition(TOPIC, 1)])
        sink.stop()

    consumer.when_idle = revoke_then_stop
    await sink.run()
    assert client.stored == [e.entry_id for e in ledger_entries[:2]]
    assert ("commit", {0: 2}) in log


def test_the_flush_docstring_and_its_step_comments_agree() -> None:
    source = inspect.getsource(LedgerSink.flush)
    doc = inspect.getdoc(LedgerSink.flush) or ""
    listed = re.findall(r"^(\d+)\. ", doc, flags=re.MULTILINE)
    marked = re.findall(r"# Step (\d+)\.", source)
    assert listed == marked == ["1", "2", "3", "4", "5"]
