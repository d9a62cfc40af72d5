"""An account's subscription as effective-dated facts: billing terms, plans, fallback setting.

Kept as history (not just "the current plan") because a straggler is judged by the plan,
period and fallback setting in effect when it *started*.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from billing.catalog.model import CatalogVersion
from billing.money import rounded
from billing.windows import WindowKind
from schemas.subscriptions import PlanFamily


@dataclass(frozen=True, slots=True)
class Term:
    """One billing period ``[period_start, period_end)``, cut short by ``ended_at`` if canceled."""

    period_start: datetime
    period_end: datetime
    paid_usd: Decimal
    plans: tuple[tuple[datetime, str], ...]
    ended_at: datetime | None = None

    @property
    def end(self) -> datetime:
        return self.period_end if self.ended_at is None else min(self.period_end, self.ended_at)

    def active_at(self, instant: datetime) -> bool:
        return self.period_start <= instant < self.end

    def plan_at(self, instant: datetime) -> str:
        plan = self.plans[0][1]
        for since, name in self.plans:
            if since <= instant:
                plan = name
        return plan

    @property
    def plan(self) -> str:
        return self.plans[-1][1]

    def with_plan(self, at: datetime, plan: str, added_usd: Decimal) -> Term:
        return replace(self, plans=(*self.plans, (at, plan)), paid_usd=self.paid_usd + added_usd)


@dataclass(frozen=True, slots=True)
class FallbackSetting:
    since: datetime
    enabled: bool
    key_id: str | None


def term_at(terms: tuple[Term, ...], instant: datetime) -> Term | None:
    """The term active at ``instant`` (None before the subscription, after it ended)."""
    for term in reversed(terms):
        if term.active_at(instant):
            return term
    return None


def fallback_at(settings: tuple[FallbackSetting, ...], instant: datetime) -> FallbackSetting | None:
    """The fallback setting in effect at ``instant``; None (= disabled) before any."""
    current = None
    for setting in settings:
        if setting.since <= instant:
            current = setting
    return current


def caps(
    version: CatalogVersion, family: PlanFamily, plan: str, paid_usd: Decimal
) -> dict[WindowKind, Decimal | None]:
    """Each window's cap under ``plan``: Flows for ZenMux; for Lilac, shares of included usage.

    Lilac included usage = the plan's included-usage multiplier × everything paid this period
    (the seed's upgrade rule: Basic $10 + $20 upgrade to Pro → 2.5 × $30 = $75).
    """
    if family == "zenmux":
        zen = version.zenmux.plans[plan].caps
        return {"5h": zen.five_hour, "7d": zen.seven_day, "period": zen.period}
    included = version.lilac.plans[plan].included_multiplier * paid_usd
    shares = version.lilac.cap_shares
    return {
        "5h": rounded(included * shares.five_hour),
        "7d": rounded(included * shares.seven_day),
        "period": rounded(included * shares.period),
    }


def plan_rank(version: CatalogVersion, family: PlanFamily, plan: str) -> int | None:
    """The plan's rank in its family, or None if the catalog does not know it."""
    plans = version.zenmux.plans if family == "zenmux" else version.lilac.plans
    found = plans.get(plan)
    return None if found is None else found.rank


def allows_model(version: CatalogVersion, family: PlanFamily, plan: str, model: str) -> bool:
    if family == "zenmux":
        return model in version.zenmux.plans[plan].models
    return model in version.lilac.models
