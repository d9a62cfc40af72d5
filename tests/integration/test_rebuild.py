"""``metering rebuild`` on real parts (Kafka broker, ClickHouse engine): a ledger the sink
wrote comes back identical after its tables are dropped; an interrupted rebuild resumes and
ends identical to an uninterrupted one; the count check catches a ledger emptied behind the
checkpoint's back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from metering.rebuild import CountMismatch, LedgerTopic, Rebuilt, SourceMissing, Tally, rebuild
from metering.rebuild.checkpoint import Checkpoint
from metering.sink.consumer import SinkConfig
from metering.sink.writer import ClickHouseLedgerStore
from metering.warehouse import migrate
from metering.warehouse.queries import run_query
from metering.warehouse.teardown import ledger_objects
from schemas import topics
from tests.integration.ledger_pipeline import (
    GroupOffsets,
    billed_ledger,
    create_topic,
    entry_records,
    publish,
    running_sink,
    wait_until,
)
from tests.integration.test_analyst_queries import QUERY_PARAMETERS

pytestmark = pytest.mark.integration

ROLLUPS = ("usage_hourly", "cost_daily", "discount_savings_daily")
CHUNK = 16  # the scenario's ~130 entries in ~10 chunks: room to interrupt in the middle


class Interrupted(Exception):
    """Raised by a test to stop a rebuild at a chosen point, as a crash would."""


@pytest.fixture
def new_database(clickhouse_client: Client) -> Iterator[Callable[[], str]]:
    """Extra empty databases for one test (compared against each other), dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"test_rebuild_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield make
    for name in made:
        clickhouse_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture
async def ledger_topic(kafka_bootstrap: str, kafka_topic_prefix: str) -> AsyncIterator[str]:
    """The prefixed ledger topic holding the billed scenario as the worker would write it, plus
    what at-least-once delivery adds: re-emitted copies and one record that is no entry."""
    topic = kafka_topic_prefix + topics.LEDGER
    entries = billed_ledger()
    await create_topic(kafka_bootstrap, topic)
    await publish(kafka_bootstrap, topic, entry_records(entries))
    await publish(kafka_bootstrap, topic, entry_records(entries[:5]))  # re-emissions
    await publish(kafka_bootstrap, topic, [(entries[0].account_id, b'{"not": "an entry"}')])
    yield topic


def snapshot(client: Client, database: str) -> dict[str, Any]:
    """Everything an analyst can read: ledger rows, every query of the pack, every rollup."""
    found: dict[str, Any] = {
        "ledger": ClickHouseLedgerStore(client, database).entries(),
        "rows": client.query(f"SELECT count() FROM {database}.ledger").result_rows[0][0],
    }
    for name, parameters in sorted(QUERY_PARAMETERS.items()):
        found[name] = run_query(client, name, db=database, **parameters)
    for table in ROLLUPS:  # FINAL sums rows of equal keys: the rollup as if fully merged
        found[table] = client.query(
            f"SELECT * FROM {database}.{table} FINAL ORDER BY ALL"
        ).result_rows
    return found


async def rebuilt(
    client: Client,
    database: str,
    bootstrap: str,
    prefix: str,
    on_chunk: Callable[[Tally], None] | None = None,
    fresh: bool = False,
) -> Rebuilt:
    return await rebuild(
        client,
        database,
        LedgerTopic(bootstrap, prefix, max_records=CHUNK),
        fresh=fresh,
        chunk_size=CHUNK,
        on_chunk=on_chunk,
    )


def distinct_entries() -> int:
    return len({e.entry_id for e in billed_ledger()})


async def test_a_rebuild_after_dropping_the_tables_restores_what_analysts_read(
    clickhouse_client: Client,
    clickhouse_database: str,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
) -> None:
    # given the ledger and rollups the sink wrote from the topic, and what analysts read there
    db = clickhouse_database
    migrate(clickhouse_client, database=db)
    group = SinkConfig.for_prefix(kafka_topic_prefix).group_id
    async with (
        GroupOffsets(kafka_bootstrap, ledger_topic, group) as offsets,
        running_sink(kafka_bootstrap, kafka_topic_prefix, clickhouse_client, db),
    ):
        await wait_until(offsets.caught_up, "the sink to write the topic")
    before = snapshot(clickhouse_client, db)
    assert len(before["ledger"]) == distinct_entries()

    # when the ledger, its views and rollups are dropped and rebuilt from the topic
    result = await rebuilt(clickhouse_client, db, kafka_bootstrap, kafka_topic_prefix, fresh=True)

    # then every table came back and reads exactly as before, each entry stored once
    assert result.dropped is not None
    assert set(result.dropped.names) == {"ledger", *ROLLUPS, *(f"{t}_mv" for t in ROLLUPS)}
    assert set(ledger_objects(clickhouse_client, db).names) == set(result.dropped.names)
    assert snapshot(clickhouse_client, db) == before
    assert (result.entries, result.stored) == (distinct_entries(), distinct_entries())
    assert result.tally.inserted == distinct_entries()
    assert (result.tally.skipped, result.tally.poison) == (5, 1)  # the re-emissions, the bad one


