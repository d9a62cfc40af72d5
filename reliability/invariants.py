"""The invariants a run must end with, checked on what it observed (pure: no I/O, no clock).

What is compared, and against what:
1. **Charged exactly once.** The ledger in ClickHouse (read with FINAL) against the offline
   replay of the same input records read back from Kafka (``metering replay``'s fold): entry
   for entry, every field. An entry the replay has and ClickHouse lacks is *lost*; one
   ClickHouse has and the replay does not, or a second charge entry for one request, is
   *double-charged*; the same id with other content is *different*. Rows before FINAL that
   repeat an entry are counted apart (the ReplacingMergeTree folds them in every query).
2. **Window totals = ledger totals.** Every window in the worker's own table (its changelog,
   final values) has ``consumed`` equal to the sum of ``debit`` of the stored entries naming
   it, and equal to the replay's window of the same id.
3. **Every invalid input in the DLQ.** ``metering.dlq`` against the replay's dead letters, by
   source position (topic, partition, offset): same code, reason, key and bytes; and each
   injected bad input found there with its redacted bytes and a reason.
4. **Routing ends consistent.** Each account's last routing state (highest ``seq``) equals
   the route the replayed state gives at the instant of the check.
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billing.account import AccountState
from billing.intake import redact
from billing.policy import Policy
from billing.routing import derive
from reliability.bad_input import BadInput
from schemas.dlq import DeadLetter
from schemas.ledger import LedgerEntry
from schemas.routing import RoutingState

Position = tuple[str, int, int]
Route = tuple[str, str | None, datetime | None]


@dataclass(frozen=True)
class LedgerFindings:
    expected: int
    stored: int
    lost: tuple[str, ...]
    extra: tuple[str, ...]
    different: tuple[str, ...]
    charged_twice: tuple[str, ...]
    duplicate_rows: int
    """Rows in ClickHouse before FINAL beyond one per entry (not seen by any query)."""
    late: int
    """Stored entries charged late (a window they belong to had reset when they were read)."""

    @property
    def double_charged(self) -> int:
        return len(self.extra) + len(self.charged_twice)


def check_ledger(
    stored: Sequence[LedgerEntry], expected: Sequence[LedgerEntry], raw_rows: int
) -> LedgerFindings:
    """Step 1 of the module docstring."""
    mine = {e.entry_id: e for e in stored}
    theirs = {e.entry_id: e for e in expected}
    charges = Counter((e.account_id, e.request_id) for e in mine.values() if e.kind == "charge")
    return LedgerFindings(
        expected=len(theirs),
        stored=len(mine),
        lost=tuple(sorted(set(theirs) - set(mine))),
        extra=tuple(sorted(set(mine) - set(theirs))),
        different=tuple(sorted(i for i in set(mine) & set(theirs) if mine[i] != theirs[i])),
        charged_twice=tuple(sorted(f"{a}/{r}" for (a, r), n in charges.items() if n > 1)),
        duplicate_rows=raw_rows - len(stored),
        late=sum(1 for e in mine.values() if e.late),
    )


@dataclass(frozen=True)
class WindowMismatch:
    window_id: str
    worker: Decimal | None
    """``consumed`` in the worker's table (None: the window is missing there)."""
    ledger: Decimal
    replay: Decimal | None


def debits_by_window(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        for window in (entry.window_5h_id, entry.window_7d_id, entry.period_id):
            if window is not None:
                sums[window] += entry.debit
    return dict(sums)


def _windows(states: Mapping[str, AccountState]) -> dict[str, Decimal]:
    return {w.window_id: w.consumed for s in states.values() for w in s.windows}


def check_windows(
    worker: Mapping[str, AccountState],
    replayed: Mapping[str, AccountState],
    stored: Sequence[LedgerEntry],
) -> tuple[int, list[WindowMismatch]]:
    """Step 2: (windows checked, mismatches). A window pruned from both tables (older than
    the retention) is not checked; one kept by either is."""
    live, replay, ledger = _windows(worker), _windows(replayed), debits_by_window(stored)
    mismatches = [
        WindowMismatch(wid, live.get(wid), ledger.get(wid, Decimal(0)), replay.get(wid))
        for wid in sorted(set(live) | set(replay))
        if not (live.get(wid) == replay.get(wid) == ledger.get(wid, Decimal(0)))
    ]
    return len(set(live) | set(replay)), mismatches


@dataclass(frozen=True)
class DeadLetterFindings:
    expected: int
    found: int
    missing: tuple[Position, ...]
    extra: tuple[Position, ...]
    different: tuple[Position, ...]
    without_reason: int
    bad_inputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per class of injected bad input: (injected, found in the DLQ with its bytes)."""

    @property
    def bad_inputs_missing(self) -> int:
        return sum(injected - found for injected, found in self.bad_inputs.values())


def _position(letter: DeadLetter) -> Position:
    return (letter.source_topic, letter.source_partition, letter.source_offset)


def kept_bytes(payload: bytes, policy: Policy | None = None) -> str:
    """The ``payload_b64`` a dead letter of ``payload`` carries (redacted, capped)."""
    limit = (policy or Policy()).max_payload_bytes
    return base64.b64encode(redact(payload[:limit])[0]).decode("ascii")


def check_dead_letters(
    live: Sequence[DeadLetter],
    expected: Sequence[DeadLetter],
    injected: Mapping[str, Sequence[BadInput]],
) -> DeadLetterFindings:
    """Step 3. ``live`` may repeat a letter (at-least-once): copies must be identical.
    ``injected`` maps a class to its records (topics without the run's prefix, as letters
    name them)."""
    mine: dict[Position, DeadLetter] = {}
    conflicting: set[Position] = set()
    for letter in live:
        if mine.setdefault(_position(letter), letter) != letter:
            conflicting.add(_position(letter))
    theirs = {_position(letter): letter for letter in expected}
    kept = Counter((letter.source_topic, letter.payload_b64) for letter in mine.values())
    bad: dict[str, tuple[int, int]] = {}
    for kind, records in sorted(injected.items()):
        wanted = Counter((r.topic, kept_bytes(r.payload)) for r in records)
        found = sum(min(n, kept[key]) for key, n in wanted.items())
        bad[kind] = (len(records), found)
    return DeadLetterFindings(
        expected=len(theirs),
        found=len(mine),
        missing=tuple(sorted(set(theirs) - set(mine))),
        extra=tuple(sorted(set(mine) - set(theirs))),
        different=tuple(
            sorted(conflicting | {p for p in set(mine) & set(theirs) if mine[p] != theirs[p]})
        ),
        without_reason=sum(1 for letter in mine.values() if not letter.reason.strip()),
        bad_inputs=bad,
    )


def last_routes(routes: Iterable[RoutingState]) -> dict[str, RoutingState]:
    """Each account's latest routing state: the highest ``seq`` (a compacted topic's view)."""
    latest: dict[str, RoutingState] = {}
    for state in routes:
        held = latest.get(state.account_id)
        if held is None or state.seq >= held.seq:
            latest[state.account_id] = state
    return latest


def check_routes(
    routes: Iterable[RoutingState], replayed: Mapping[str, AccountState], now: datetime
) -> dict[str, tuple[Route | None, Route]]:
    """Step 4: accounts whose last published route differs from the replayed state's route
    at ``now``: {account: (published, expected)}."""
    published = last_routes(routes)
    wrong: dict[str, tuple[Route | None, Route]] = {}
    for account, state in sorted(replayed.items()):
        want = derive(state, now)
        held = published.get(account)
        got = None if held is None else (held.route, held.fallback_key_id, held.until)
        if got != want:
            wrong[account] = (got, want)
    return wrong
