"""The per-account state the fold carries from one record to the next.

Small on purpose (it is one Faust table value): subscription history, the windows still
needed for stragglers, the last route published and two clocks. Idempotency records live in
their own table (``billing.dedup``) so this value does not grow with traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from operator import attrgetter

from billing.subscription import FallbackSetting, Term
from billing.windows import Window, WindowKind
from schemas.routing import Route
from schemas.subscriptions import PlanFamily

_EXHAUSTIONS = attrgetter("exhaustions")


@dataclass(frozen=True, slots=True)
class PublishedRoute:
    """The last routing state emitted for the account; ``seq`` numbers every change."""

    route: Route
    fallback_key_id: str | None
    until: datetime | None
    seq: int


@dataclass(frozen=True, slots=True)
class AccountState:
    """``event_clock``: latest time carried by the account's own records (requests, lifecycle,
    corrections). ``now``: the same, advanced further by ticks. Ledger content depends only on
    the former, so a tick arriving earlier or later never changes an entry."""

    account_id: str
    family: PlanFamily
    terms: tuple[Term, ...]
    scheduled_plan: str | None
    fallback: tuple[FallbackSetting, ...]
    windows: tuple[Window, ...]
    route: PublishedRoute | None
    event_clock: datetime
    now: datetime
    _deadline: tuple[datetime | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def next_deadline(self) -> datetime | None:
        """The next instant at which time alone changes something (a reset, a term's end).

        Remembered once found (the state is immutable, so is its deadline): it is asked
        after the record that made the state and again by the account's next record. The
        windows that ever had an exhaustion are picked in C (``compress``); only those are
        looked at in Python, ``Window.is_exhausted`` inlined (a call per window cost four
        times the test)."""
        known = self._deadline
        if known is None:
            deadline = None
            for window in compress(self.windows, map(_EXHAUSTIONS, self.windows)):
                if window.exhaustions[-1].end is None and (
                    deadline is None or window.resets_at < deadline
                ):
                    deadline = window.resets_at
            for term in self.terms:
                end = term.end
                if end > self.now and (deadline is None or end < deadline):
                    deadline = end
            known = (deadline,)
            object.__setattr__(self, "_deadline", known)  # a memo, not a change of state
        return known[0]

    def windows_of(self, kind: WindowKind) -> list[Window]:
        return [w for w in self.windows if w.kind == kind]

    # The two copies made for (nearly) every record, spelled out: ``dataclasses.replace``
    # costs several times a constructor call. ``tests/unit/billing/test_state_copies.py``
    # checks they carry every field, so a new field cannot be dropped here silently.

    def with_clocks(self, now: datetime, event_clock: datetime) -> AccountState:
        return AccountState(
            self.account_id,
            self.family,
            self.terms,
            self.scheduled_plan,
            self.fallback,
            self.windows,
            self.route,
            event_clock,
            now,
        )

    def with_windows(self, windows: tuple[Window, ...]) -> AccountState:
        return AccountState(
            self.account_id,
            self.family,
            self.terms,
            self.scheduled_plan,
            self.fallback,
            windows,
            self.route,
            self.event_clock,
            self.now,
        )