async def test_an_interrupted_rebuild_resumes_and_ends_identical_to_an_uninterrupted_one(
    clickhouse_client: Client,
    new_database: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given one database rebuilt in a single run
    whole, pieces = new_database(), new_database()
    await rebuilt(clickhouse_client, whole, kafka_bootstrap, kafka_topic_prefix)

    # when another is rebuilt by a run stopped after its third chunk ...
    def stop_after_three(tally: Tally) -> None:
        if tally.chunks == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        await rebuilt(
            clickhouse_client, pieces, kafka_bootstrap, kafka_topic_prefix, stop_after_three
        )
    stored_first = clickhouse_client.query(f"SELECT count() FROM {pieces}.ledger").result_rows[0][0]
    # ... then by a run that crashes after inserting a chunk but before saving its checkpoint
    saves: list[int] = []
    save = Checkpoint.save

    def crash_on_second_save(self: Checkpoint, offsets: Any) -> None:
        saves.append(1)
        if len(saves) == 2:
            raise Interrupted
        save(self, offsets)

    monkeypatch.setattr(Checkpoint, "save", crash_on_second_save)
    with pytest.raises(Interrupted):
        await rebuilt(clickhouse_client, pieces, kafka_bootstrap, kafka_topic_prefix)
    monkeypatch.undo()
    stored_second = clickhouse_client.query(f"SELECT count() FROM {pieces}.ledger").result_rows[0][
        0
    ]
    # ... and finally by a run left to finish
    last = await rebuilt(clickhouse_client, pieces, kafka_bootstrap, kafka_topic_prefix)

    # then each run continued where the one before stopped, ...
    assert 0 < stored_first < stored_second < distinct_entries()
    assert last.tally.resumed > 0  # records the first two runs checkpointed: not written again
    assert last.tally.inserted == distinct_entries() - stored_second
    assert last.tally.skipped >= CHUNK  # the chunk inserted but not checkpointed: found stored
    # ... and the pieces add up to exactly the whole: rows, queries and rollups
    assert snapshot(clickhouse_client, pieces) == snapshot(clickhouse_client, whole)
    # and a rebuild with nothing left to do changes nothing
    again = await rebuilt(clickhouse_client, pieces, kafka_bootstrap, kafka_topic_prefix)
    assert (again.tally.inserted, again.tally.chunks) == (0, 0)
    assert snapshot(clickhouse_client, pieces) == snapshot(clickhouse_client, whole)


async def test_the_count_check_fails_when_the_ledger_lost_rows_behind_the_checkpoint(
    clickhouse_client: Client,
    clickhouse_database: str,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
) -> None:
    # given a finished rebuild whose ledger is then emptied by hand (checkpoint kept)
    db = clickhouse_database
    await rebuilt(clickhouse_client, db, kafka_bootstrap, kafka_topic_prefix)
    clickhouse_client.command(f"TRUNCATE TABLE {db}.ledger")

    # when it is rebuilt without --fresh, it fails naming both counts and the way out
    with pytest.raises(CountMismatch) as failure:
        await rebuilt(clickhouse_client, db, kafka_bootstrap, kafka_topic_prefix)
    message = str(failure.value)
    assert f"holds 0 distinct entries, {ledger_topic} gave {distinct_entries()}" in message
    assert "--fresh" in message and "\n" not in message

    # and --fresh brings it back
    result = await rebuilt(clickhouse_client, db, kafka_bootstrap, kafka_topic_prefix, fresh=True)
    assert result.stored == distinct_entries()


async def test_each_chunk_is_looked_up_then_inserted_then_checkpointed(
    clickhouse_client: Client,
    clickhouse_database: str,
    kafka_bootstrap: str,
    kafka_topic_prefix: str,
    ledger_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the store's and the checkpoint's calls recorded (and still made)
    calls: list[str] = []

    def record(cls: type, name: str, label: str) -> None:
        real = getattr(cls, name)

        def spy(self: Any, *args: Any) -> Any:
            calls.append(label)
            return real(self, *args)

        monkeypatch.setattr(cls, name, spy)

    record(ClickHouseLedgerStore, "stored_entry_ids", "lookup")
    record(ClickHouseLedgerStore, "insert", "insert")
    record(Checkpoint, "save", "checkpoint")

    # when the topic is rebuilt
    result = await rebuilt(
        clickhouse_client, clickhouse_database, kafka_bootstrap, kafka_topic_prefix
    )

    # then every chunk ran the steps in order — look up, insert (unless all was stored),
    # checkpoint — so a checkpoint never runs ahead of its insert
    steps = [part.split() for part in " ".join(calls).split("checkpoint")]
    assert steps[-1] == [] and len(steps) - 1 == result.tally.chunks > 1
    assert all(step in (["lookup", "insert"], ["lookup"]) for step in steps[:-1])
    assert steps.count(["lookup", "insert"]) >= result.tally.chunks - 1


async def test_a_fresh_rebuild_from_a_missing_topic_refuses_before_dropping_anything(
    clickhouse_client: Client, clickhouse_database: str, kafka_bootstrap: str
) -> None:
    # given a stored ledger
    db = clickhouse_database
    migrate(clickhouse_client, database=db)
    ClickHouseLedgerStore(clickhouse_client, db).insert(list(billed_ledger()), token="stored")
    # when a fresh rebuild names a topic that does not exist (a wrong prefix)
    with pytest.raises(SourceMissing, match=r"topic nowhere-metering\.ledger does not exist"):
        await rebuilt(clickhouse_client, db, kafka_bootstrap, "nowhere-", fresh=True)
    # then nothing was dropped
    assert len(ClickHouseLedgerStore(clickhouse_client, db).entries()) == distinct_entries()
