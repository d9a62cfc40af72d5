"""Usage windows (5-hour, 7-day, billing period) and what can happen to one.

A window covers ``[opened_at, resets_at)``. Its exhaustion is a list of intervals: it starts
at the ``completed_at`` of the request whose charge reaches the cap and ends at the reset, or
earlier when an upgrade or a correction brings consumption back under the cap. A request is
subscription-funded only if it *starts* outside every such interval.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Literal

from billing.money import ZERO
from schemas.base import format_timestamp

WindowKind = Literal["5h", "7d", "period"]
ROLLING_KINDS: tuple[Literal["5h", "7d"], ...] = ("5h", "7d")
WINDOW_ORDER = attrgetter("opened_at", "kind")
"""The order of an account's windows (a sort key; ``attrgetter`` runs in C, unlike a lambda)."""
OPENED_AT = attrgetter("opened_at")


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """``[start, end)``; ``end`` is None while the window is still exhausted."""

    start: datetime
    end: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


@dataclass(frozen=True, slots=True)
class Window:
    kind: WindowKind
    window_id: str
    opened_at: datetime
    resets_at: datetime
    cap: Decimal | None
    consumed: Decimal = ZERO
    exhaustions: tuple[Exhaustion, ...] = ()

    def contains(self, instant: datetime) -> bool:
        return self.opened_at <= instant < self.resets_at

    def exhausted_at(self, instant: datetime) -> bool:
        # A loop, not any() over a generator (a third of the cost): asked of every window of
        # every request.
        for exhaustion in self.exhaustions:  # noqa: SIM110
            if exhaustion.covers(instant):
                return True
        return False

    @property
    def is_exhausted(self) -> bool:
        """True while the latest exhaustion has not ended."""
        return bool(self.exhaustions) and self.exhaustions[-1].end is None

    @property
    def exhausted_to_reset(self) -> bool:
        """True if the latest exhaustion lasts until the reset: still open, or closed by the
        reset itself. Charging asks this, not ``is_exhausted``: whether the reset has been
        ticked yet (a timer's timing) must not change what a straggler's charge does."""
        if not self.exhaustions:
            return False
        end = self.exhaustions[-1].end
        return end is None or end == self.resets_at

    def with_consumed(self, consumed: Decimal) -> Window:
        """A copy with ``consumed`` changed: every debit makes one, and the spelled-out
        constructor costs a fraction of ``dataclasses.replace`` (fields checked by
        ``tests/unit/billing/test_state_copies.py``)."""
        return Window(
            self.kind,
            self.window_id,
            self.opened_at,
            self.resets_at,
            self.cap,
            consumed,
            self.exhaustions,
        )

    def end_exhaustion(self, at: datetime) -> Window:
        last = self.exhaustions[-1]
        return replace(self, exhaustions=(*self.exhaustions[:-1], replace(last, end=at)))

    def start_exhaustion(self, at: datetime) -> Window:
        return replace(self, exhaustions=(*self.exhaustions, Exhaustion(at)))


def window_id(account_id: str, kind: WindowKind, opened_at: datetime) -> str:
    """Stable id: the account, the kind and the instant the window opened."""
    return f"{account_id}/{kind}/{format_timestamp(opened_at)}"


def attribute(windows: list[Window], started_at: datetime) -> Window | None:
    """The window a request starting at ``started_at`` belongs to.

    The window containing it; for a straggler that started in a gap between windows (a
    window opened later by a request that arrived first), the next window after the gap,
    because that is the window its admission would have opened. None if it starts after
    every window: the caller opens a new one.
    """
    index = bisect_right(windows, started_at, key=OPENED_AT)
    if index and windows[index - 1].contains(started_at):
        return windows[index - 1]
    return windows[index] if index < len(windows) else None


@dataclass(frozen=True, slots=True)
class Debit:
    window: Window
    overshoot: Decimal
    crossed: bool


def debit(window: Window, amount: Decimal, completed_at: datetime) -> Debit:
    """Add a charge; the charge that reaches the cap is taken in full and exhausts the window.

    The exhaustion starts at the crossing request's ``completed_at`` — unless that is already
    past the reset, in which case the window is over and only the overshoot is recorded.
    """
    before = window.consumed
    after = before + amount
    updated = window.with_consumed(after)
    if window.cap is None:
        return Debit(updated, ZERO, False)
    overshoot = max(ZERO, after - max(window.cap, before))
    crossed = (
        not window.exhausted_to_reset
        and after >= window.cap
        and (before < window.cap or amount > 0)
    )
    if crossed and completed_at < window.resets_at:
        return Debit(updated.start_exhaustion(completed_at), overshoot, True)
    return Debit(updated, overshoot, False)


def credit(window: Window, amount: Decimal, at: datetime) -> tuple[Window, bool]:
    """Give back part of a charge; returns whether that ended an ongoing exhaustion."""
    updated = window.with_consumed(window.consumed - amount)
    return _lift_if_under_cap(updated, at)


def recap(window: Window, cap: Decimal | None, at: datetime) -> tuple[Window, str | None]:
    """A plan change sets a new cap at ``at``: returns ``"restored"``, ``"exhausted"`` or None."""
    updated = replace(window, cap=cap)
    updated, lifted = _lift_if_under_cap(updated, at)
    if lifted:
        return updated, "restored"
    if (
        cap is not None
        and not updated.exhausted_to_reset
        and updated.consumed >= cap
        and updated.contains(at)
    ):
        return updated.start_exhaustion(at), "exhausted"
    return updated, None


def _lift_if_under_cap(window: Window, at: datetime) -> tuple[Window, bool]:
    under = window.cap is None or window.consumed < window.cap
    if window.exhausted_to_reset and under and at < window.resets_at:
        return window.end_exhaustion(max(at, window.exhaustions[-1].start)), True
    return window, False


def reset_if_due(window: Window, now: datetime) -> tuple[Window, bool]:
    """End an ongoing exhaustion at the window's reset once ``now`` has reached it."""
    if window.is_exhausted and window.resets_at <= now:
        return window.end_exhaustion(window.resets_at), True
    return window, False
