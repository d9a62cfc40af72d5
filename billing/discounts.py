"""The live per-model discount as an effective-dated timeline.

A request pays the multiplier of the supply state in effect at its ``started_at``, whenever
the change itself arrives: the timeline is ordered by ``effective_at``, not by arrival.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from schemas.discounts import SupplyState


@dataclass(frozen=True, slots=True)
class DiscountPoint:
    effective_at: datetime
    supply_state: SupplyState


_EFFECTIVE_AT = attrgetter("effective_at")
"""The timeline's sort key, in C (``bisect`` calls it for every probe)."""


@dataclass(frozen=True, slots=True)
class DiscountTimeline:
    """One model's supply states, sorted by ``effective_at``."""

    points: tuple[DiscountPoint, ...] = ()

    def at(self, instant: datetime) -> DiscountPoint | None:
        """The point in effect at ``instant``; None when no change is known before it.

        Binary search on the points themselves: a month of live discounts is thousands of
        points, and every Lilac subscription charge looks one up."""
        index = bisect_right(self.points, instant, key=_EFFECTIVE_AT)
        return self.points[index - 1] if index else None

    def with_point(self, point: DiscountPoint, keep: timedelta) -> DiscountTimeline | None:
        """Add ``point``; None if another state is already recorded at the same instant.

        Points older than ``keep`` before the newest one are dropped, except the last of
        them, which still prices requests that started after it.
        """
        index = bisect_left(self.points, point.effective_at, key=_EFFECTIVE_AT)
        if index < len(self.points) and self.points[index].effective_at == point.effective_at:
            return self if self.points[index] == point else None
        points = [*self.points[:index], point, *self.points[index:]]
        horizon = points[-1].effective_at - keep
        first_kept = max(0, bisect_right(points, horizon, key=_EFFECTIVE_AT) - 1)
        return DiscountTimeline(tuple(points[first_kept:]))
