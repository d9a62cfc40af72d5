"""Plan limits a gateway enforces before serving: requests per minute and concurrency.

Seed 000: ZenMux "Rate Limit: 10–15 RPM"; seed 004: Lilac "Concurrency" 2 / 3 / 4 per plan.
The catalog carries both (``rpm`` for ZenMux plans, ``concurrency`` for every plan). The
generator's Poisson arrivals are the *offered* load: an arrival over the limit is answered
429 by the gateway and never published (a gateway publishes served requests only), and is
counted as throttled.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from billing.catalog.model import CatalogVersion
from schemas.subscriptions import PlanFamily

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class PlanLimits:
    rpm: int | None
    concurrency: int


def limits_of(version: CatalogVersion, family: PlanFamily, plan: str) -> PlanLimits:
    if family == "zenmux":
        zen = version.zenmux.plans[plan]
        return PlanLimits(zen.rpm, zen.concurrency)
    return PlanLimits(None, version.lilac.plans[plan].concurrency)


@dataclass
class Limiter:
    """One account's recent starts and in-flight completions."""

    starts: deque[datetime] = field(default_factory=deque)
    in_flight: list[datetime] = field(default_factory=list)

    def admit(self, limits: PlanLimits, started: datetime, completed: datetime) -> bool:
        """Serve a request over ``[started, completed)`` if the plan's limits allow it."""
        while self.starts and self.starts[0] <= started - MINUTE:
            self.starts.popleft()
        while self.in_flight and self.in_flight[0] <= started:
            heapq.heappop(self.in_flight)
        if limits.rpm is not None and len(self.starts) >= limits.rpm:
            return False
        if len(self.in_flight) >= limits.concurrency:
            return False
        self.starts.append(started)
        heapq.heappush(self.in_flight, completed)
        return True


UTILIZATION = 0.5
"""assumption: a busy account is offered at most half its capacity; Poisson bursts above it
are still throttled (Erlang: ~20% at concurrency 2), as a real gateway's busiest users are."""


def capacity(limits: PlanLimits, mean_latency_s: float) -> float:
    """Requests per second an account can be offered: ``UTILIZATION`` × the smaller of its RPM
    and what its concurrency sustains at the mean latency (Little's law)."""
    sustained = limits.concurrency / mean_latency_s
    if limits.rpm is not None:
        sustained = min(sustained, limits.rpm / 60)
    return UTILIZATION * sustained


def spread(rate: float, weights: list[float], capacities: list[float]) -> list[float]:
    """``rate`` shared by ``weights`` (water-filling): an account whose share would exceed its
    capacity gets its capacity, the rest is shared among the others. When every account is
    full the total falls short of ``rate`` (the population cannot carry it)."""
    rates = [0.0] * len(weights)
    active = set(range(len(weights)))
    remaining = rate
    while active and remaining > 0:
        mass = sum(weights[i] for i in active)
        full = sorted(i for i in active if remaining * weights[i] / mass >= capacities[i])
        if not full:
            for i in active:
                rates[i] = remaining * weights[i] / mass
            break
        for i in full:
            rates[i] = capacities[i]
            remaining -= capacities[i]
            active.discard(i)
    return rates
