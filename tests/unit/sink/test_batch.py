"""Batching rules (size, time), commit offsets, in-batch duplicates and the dedup token."""

from __future__ import annotations

import pytest

from metering.sink.batch import Batch, Received, dedup_token
from schemas.ledger import LedgerEntry


def received(partition: int, offset: int, entry: LedgerEntry | None, ts: int = 0) -> Received:
    return Received(partition, offset, ts, entry)


@pytest.mark.parametrize(
    ("rows", "opened", "now", "ready"),
    [
        (0, None, 5.0, False),  # empty: never due
        (1, 0.0, 0.1, False),  # one row, 100 ms old
        (1, 0.0, 0.2, True),  # one row, 200 ms old: due by time
        (3, 0.0, 0.0, True),  # full: due by size at once
        (2, 0.0, 0.19, False),
    ],
)
def test_ready_by_size_or_time(
    ledger_entries: list[LedgerEntry], rows: int, opened: float | None, now: float, ready: bool
) -> None:
    batch = Batch("t")
    if opened is not None:
        batch.add([received(0, n, ledger_entries[n]) for n in range(rows)], opened)
    assert batch.ready(now, max_rows=3, max_wait_s=0.2) is ready


def test_commit_offsets_cover_poison_and_every_partition(ledger_entries: list[LedgerEntry]) -> None:
    # given records of two partitions, one of them poison
    batch = Batch("t")
    batch.add(
        [
            received(0, 7, ledger_entries[0]),
            received(1, 3, None),
            received(0, 8, ledger_entries[1]),
            received(1, 4, ledger_entries[2]),
        ],
        now=0.0,
    )
    # then the batch commits past its last record on each partition, the poison one included
    assert batch.ranges() == {0: (7, 8), 1: (3, 4)}
    assert batch.commit_offsets() == {0: 9, 1: 5}
    assert [r.offset for r in batch.poison] == [3]
    assert batch.entries() == ledger_entries[:3]


def test_a_repeated_entry_is_kept_once(ledger_entries: list[LedgerEntry]) -> None:
    batch = Batch("t")
    entry = ledger_entries[0]
    batch.add([received(0, 1, entry), received(0, 2, entry), received(0, 3, ledger_entries[1])], 0)
    assert batch.entries() == [entry, ledger_entries[1]]


def test_revoked_partitions_leave_the_batch(ledger_entries: list[LedgerEntry]) -> None:
    batch = Batch("t")
    batch.add([received(0, 1, ledger_entries[0]), received(1, 1, ledger_entries[1])], 5.0)
    assert batch.drop_partitions([1]) == 1
    assert batch.commit_offsets() == {0: 2}
    assert batch.drop_partitions([0]) == 1
    assert batch.opened_at is None
    assert not batch.ready(100.0, 1, 0.2)


def test_the_token_is_a_pure_function_of_the_batch(ledger_entries: list[LedgerEntry]) -> None:
    ranges = {1: (3, 4), 0: (7, 8)}
    token = dedup_token("t", ranges, ledger_entries[:3])
    # same batch, same token (also with the ranges listed in another order)
    assert token == dedup_token("t", {0: (7, 8), 1: (3, 4)}, ledger_entries[:3])
    assert token.startswith("t|0:7-8,1:3-4|3|")
    # other offsets, or the same offsets with fewer rows (some stored already): another token
    assert token != dedup_token("t", {0: (7, 9), 1: (3, 4)}, ledger_entries[:3])
    assert token != dedup_token("t", ranges, ledger_entries[:2])
