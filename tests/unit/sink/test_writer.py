"""The writer: explicit column types and token on insert, stored entries skipped, retries."""

from __future__ import annotations

from typing import Any

import pytest

from metering.sink.batch import dedup_token
from metering.sink.errors import BatchNotWritten
from metering.sink.metrics import SinkMetrics
from metering.sink.rows import COLUMN_NAMES, COLUMN_TYPES
from metering.sink.writer import Backoff, ClickHouseLedgerStore, LedgerWriter
from schemas.ledger import LedgerEntry
from tests.unit.sink.conftest import FakeClient


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (7, 6.4), (8, 10.0), (50, 10.0)],
)
def test_backoff_doubles_up_to_its_cap(failures: int, delay: float) -> None:
    assert Backoff(first_s=0.1, factor=2, max_s=10).delay(failures) == pytest.approx(delay)


def writer(client: FakeClient) -> tuple[LedgerWriter, SinkMetrics]:
    metrics = SinkMetrics()
    store = ClickHouseLedgerStore(client, "metering")  # type: ignore[arg-type]
    return LedgerWriter(store, metrics, Backoff(first_s=0.01)), metrics


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def never() -> bool:
    return False


async def test_insert_names_every_column_type_and_the_token(
    ledger_entries: list[LedgerEntry],
) -> None:
    client = FakeClient([])
    write, _ = writer(client)
    waits = Waits()

    token = await write.insert("t", {0: (0, 3)}, ledger_entries[:4], waits, never)

    assert token == dedup_token("t", {0: (0, 3)}, ledger_entries[:4])
    [call] = client.inserts
    assert call["table"] == "ledger" and call["database"] == "metering"
    assert call["column_names"] == list(COLUMN_NAMES)
    assert call["column_type_names"] == list(COLUMN_TYPES)  # no DESCRIBE per batch
    assert call["column_oriented"] is True
    assert call["settings"]["insert_deduplication_token"] == token
    assert call["settings"]["deduplicate_blocks_in_dependent_materialized_views"] == 1
    assert waits.seconds == []


async def test_stored_entries_are_left_out(ledger_entries: list[LedgerEntry]) -> None:
    client = FakeClient([], stored=[ledger_entries[0].entry_id, ledger_entries[2].entry_id])
    write, _ = writer(client)

    fresh = await write.unstored(ledger_entries[:4], Waits(), never)

    assert fresh == [ledger_entries[1], ledger_entries[3]]


async def test_nothing_to_look_up_asks_nothing() -> None:
    log: list[Any] = []
    write, _ = writer(FakeClient(log))
    assert await write.unstored([], Waits(), never) == []
    assert log == []


async def test_a_failed_insert_is_retried_with_the_same_rows_and_token(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given a store that refuses the first three inserts
    log: list[Any] = []
    client = FakeClient(log, fail_inserts=3)
    write, metrics = writer(client)
    waits = Waits()

    # when a batch is inserted
    token = await write.insert("t", {0: (0, 3)}, ledger_entries[:4], waits, never)

    # then three refused attempts and one that lands, all with one token and the same rows,
    # separated by growing waits
    assert [e[0] for e in log] == ["insert failed"] * 3 + ["insert"]
    assert {e[1] for e in log} == {token}
    assert waits.seconds == pytest.approx([0.01, 0.02, 0.04])
    assert metrics.value("retries_total") == 3
    assert client.stored == [e.entry_id for e in ledger_entries[:4]]


async def test_a_failed_lookup_is_retried_too(ledger_entries: list[LedgerEntry]) -> None:
    log: list[Any] = []
    write, _ = writer(FakeClient(log, fail_lookups=2))

    fresh = await write.unstored(ledger_entries[:2], Waits(), never)

    assert log == ["lookup failed", "lookup failed", "lookup"]
    assert fresh == ledger_entries[:2]


async def test_giving_up_raises_and_inserts_nothing(ledger_entries: list[LedgerEntry]) -> None:
    client = FakeClient([], fail_inserts=100)
    write, _ = writer(client)

    attempts = iter([False, False, True])
    with pytest.raises(BatchNotWritten, match=r"3 attempts; last: .*Connection refused"):
        await write.insert("t", {0: (0, 1)}, ledger_entries[:2], Waits(), lambda: next(attempts))
    assert client.inserts == []
