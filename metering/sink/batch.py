"""The batch the sink is filling: records received, what to insert, what to commit, its token.

Pure (no Kafka, no ClickHouse, no clock: callers pass ``now``), so batching rules are tested
with plain values. A batch closes when it holds ``max_rows`` records or when its first
record has waited ``max_wait_s``, whichever comes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas.ledger import LedgerEntry


@dataclass(frozen=True)
class Received:
    """One record read from the ledger topic; ``entry`` is None for a poison value."""

    partition: int
    offset: int
    timestamp_ms: int
    entry: LedgerEntry | None


@dataclass
class Batch:
    """Records of one topic, in the order received (per partition, that is offset order)."""

    topic: str
    records: list[Received] = field(default_factory=list)
    opened_at: float | None = None  # monotonic time the first record was added

    def add(self, records: Iterable[Received], now: float) -> None:
        for record in records:
            if self.opened_at is None:
                self.opened_at = now
            self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def ready(self, now: float, max_rows: int, max_wait_s: float) -> bool:
        """Whether to flush now: full, or the oldest record has waited long enough."""
        if not self.records:
            return False
        assert self.opened_at is not None
        return len(self.records) >= max_rows or now - self.opened_at >= max_wait_s

    def wait_left(self, now: float, max_wait_s: float) -> float:
        """Seconds until the batch is due by time (``max_wait_s`` when it is empty)."""
        if self.opened_at is None:
            return max_wait_s
        return max(0.0, self.opened_at + max_wait_s - now)

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget records of revoked partitions (their new owner re-reads them); how many."""
        gone = set(partitions)
        kept = [r for r in self.records if r.partition not in gone]
        dropped = len(self.records) - len(kept)
        self.records = kept
        if not kept:
            self.opened_at = None
        return dropped

    def entries(self) -> list[LedgerEntry]:
        """The valid entries, each ``entry_id`` once (first copy wins; copies are identical)."""
        seen: set[str] = set()
        out: list[LedgerEntry] = []
        for record in self.records:
            entry = record.entry
            if entry is not None and entry.entry_id not in seen:
                seen.add(entry.entry_id)
                out.append(entry)
        return out

    @property
    def poison(self) -> list[Received]:
        return [r for r in self.records if r.entry is None]

    def ranges(self) -> dict[int, tuple[int, int]]:
        """First and last offset read per partition (poison records included)."""
        spans: dict[int, tuple[int, int]] = {}
        for record in self.records:
            first, last = spans.get(record.partition, (record.offset, record.offset))
            spans[record.partition] = (min(first, record.offset), max(last, record.offset))
        return dict(sorted(spans.items()))

    def commit_offsets(self) -> dict[int, int]:
        """Per partition, the offset to commit: the next one to read (last offset + 1)."""
        return {partition: last + 1 for partition, (_, last) in self.ranges().items()}

    def oldest_timestamp_ms(self) -> int | None:
        return min((r.timestamp_ms for r in self.records), default=None)


def dedup_token(
    topic: str, ranges: dict[int, tuple[int, int]], entries: Sequence[LedgerEntry]
) -> str:
    """The ``insert_deduplication_token`` of one insert: a pure function of the batch.

    Topic and offset ranges name the batch; a digest of the entry ids it inserts makes the
    token change whenever the rows do (a batch re-read after a restart may insert fewer rows,
    the rest being stored already, and must not be mistaken for the earlier insert). The
    same rows retried give the same token, so the server keeps them once.
    """
    spans = ",".join(f"{p}:{first}-{last}" for p, (first, last) in sorted(ranges.items()))
    digest = hashlib.sha256("\n".join(e.entry_id for e in entries).encode()).hexdigest()[:32]
    return f"{topic}|{spans}|{len(entries)}|{digest}"
