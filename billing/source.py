"""Where an input record was read from; carried into ledger entries and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Source:
    """``ingest_time`` is when the log received the record (Kafka's record timestamp, or the
    log line's ``timestamp``); it is the "now" against which future timestamps are judged,
    and is None where the log does not say (then that check cannot apply)."""

    topic: str
    partition: int = 0
    offset: int = 0
    ingest_time: datetime | None = None

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)
