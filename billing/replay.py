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

    def run(self, records: Iterable[tuple[Source, bytes, str | None]]) -> Iterator[Emitted]:
        for source, payload, key in records:
            yield from self.feed(source, payload, key)
        yield from self.finish()

    def feed(self, source: Source, payload: bytes, key: str | None = None) -> Iterator[Emitted]:
        decoded = self.engine.decode(source, payload, key)
        if isinstance(decoded, Result):
            yield from decoded.emitted
            return
        moment = decoded.event_time
        if moment is not None and (self.clock is None or moment > self.clock):
            self.clock = moment
            yield from self._due()
        result = self.engine.apply(decoded)
        self.duplicates += result.duplicate
        yield from result.emitted
        if decoded.account_id is not None:
            self._schedule(decoded.account_id)
            yield from self._due()

    def finish(self) -> Iterator[Emitted]:
        """The final tick, at the latest time the log reached."""
        yield from self._due()

    def _schedule(self, account_id: str) -> None:
        deadline = self.engine.deadline(account_id)
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, account_id))

    def _due(self) -> Iterator[Emitted]:
        while self._heap and self.clock is not None and self._heap[0][0] <= self.clock:
            instant, account_id = heapq.heappop(self._heap)
            if self.engine.deadline(account_id) != instant:
                continue
            yield from self.engine.tick(account_id, instant)
            self._schedule(account_id)
