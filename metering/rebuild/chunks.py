"""Slices of a rebuild's source, cut at record boundaries, and what the checkpoint says of them.

Pure (no Kafka, no ClickHouse), so what is written again after a resume and how far the
checkpoint moves are tested with plain values. An item is one source record's entry at its
position: a ledger-topic record holds one entry (or poison); an input record yields the
entries the core derives from it, all at that record's position. A chunk never splits one
record's entries, so "everything before offset N of a partition is stored" stays true.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass

from metering.rebuild.checkpoint import Partition
from schemas.ledger import LedgerEntry


@dataclass(frozen=True, slots=True)
class Item:
    """One entry read at ``offset`` of ``partition``; ``entry`` is None for a poison record."""

    partition: Partition
    offset: int
    entry: LedgerEntry | None

    def done(self, checkpoint: Mapping[Partition, int]) -> bool:
        """Stored by an earlier run: before the checkpoint of its partition."""
        return self.offset < checkpoint.get(self.partition, 0)


@dataclass(frozen=True)
class Chunk:
    """Consecutive items of the source, in source order."""

    items: tuple[Item, ...]

    def entries(self) -> list[LedgerEntry]:
        """Every valid entry of the chunk (repeats included), stored or not."""
        return [item.entry for item in self.items if item.entry is not None]

    def resumed(self, checkpoint: Mapping[Partition, int]) -> int:
        """How many items an earlier run already stored."""
        return sum(item.done(checkpoint) for item in self.items)

    def pending(self, checkpoint: Mapping[Partition, int]) -> list[LedgerEntry]:
        """The entries at or past the checkpoint, each ``entry_id`` once (first copy wins:
        copies of one entry are identical, and a second copy must not reach the rollups)."""
        seen: set[str] = set()
        out: list[LedgerEntry] = []
        for item in self.items:
            entry = item.entry
            if entry is not None and not item.done(checkpoint) and entry.entry_id not in seen:
                seen.add(entry.entry_id)
                out.append(entry)
        return out

    def next_offsets(self, checkpoint: Mapping[Partition, int]) -> dict[Partition, int]:
        """Per partition, the offset after the chunk's last item, where that moves the
        checkpoint forward (poison included: it is skipped, not retried)."""
        ends: dict[Partition, int] = {}
        for item in self.items:
            ends[item.partition] = max(ends.get(item.partition, 0), item.offset + 1)
        return {p: end for p, end in ends.items() if end > checkpoint.get(p, 0)}


async def chunked(items: AsyncIterable[Item], size: int) -> AsyncIterator[Chunk]:
    """Chunks of at least ``size`` items (the last may be smaller), each ending at a record
    boundary: a chunk that reached ``size`` takes the rest of its last record's entries."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    pending: list[Item] = []
    async for item in items:
        if len(pending) >= size and _position(pending[-1]) != _position(item):
            yield Chunk(tuple(pending))
            pending = []
        pending.append(item)
    if pending:
        yield Chunk(tuple(pending))


def _position(item: Item) -> tuple[Partition, int]:
    return item.partition, item.offset
