"""Plan limits: how the rate is spread under capacities, and what the gateway throttles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.limits import Limiter, PlanLimits, capacity, spread

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rate", "weights", "capacities", "expected"),
    [
        (1.0, [0.5, 0.5], [10.0, 10.0], [0.5, 0.5]),  # nobody full: by weight
        (1.0, [0.8, 0.2], [0.5, 10.0], [0.5, 0.5]),  # the busy one full: the rest moves
        (1.0, [0.6, 0.3, 0.1], [0.2, 0.2, 10.0], [0.2, 0.2, 0.6]),
        (1.0, [0.5, 0.5], [0.1, 0.2], [0.1, 0.2]),  # everyone full: the total falls short
    ],
)
def test_spread(
    rate: float, weights: list[float], capacities: list[float], expected: list[float]
) -> None:
    assert spread(rate, weights, capacities) == pytest.approx(expected)


def test_capacity_is_the_smaller_of_rpm_and_what_concurrency_sustains() -> None:
    # 2 in flight at 10 s each sustain 0.2/s; 15 RPM is 0.25/s; offered at half of it
    assert capacity(PlanLimits(rpm=15, concurrency=2), 10.0) == pytest.approx(0.1)
    assert capacity(PlanLimits(rpm=6, concurrency=4), 1.0) == pytest.approx(0.05)
    assert capacity(PlanLimits(rpm=None, concurrency=3), 30.0) == pytest.approx(0.05)


def test_the_limiter_throttles_over_concurrency_until_a_request_completes() -> None:
    limiter = Limiter()
    limits = PlanLimits(rpm=None, concurrency=2)
    long = timedelta(seconds=60)
    assert limiter.admit(limits, T0, T0 + long)
    assert limiter.admit(limits, T0 + timedelta(seconds=1), T0 + long)
    assert not limiter.admit(limits, T0 + timedelta(seconds=2), T0 + long)
    assert limiter.admit(limits, T0 + long, T0 + 2 * long)  # the first two completed


def test_the_limiter_throttles_over_rpm_within_a_rolling_minute() -> None:
    limiter = Limiter()
    limits = PlanLimits(rpm=3, concurrency=100)
    quick = timedelta(milliseconds=10)
    for second in range(3):
        start = T0 + timedelta(seconds=second)
        assert limiter.admit(limits, start, start + quick)
    assert not limiter.admit(limits, T0 + timedelta(seconds=59), T0 + timedelta(seconds=60))
    assert limiter.admit(limits, T0 + timedelta(seconds=60), T0 + timedelta(seconds=61))
