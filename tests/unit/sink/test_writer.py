"""The writer: explicit column types and token on insert, stored entries skipped, retries."""

from __future__ import annotations

from typing import Any

import pytest

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


async def test_insert_names_every_column_type_and_the_token(
    ledger_entries: list[LedgerEntry],
) -> None:
    log: list[Any] = []
    client = FakeClient(log)
    write, _ = writer(client)
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    written = await write.write("t", {0: (0, 3)}, ledger_entries[:4], wait, lambda: False)

    assert written.inserted == 4 and written.skipped == 0
    [call] = client.inserts
    assert call["table"] == "ledger" and call["database"] == "metering"
    assert call["column_names"] == list(COLUMN_NAMES)
    assert call["column_type_names"] == list(COLUMN_TYPES)  # no DESCRIBE per batch
    assert call["column_oriented"] is True
    assert call["settings"]["insert_deduplication_token"] == written.token
    assert call["settings"]["deduplicate_blocks_in_dependent_materialized_views"] == 1
    assert waits == []


async def test_stored_entries_are_not_inserted_again(ledger_entries: list[LedgerEntry]) -> None:
    log: list[Any] = []
    client = FakeClient(log, stored=[ledger_entries[0].entry_id, ledger_entries[2].entry_id])
    write, _ = writer(client)

    async def wait(seconds: float) -> None:
        raise AssertionError("no wait expected")

    written = await write.write("t", {0: (0, 3)}, ledger_entries[:4], wait, lambda: False)

    assert (written.inserted, written.skipped) == (2, 2)
    inserted = client.inserts[0]["data"][COLUMN_NAMES.index("entry_id")]
    assert inserted == [ledger_entries[1].entry_id, ledger_entries[3].entry_id]


async def test_all_stored_means_no_insert(ledger_entries: list[LedgerEntry]) -> None:
    client = FakeClient([], stored=[e.entry_id for e in ledger_entries[:2]])
    write, _ = writer(client)

    async def wait(seconds: float) -> None:
        raise AssertionError("no wait expected")

    written = await write.write("t", {0: (0, 1)}, ledger_entries[:2], wait, lambda: False)
    assert (written.inserted, written.skipped, written.token) == (0, 2, None)
    assert client.inserts == []


async def test_a_failed_insert_is_retried_with_the_same_rows_and_token(
    ledger_entries: list[LedgerEntry],
) -> None:
    # given a store that refuses the first three inserts
    log: list[Any] = []
    client = FakeClient(log, fail_inserts=3)
    write, metrics = writer(client)
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    # when a batch is written
    written = await write.write("t", {0: (0, 3)}, ledger_entries[:4], wait, lambda: False)

    # then one lookup, three refused inserts and one that lands, all with one token,
    # separated by growing waits
    tokens = [entry[1] for entry in log if isinstance(entry, tuple)]
    assert log[0] == "lookup"
    assert [e[0] for e in log[1:]] == ["insert failed"] * 3 + ["insert"]
    assert set(tokens) == {written.token}
    assert waits == pytest.approx([0.01, 0.02, 0.04])
    assert metrics.value("retries_total") == 3
    assert written.inserted == 4


async def test_a_failed_lookup_is_retried_too(ledger_entries: list[LedgerEntry]) -> None:
    log: list[Any] = []
    client = FakeClient(log, fail_lookups=2)
    write, _ = writer(client)

    async def wait(seconds: float) -> None:
        return None

    await write.write("t", {0: (0, 1)}, ledger_entries[:2], wait, lambda: False)
    assert [e if isinstance(e, str) else e[0] for e in log] == [
        "lookup failed",
        "lookup failed",
        "lookup",
        "insert",
    ]


async def test_giving_up_raises_and_inserts_nothing(ledger_entries: list[LedgerEntry]) -> None:
    client = FakeClient([], fail_inserts=100)
    write, _ = writer(client)

    async def wait(seconds: float) -> None:
        return None

    attempts = iter([False, False, True])
    with pytest.raises(BatchNotWritten, match=r"3 attempts; last: .*Connection refused"):
        await write.write("t", {0: (0, 1)}, ledger_entries[:2], wait, lambda: next(attempts))
    assert client.inserts == []
