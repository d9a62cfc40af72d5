"""Fold an ordered log offline, with ticks taken from the log's own time (never a wall clock).

Before each record, every account whose next reset or term end is at or before the record's
time is ticked to that instant, in time order; after the last record, whatever is due by the
latest time seen is ticked too. The live worker runs the same engine with ticks from a
timer, and since an account's own records apply their due resets first, both paths give the
same ledger.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime

from billing.engine import Engine, Result
from billing.outputs import Emitted
from billing.source import Source


class Replay:
    """Drives an engine over log records and counts duplicates on the way."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.duplicates = 0
        self.clock: datetime | None = None
        self._heap: list[tuple[datetime, str]] = []
        self._queued: dict[str, datetime] = {}
        """The deadline last pushed for each account while it is still in the heap: an
        account's deadline rarely changes, and pushing it again after every one of its
        records grew the heap by one stale entry per record."""

    def run(self, records: Iterable[tuple[Source, bytes, str | None]]) -> Iterator[Emitted]:
        for source, payload, key in records:
            yield from self.feed(source, payload, key)
        yield from self.finish()

    def feed(self, source: Source, payload: bytes, key: str | None = None) -> list[Emitted]:
        """What one record emits, ticks due before and after it included (a list, not a
        generator: one per record costs more than the few outputs it yields)."""
        decoded = self.engine.decode(source, payload, key)
        if isinstance(decoded, Result):
            return decoded.emitted
        emitted: list[Emitted] = []
        moment = decoded.event_time
        if moment is not None and source.ingest_time is not None:
            # Never past the record's ingest time: live, resets are ticked by the wall clock,
            # which a record dated later (refused as future_timestamp, or within the
            # tolerance) cannot move; ticking every account ahead would end exhaustions early.
            moment = min(moment, source.ingest_time)
        if moment is not None and (self.clock is None or moment > self.clock):
            self.clock = moment
            emitted += self._due()
        result = self.engine.apply(decoded)
        self.duplicates += result.duplicate
        emitted += result.emitted
        account_id = decoded.account_id
        if account_id is not None:
            self._schedule(account_id)
            emitted += self._due()
        return emitted

    def finish(self) -> list[Emitted]:
        """The final tick, at the latest time the log reached."""
        return self._due()

    def _schedule(self, account_id: str) -> None:
        deadline = self.engine.deadline(account_id)
        if deadline is not None and self._queued.get(account_id) != deadline:
            heapq.heappush(self._heap, (deadline, account_id))
            self._queued[account_id] = deadline

    def _due(self) -> list[Emitted]:
        """What the ticks due by ``clock`` emit."""
        emitted: list[Emitted] = []
        while self._heap and self.clock is not None and self._heap[0][0] <= self.clock:
            instant, account_id = heapq.heappop(self._heap)
            if self._queued.get(account_id) == instant:
                del self._queued[account_id]
            if self.engine.deadline(account_id) != instant:
                continue
            emitted += self.engine.tick(account_id, instant)
            self._schedule(account_id)
        return emitted
