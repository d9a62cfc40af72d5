"""Entry by entry: what ClickHouse holds against what the core derives, and why they differ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from metering.audit.rows import LedgerRow, Row

FIELDS: tuple[str, ...] = LedgerRow._fields

Problem = Literal["missing", "extra", "different"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    stored: Any
    derived: Any


@dataclass(frozen=True, slots=True)
class EntryDiff:
    """``missing``: derived but not stored; ``extra``: stored but not derived; ``different``:
    both, with the fields that disagree (a Decimal compares by value: 1.5 equals 1.500)."""

    entry_id: str
    problem: Problem
    changes: tuple[FieldChange, ...] = ()

    def describe(self) -> str:
        if self.problem == "missing":
            return "in the raw log's ledger but not in ClickHouse"
        if self.problem == "extra":
            return "in ClickHouse but not derivable from the raw log"
        return "; ".join(
            f"{c.field}: stored {c.stored} ≠ derived {c.derived}" for c in self.changes
        )


def _changes(stored: Row, derived: Row) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(name, getattr(stored, name), getattr(derived, name))
        for name in FIELDS
        if getattr(stored, name) != getattr(derived, name)
    )


def diff_entries(stored: Sequence[Row], derived: Sequence[Row]) -> list[EntryDiff]:
    """Every entry id that is not identical on both sides, in entry-id order."""
    mine = {e.entry_id: e for e in stored}
    theirs = {e.entry_id: e for e in derived}
    found: list[EntryDiff] = []
    for entry_id in sorted(mine.keys() | theirs.keys()):
        if entry_id not in mine:
            found.append(EntryDiff(entry_id, "missing"))
        elif entry_id not in theirs:
            found.append(EntryDiff(entry_id, "extra"))
        elif mine[entry_id] != theirs[entry_id]:
            found.append(
                EntryDiff(entry_id, "different", _changes(mine[entry_id], theirs[entry_id]))
            )
    return found
