"""``metering adjust``: check an entry's remainder in ClickHouse, then publish an adjustment
that the pipeline turns into a new ledger entry referencing it (never an update).

See README.md in this folder for what it checks and what it does not guarantee.
"""

from metering.corrections.errors import (
    AdjustmentIdReused,
    CorrectionRefused,
    FullyReversed,
    NotACharge,
    OverRemainder,
    UnknownEntry,
)
from metering.corrections.issue import issue_adjustment
from metering.corrections.remainder import Decision, Remainder, decide, parse_amount, remainder

__all__ = [
    "AdjustmentIdReused",
    "CorrectionRefused",
    "Decision",
    "FullyReversed",
    "NotACharge",
    "OverRemainder",
    "Remainder",
    "UnknownEntry",
    "decide",
    "issue_adjustment",
    "parse_amount",
    "remainder",
]
