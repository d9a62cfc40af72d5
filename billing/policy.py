"""The core's tunable limits, passed in by the shell (the core never reads the environment)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    """``dedup_horizon``: how long a ``request_id`` is remembered (SPEC: ≥ 35 days); requests
    that started longer ago than that cannot be charged safely and go to the DLQ.
    ``window_retention``: how long a reset 5h/7d window is kept for stragglers; an older
    straggler is still charged, to its billing period only.
    ``tell_conflicts``: hash each request's content, so that a ``request_id`` reused with
    other content goes to the DLQ as a ``conflict`` instead of being dropped as a duplicate.
    Either way the repeat changes nothing (no entry, no debit, no event), so a shell that
    keeps only the ledger and the windows (the audit) turns it off: the hash is a fifth of
    the fold's cost. ``tests/unit/billing/test_properties.py`` checks that the two agree."""

    dedup_horizon: timedelta = timedelta(days=40)
    window_retention: timedelta = timedelta(days=8)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_payload_bytes: int = 64 * 1024
    tell_conflicts: bool = True

    def too_far_ahead(self, ingest_time: datetime | None, *instants: datetime) -> str | None:
        """Why a record dated past its ingest time by more than the tolerance is refused, or
        None. Every input kind is checked: one record from the far future would otherwise
        move its account's clock there and every later record would look too late."""
        if ingest_time is None:  # offline logs without broker timestamps
            return None
        latest = ingest_time + self.future_tolerance
        for instant in instants:  # a loop: asked of every record, any() over a generator cost more
            if instant > latest:
                return f"timestamps more than {self.future_tolerance} after the record was received"
        return None
