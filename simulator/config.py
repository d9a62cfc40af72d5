"""What a simulation run is: one frozen config; with the catalog, it fixes every event exactly.

Shares and rates are plain floats: they shape randomness, they are never money. Every amount
the simulator writes (``paid_usd``) comes from the catalog as a ``Decimal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulator.errors import SimulationConfigError
from simulator.seeding import run_tag

DEFAULT_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
"""A Monday 09:00 UTC (the tests' ``T0``): a fixed instant, so runs are reproducible."""

MAX_ACCOUNTS = 100_000
SHARES = ("zenmux_share", "payg_share", "duplicate_rate", "straggler_rate", "malformed_rate")
FLOATS = ("rate", "duration", "skew", "discount_interval", *SHARES)


@dataclass(frozen=True, slots=True)
class LifecycleShares:
    """Shares of accounts that see each subscription change during a run (assumptions: the
    seeds describe what can happen — upgrades, Extra Usage / credits fallback switched on and
    off, renewals — never how often)."""

    zenmux_fallback: float = 0.5
    """ZenMux accounts with Extra Usage (a pay-as-you-go fallback key) on from the start."""
    lilac_fallback: float = 0.3
    """Lilac accounts whose key falls back to credits from the start."""
    upgrade: float = 0.15
    """Upgrade one plan up at a random instant of the run (takes effect at once)."""
    downgrade: float = 0.05
    """Schedule a downgrade one plan down (takes effect at the next renewal)."""
    fallback_toggle: float = 0.2
    """Switch the fallback on (if off) or off (if on) once during the run."""
    cancel: float = 0.02
    """Cancel in the second half of the run; the account sends nothing afterwards."""
    renewal_in_run: float = 0.1
    """Accounts whose billing period is placed to renew inside the run (the others renew when
    their period, started up to 30 days before the run, comes round)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            _share(f"lifecycle.{name}", getattr(self, name))
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """A run: who, how much, for how long, from when, and which faults to inject."""

    seed: int = 7
    accounts: int = 100
    rate: float = 1.0
    """Total requests per second of simulated time offered by all accounts together."""
    duration: float = 600.0
    """Seconds of simulated time in which requests start."""
    start: datetime = DEFAULT_START
    zenmux_share: float = 0.5
    """Families mix: the share of accounts on ZenMux; the rest are on Lilac."""
    payg_share: float = 0.05
    """Share of requests sent in ``payg`` billing mode (Studio's per-conversation choice)."""
    duplicate_rate: float = 0.0
    """Share of requests delivered twice (at-least-once delivery)."""
    straggler_rate: float = 0.0
    """Share of requests delivered late (1-15 minutes), after later ones."""
    malformed_rate: float = 0.0
    """Broken payloads injected per request (invalid JSON or a missing field)."""
    skew: float = 1.0
    """Zipf exponent of the per-account request rate: account k gets ∝ 1/k^skew."""
    discount_interval: float = 600.0
    """Mean seconds of simulated time between two live supply-state changes."""
    plan_limits: bool = True
    """Enforce each plan's RPM and concurrency (catalog) like a gateway: off for load tests
    that must reach ``rate`` whatever the population can carry."""
    lifecycle: LifecycleShares = field(default_factory=LifecycleShares)

    def __post_init__(self) -> None:
        # ``1`` and ``1.0`` are one run: the same floats give the same ``repr``, hence tag.
        for name in FLOATS:
            object.__setattr__(self, name, float(getattr(self, name)))
        if not 1 <= self.accounts <= MAX_ACCOUNTS:
            raise SimulationConfigError(
                f"accounts must be between 1 and {MAX_ACCOUNTS} (got {self.accounts})"
            )
        for name in ("rate", "duration", "discount_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise SimulationConfigError(f"{name} must be a positive number (got {value})")
        if not math.isfinite(self.skew) or self.skew < 0:
            raise SimulationConfigError(f"skew must be zero or positive (got {self.skew})")
        for name in SHARES:
            _share(name, getattr(self, name))
        if self.start.tzinfo is None:
            raise SimulationConfigError("start must carry a timezone (e.g. 2026-11-02T09:00:00Z)")

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def tag(self) -> str:
        """The run's id prefix: a function of everything that shapes the clean traffic.

        Fault rates are left out on purpose: the same traffic with and without faults has the
        same ids, so a faulted run can be compared with its clean twin event for event.
        """
        return run_tag(
            self.seed,
            self.accounts,
            self.rate,
            self.duration,
            self.start_utc.isoformat(),
            self.zenmux_share,
            self.payg_share,
            self.skew,
            self.discount_interval,
            self.plan_limits,
            self.lifecycle,
        )


def _share(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise SimulationConfigError(f"{name} must be between 0 and 1 (got {value})")
