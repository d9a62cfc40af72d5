"""Pacing maps simulated time to wall time: speed 1 real time, speed 10 ten times faster, 0
never waits; the preamble before the start is due at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulator.errors import SimulationConfigError
from simulator.pacing import Pacer
from tests.factories import T0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("speed", "offsets", "sleeps"),
    [
        (1.0, [0, 10, 10, 25], [10, 15]),
        (10.0, [0, 10, 30], [1, 2]),
        (0.0, [0, 10, 3600], []),
        (1.0, [-86_400, -60, 0, 5], [5]),  # lifecycle before the start: at once
    ],
)
async def test_events_are_released_at_their_paced_wall_time(
    speed: float, offsets: list[float], sleeps: list[float]
) -> None:
    clock = FakeClock()
    pacer = Pacer(T0, speed, clock=clock, sleep=clock.sleep)
    for offset in offsets:
        await pacer.wait_until(T0 + timedelta(seconds=offset))
    assert clock.slept == pytest.approx(sleeps)


async def test_a_late_sink_does_not_sleep_and_catches_up() -> None:
    clock = FakeClock()
    pacer = Pacer(T0, 1.0, clock=clock, sleep=clock.sleep)
    await pacer.wait_until(T0)
    clock.now += 30  # publishing stalled for 30 s
    await pacer.wait_until(T0 + timedelta(seconds=10))
    await pacer.wait_until(T0 + timedelta(seconds=40))
    assert clock.slept == pytest.approx([10])


def test_a_negative_speed_is_refused() -> None:
    with pytest.raises(SimulationConfigError, match="speed"):
        Pacer(T0, -1)
