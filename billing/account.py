"""The per-account state the fold carries from one record to the next.

Small on purpose (it is one Faust table value): subscription history, the windows still
needed for stragglers, the last route published and two clocks. Idempotency records live in
their own table (``billing.dedup``) so this value does not grow with traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.subscription import FallbackSetting, Term
from billing.windows import Window, WindowKind
from schemas.routing import Route
from schemas.subscriptions import PlanFamily


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

    def windows_of(self, kind: WindowKind) -> list[Window]:
        return [w for w in self.windows if w.kind == kind]
