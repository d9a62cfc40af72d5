"""Each account's subscription over the run, as the billing system would publish it.

Every account starts with ``started`` (its period began up to 30 days before the run, so it
is active when the run starts and before its first request), optionally followed a minute
later by ``fallback_configured`` (seed 000 "Extra Usage"; seed 004 "fallback to credits").
During the run, shares of accounts (``LifecycleShares``) upgrade one plan up (takes effect at
once; ``paid_usd`` = the price difference, as in seed 004's example: Basic $10 → Pro for "an
extra $20"), schedule a downgrade (applies at the next renewal), switch the fallback, or
cancel; every period end inside the run is a ``renewed`` at the plan then in effect.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.subscriptions import (
    DowngradeScheduled,
    FallbackConfigured,
    SubscriptionCanceled,
    SubscriptionRenewed,
    SubscriptionStarted,
    SubscriptionUpgraded,
)
from simulator.clock import instant
from simulator.config import SimulationConfig
from simulator.events import LifecycleEvent
from simulator.population import Account, PlanBook
from simulator.seeding import stream

PERIOD = timedelta(days=30)
"""assumption: a monthly billing period of 30 days (Stripe's month varies; the core does not)."""
FALLBACK_DELAY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Timeline:
    """An account's lifecycle events in time order, and the plan in effect over time."""

    events: tuple[tuple[datetime, LifecycleEvent], ...]
    plans: tuple[tuple[datetime, str], ...]
    canceled_at: datetime | None

    def plan_at(self, at: datetime) -> str | None:
        """The plan serving a request that starts at ``at``; None outside the subscription."""
        if self.canceled_at is not None and at >= self.canceled_at:
            return None
        index = bisect_right([since for since, _ in self.plans], at)
        return self.plans[index - 1][1] if index else None


def build_timeline(account: Account, config: SimulationConfig, book: PlanBook) -> Timeline:
    """The account's lifecycle, from its own seeded stream (independent of other accounts)."""
    rng = stream(config.seed, "lifecycle", account.rank)
    shares = config.lifecycle
    start, end = config.start_utc, instant(config.start_utc, config.duration)
    family, aid = account.family, account.account_id
    # Draw every number up front, whatever is used: one share never shifts another's draws.
    u_in_run, u_offset, u_renew_at = rng.random(), rng.random(), rng.uniform(0.05, 0.95)
    u_fallback, u_change, u_change_at = rng.random(), rng.random(), rng.random()
    u_toggle, u_toggle_at = rng.random(), rng.random()
    u_cancel, u_cancel_at = rng.random(), rng.uniform(0.5, 1.0)

    span = PERIOD.total_seconds()
    if u_in_run < shares.renewal_in_run and config.duration * 0.95 < span:
        first_end = instant(start, config.duration * u_renew_at)
    else:  # the period began 1 hour to 30 days before the run
        first_end = instant(start, span - 3600 - u_offset * (span - 3600 - 60))
    period_start = first_end - PERIOD
    plan = account.plan
    events: list[tuple[datetime, LifecycleEvent]] = [
        (
            period_start,
            SubscriptionStarted(
                schema_version=1,
                account_id=aid,
                type="started",
                at=period_start,
                plan_family=family,
                plan=plan,
                period_start=period_start,
                period_end=first_end,
                paid_usd=book.price(family, plan),
            ),
        )
    ]
    fallback_on = u_fallback < (
        shares.zenmux_fallback if family == "zenmux" else shares.lilac_fallback
    )
    if fallback_on:
        events.append(_fallback(aid, period_start + FALLBACK_DELAY, True, account.payg_key_id))

    canceled_at = (
        instant(start, config.duration * u_cancel_at) if u_cancel < shares.cancel else None
    )
    stop = min(end, canceled_at) if canceled_at is not None else end
    plans = [(period_start, plan)]
    upgrade_to = book.step(family, plan, +1)
    downgrade_to = book.step(family, plan, -1)
    change_at = instant(start, config.duration * u_change_at)
    scheduled: tuple[datetime, str] | None = None
    if change_at < stop and u_change < shares.upgrade and upgrade_to is not None:
        paid = book.price(family, upgrade_to) - book.price(family, plan)
        events.append(
            (
                change_at,
                SubscriptionUpgraded(
                    schema_version=1,
                    account_id=aid,
                    type="upgraded",
                    at=change_at,
                    plan=upgrade_to,
                    paid_usd=paid,
                ),
            )
        )
        plans.append((change_at, upgrade_to))
    elif (
        change_at < stop
        and shares.upgrade <= u_change < shares.upgrade + shares.downgrade
        and downgrade_to is not None
    ):
        events.append(
            (
                change_at,
                DowngradeScheduled(
                    schema_version=1,
                    account_id=aid,
                    type="downgrade_scheduled",
                    at=change_at,
                    plan=downgrade_to,
                ),
            )
        )
        scheduled = (change_at, downgrade_to)

    toggle_at = instant(start, config.duration * u_toggle_at)
    if u_toggle < shares.fallback_toggle and toggle_at < stop:
        events.append(_fallback(aid, toggle_at, not fallback_on, account.payg_key_id))

    renewal = first_end
    while renewal < stop:
        if scheduled is not None and scheduled[0] < renewal:
            plans.append((renewal, scheduled[1]))
            scheduled = None
        current = max((p for p in plans if p[0] <= renewal), key=lambda p: p[0])[1]
        events.append(
            (
                renewal,
                SubscriptionRenewed(
                    schema_version=1,
                    account_id=aid,
                    type="renewed",
                    at=renewal,
                    period_start=renewal,
                    period_end=renewal + PERIOD,
                    paid_usd=book.price(family, current),
                ),
            )
        )
        renewal += PERIOD
    if canceled_at is not None and canceled_at < end:
        events.append(
            (
                canceled_at,
                SubscriptionCanceled(
                    schema_version=1, account_id=aid, type="canceled", at=canceled_at
                ),
            )
        )
    else:
        canceled_at = None
    events.sort(key=lambda item: item[0])  # stable: same-instant events keep their order
    plans.sort(key=lambda item: item[0])
    return Timeline(tuple(events), tuple(plans), canceled_at)


def _fallback(
    account_id: str, at: datetime, enabled: bool, key_id: str
) -> tuple[datetime, FallbackConfigured]:
    event = FallbackConfigured(
        schema_version=1,
        account_id=account_id,
        type="fallback_configured",
        at=at,
        enabled=enabled,
        fallback_key_id=key_id if enabled else None,
    )
    return at, event
