"""What a run found: its faults, its load, and each invariant's findings; ``ok`` is the gate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

from reliability.invariants import (
    DeadLetterFindings,
    LedgerFindings,
    Route,
    WindowMismatch,
)
from reliability.processes import Exit
from reliability.scenarios import FaultEvent


@dataclass(frozen=True)
class Verdict:
    scenario: str
    mode: str
    seed: int
    prefix: str
    load: dict[str, int]
    faults: list[FaultEvent]
    ledger: LedgerFindings
    windows_checked: int
    window_mismatches: list[WindowMismatch]
    dead_letters: DeadLetterFindings
    routes_checked: int
    route_mismatches: dict[str, tuple[Route | None, Route]]
    unexpected_exits: list[Exit]
    worker_start_hangs: list[str]
    """Worker incarnations that never became ready and were replaced (no data at stake)."""
    sink_exit_codes: list[int | None]
    sink: dict[str, Any]
    """The last sink incarnation's counters per consumer and its outage switch's counts."""
    ledger_records: int
    """Records on ``metering.ledger``, re-emissions included (the distinct ones are entries)."""
    seconds: float
    evidence: dict[str, str] = field(default_factory=dict)
    """Log lines that show a fault landed where it was aimed."""

    @property
    def lost(self) -> int:
        return len(self.ledger.lost)

    @property
    def double_charged(self) -> int:
        return self.ledger.double_charged

    @property
    def problems(self) -> list[str]:
        """Every broken invariant, one line each (empty: the run passed)."""
        found = []
        ledger, letters = self.ledger, self.dead_letters
        for what, items in (
            ("ledger entries lost", ledger.lost),
            ("ledger entries not in the replay (double charges)", ledger.extra),
            ("ledger entries differing from the replay", ledger.different),
            ("requests charged twice", ledger.charged_twice),
            ("dead letters missing", letters.missing),
            ("dead letters not in the replay", letters.extra),
            ("dead letters differing from the replay", letters.different),
        ):
            if items:
                found.append(f"{len(items)} {what}, e.g. {items[0]}")
        if self.window_mismatches:
            found.append(f"{len(self.window_mismatches)} windows whose totals disagree")
        if letters.without_reason:
            found.append(f"{letters.without_reason} dead letters without a reason")
        if letters.bad_inputs_missing:
            found.append(f"{letters.bad_inputs_missing} injected bad inputs not in the DLQ")
        if self.route_mismatches:
            found.append(f"{len(self.route_mismatches)} accounts routed unlike their windows")
        for code in self.sink_exit_codes:
            if code != 0:
                found.append(f"a sink incarnation exited with {code} (0 is a clean stop)")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> bytes:
        body = dataclasses.asdict(self)
        body |= {"ok": self.ok, "problems": self.problems, "lost": self.lost}
        body["double_charged"] = self.double_charged
        return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
