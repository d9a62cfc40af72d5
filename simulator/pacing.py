"""Real-time pacing: simulated time → wall time, ``speed`` simulated seconds per wall second.

``speed`` 1 is real time, 10 is ten times faster, 0 is as fast as possible (never sleeps).
The first event paced fixes the wall origin; an event due at simulated ``at`` is released at
``origin + (at − start) / speed`` — events before ``start`` (the lifecycle preamble) at once.
The clock and the sleep are injectable, so the mapping is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from simulator.errors import SimulationConfigError


class Pacer:
    def __init__(
        self,
        start: datetime,
        speed: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not speed >= 0:
            raise SimulationConfigError(f"speed must be zero or positive (got {speed})")
        self.start = start
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: float | None = None

    def due(self, at: datetime) -> float:
        """The wall-clock instant (of ``clock``) at which ``at`` is due."""
        if self._origin is None:
            self._origin = self._clock()
        return self._origin + max(0.0, (at - self.start).total_seconds()) / self.speed

    async def wait_until(self, at: datetime) -> None:
        """Sleep until ``at`` is due; returns at once at speed 0 or when already late."""
        if self.speed == 0:
            return
        due = self.due(at)
        now = self._clock()
        if due > now:
            await self._sleep(due - now)
