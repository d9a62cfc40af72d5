"""Pure rules of ``metering.rebuild.chunks`` (no services; kept beside the rebuild's tests):
chunks end at record boundaries, and what a checkpoint marks done is neither written again nor
moves the checkpoint back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from metering.rebuild.chunks import Chunk, Item, chunked
from tests.integration.ledger_pipeline import billed_ledger

A, B = ("t.ledger", 0), ("t.ledger", 1)


def items(*positions: tuple[tuple[str, int], int]) -> list[Item]:
    """One item per position, each with its own entry of the billed scenario."""
    entries = billed_ledger()
    return [Item(p, offset, entries[n]) for n, (p, offset) in enumerate(positions)]


async def stream(values: Iterable[Item]) -> AsyncIterator[Item]:
    for value in values:
        yield value


async def cut(values: list[Item], size: int) -> list[list[tuple[tuple[str, int], int]]]:
    return [[(i.partition, i.offset) for i in c.items] async for c in chunked(stream(values), size)]


@pytest.mark.parametrize(
    ("positions", "size", "expected"),
    [
        # one entry per record: chunks of exactly `size`, the last smaller
        (
            [(A, 0), (A, 1), (B, 0), (B, 1), (A, 2)],
            2,
            [[(A, 0), (A, 1)], [(B, 0), (B, 1)], [(A, 2)]],
        ),
        # a record with several entries (an input record's derived entries) is never split
        ([(A, 0), (A, 1), (A, 1), (A, 1), (A, 2)], 2, [[(A, 0), (A, 1), (A, 1), (A, 1)], [(A, 2)]]),
        ([(A, 0)], 5, [[(A, 0)]]),
        ([], 5, []),
    ],
)
async def test_chunks_hold_at_least_size_items_and_end_between_records(
    positions: list[tuple[tuple[str, int], int]], size: int, expected: list[list[object]]
) -> None:
    assert await cut(items(*positions), size) == expected


def test_what_the_checkpoint_marks_done_is_counted_not_written_and_never_moves_it_back() -> None:
    chunk = Chunk(tuple(items((A, 3), (A, 4), (B, 7), (B, 8))))
    checkpoint = {A: 5, B: 8}  # A done through offset 4, B through 7
    assert chunk.resumed(checkpoint) == 3
    assert [e.entry_id for e in chunk.pending(checkpoint)] == [chunk.items[3].entry.entry_id]  # type: ignore[union-attr]
    assert chunk.next_offsets(checkpoint) == {B: 9}  # A would move back to 5: left alone
    assert chunk.next_offsets({}) == {A: 5, B: 9}


def test_a_repeated_entry_is_pending_once_and_poison_only_moves_the_checkpoint() -> None:
    entry = billed_ledger()[0]
    chunk = Chunk((Item(A, 0, entry), Item(A, 1, entry), Item(A, 2, None)))
    assert chunk.pending({}) == [entry]
    assert chunk.entries() == [entry, entry]
    assert chunk.next_offsets({}) == {A: 3}
