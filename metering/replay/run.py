"""Replay a log file end to end: read, fold with the core over in-memory stores, write, summarise."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

from billing.catalog.model import Catalog
from billing.engine import Engine
from billing.outputs import Emitted, Rejection
from billing.policy import Policy
from billing.replay import Replay
from billing.source import Source
from metering.errors import InputError
from metering.replay.collector import collector_paused
from metering.replay.logfile import LogRecord, output_line, read_log
from schemas import topics
from schemas.ledger import LedgerEntry
from schemas.quota import QuotaEvent

PROGRESS_EVERY = 4096
"""Lines between progress reports: per batch, not per event."""


@dataclass
class ReplaySummary:
    """Totals a reader checks at a glance: how much was charged to whom, what was refused."""

    inputs: int = 0
    outputs: Counter[str] = field(default_factory=Counter)
    funding_entries: Counter[str] = field(default_factory=Counter)
    funding_usd: dict[str, Decimal] = field(default_factory=dict)
    flows: Decimal = Decimal(0)
    exhausted: int = 0
    restored: int = 0
    duplicates: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def add(self, item: Emitted) -> None:
        self.outputs[item.topic] += 1
        value = item.value
        if isinstance(value, LedgerEntry):
            self.funding_entries[value.funding] += 1
            self.funding_usd[value.funding] = (
                self.funding_usd.get(value.funding, Decimal(0)) + value.charge_usd
            )
            self.flows += value.flows
        elif isinstance(value, QuotaEvent):
            if value.type == "exhausted":
                self.exhausted += 1
            else:
                self.restored += 1
        elif item.topic == topics.DLQ:
            self.dead_letters[getattr(value, "code", "?")] += 1


def fold_log(
    stream: IO[bytes], replay: Replay, on_progress: Callable[[int], None] | None = None
) -> Iterator[Emitted]:
    """Every output of the log, in order; a malformed line becomes a dead letter."""
    engine = replay.engine
    for number, item in enumerate(read_log(stream)):
        if on_progress is not None and number % PROGRESS_EVERY == 0:
            on_progress(stream.tell())
        if isinstance(item, LogRecord):
            yield from replay.feed(item.source, item.payload, item.key)
        else:
            source = Source("", 0, item.number)
            yield engine.dead_letter(source, item.raw, None, Rejection("invalid", item.reason))
    if on_progress is not None:
        on_progress(stream.tell())
    yield from replay.finish()


def replay_file(
    input_path: Path,
    output_path: Path,
    catalog: Catalog,
    policy: Policy | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Fold ``input_path`` and write every output line to ``output_path``."""
    engine = Engine(catalog, accounts={}, seen={}, discounts={}, policy=policy)
    summary = ReplaySummary()
    try:
        source = input_path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {input_path}: {exc.strerror or exc}") from None
    try:
        output = output_path.open("wb")
    except OSError as exc:
        source.close()
        raise InputError(f"cannot write {output_path}: {exc.strerror or exc}") from None
    with source, output, collector_paused():
        replay = Replay(engine)
        for item in fold_log(source, replay, on_progress):
            summary.add(item)
            value = item.value  # its JSON bytes straight from the serializer: no str round trip
            output.write(output_line(item.topic, value.__pydantic_serializer__.to_json(value)))
    summary.duplicates = replay.duplicates
    return summary
