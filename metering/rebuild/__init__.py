"""``metering rebuild``: the ClickHouse ledger and rollups again from the ledger topic (or the
raw input log through the core), idempotently and resumably, ending with a count check.

See README.md in this folder for its invariants and what it does not guarantee.
"""

from metering.rebuild.errors import CountMismatch, RebuildError, SourceMissing, StoreFailed
from metering.rebuild.run import Rebuilt, Tally, rebuild
from metering.rebuild.sources import EntrySource, InputTopics, LedgerTopic

__all__ = [
    "CountMismatch",
    "EntrySource",
    "InputTopics",
    "LedgerTopic",
    "RebuildError",
    "Rebuilt",
    "SourceMissing",
    "StoreFailed",
    "Tally",
    "rebuild",
]
