"""The live per-model discount as an effective-dated timeline.

A request pays the multiplier of the supply state in effect at its ``started_at``, whenever
the change itself arrives: the timeline is ordered by ``effective_at``, not by arrival.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.discounts import SupplyState


@dataclass(frozen=True, slots=True)
class DiscountPoint:
    effective_at: datetime
    supply_state: SupplyState


@dataclass(frozen=True, slots=True)
class DiscountTimeline:
    """One model's supply states, sorted by ``effective_at``."""

    points: tuple[DiscountPoint, ...] = ()

    def at(self, instant: datetime) -> DiscountPoint | None:
        """The point in effect at ``instant``; None when no change is known before it."""
        index = bisect_right([p.effective_at for p in self.points], instant)
        return self.points[index - 1] if index else None

    def with_point(self, point: DiscountPoint, keep: timedelta) -> DiscountTimeline | None:
        """Add ``point``; None if another state is already recorded at the same instant.

        Points older than ``keep`` before the newest one are dropped, except the last of
        them, which still prices requests that started after it.
        """
        existing = {p.effective_at: p for p in self.points}
        same = existing.get(point.effective_at)
        if same is not None:
            return self if same == point else None
        points = list(self.points)
        insort(points, point, key=lambda p: p.effective_at)
        horizon = points[-1].effective_at - keep
        first_kept = max(0, bisect_right([p.effective_at for p in points], horizon) - 1)
        return DiscountTimeline(tuple(points[first_kept:]))
