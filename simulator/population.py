"""Who sends traffic: accounts across both plan families and every catalog plan, with keys and a
skewed share of the request rate (a few accounts are busy, most are not).

Plans are the catalog's (ZenMux free / pro / max / ultra, Lilac basic / pro / max), shared out
by ``PLAN_WEIGHTS`` with largest-remainder rounding, every plan getting at least one account
when the family has as many accounts as plans. Which account gets which plan is shuffled by
the seed, so busyness and plan are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.catalog.model import CatalogVersion
from schemas.subscriptions import PlanFamily
from simulator.config import SimulationConfig
from simulator.seeding import stream

PLAN_WEIGHTS: dict[str, float] = {
    "zenmux/free": 0.3,
    "zenmux/pro": 0.4,
    "zenmux/max": 0.2,
    "zenmux/ultra": 0.1,
    "lilac/basic": 0.5,
    "lilac/pro": 0.35,
    "lilac/max": 0.15,
}
"""assumption: the seeds give no subscriber mix. A catalog plan missing here weighs 0.1."""


@dataclass(frozen=True, slots=True)
class Account:
    """One subscriber. ``rank`` 0 is the busiest; ``weight`` is its share of the total rate."""

    account_id: str
    rank: int
    family: PlanFamily
    plan: str
    weight: float
    subscription_key_id: str
    studio_key_id: str
    payg_key_id: str
    """The pay-as-you-go key: payg-mode requests, and the fallback (Extra Usage / credits)."""


@dataclass(frozen=True, slots=True)
class PlanBook:
    """The catalog's plans of both families, in rank order, with prices and allowed models."""

    version: CatalogVersion

    def plans(self, family: PlanFamily) -> list[str]:
        table = self.version.zenmux.plans if family == "zenmux" else self.version.lilac.plans
        return sorted(table, key=lambda name: table[name].rank)

    def price(self, family: PlanFamily, plan: str) -> Decimal:
        if family == "zenmux":
            return self.version.zenmux.plans[plan].price_usd
        return self.version.lilac.plans[plan].price_usd

    def allows(self, family: PlanFamily, plan: str, model: str) -> bool:
        if family == "zenmux":
            return model in self.version.zenmux.plans[plan].models
        return model in self.version.lilac.models

    def step(self, family: PlanFamily, plan: str, by: int) -> str | None:
        """The plan ``by`` ranks above (or below, if negative), or None past either end."""
        ordered = self.plans(family)
        index = ordered.index(plan) + by
        return ordered[index] if 0 <= index < len(ordered) else None


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """``total`` shared by ``weights`` (largest remainder), at least one each if there are enough."""
    names = list(weights)
    if total <= 0 or not names:
        return dict.fromkeys(names, 0)
    floor = 1 if total >= len(names) else 0
    spare = total - floor * len(names)
    mass = sum(weights.values()) or 1.0
    exact = {n: spare * weights[n] / mass for n in names}
    counts = {n: floor + int(exact[n]) for n in names}
    left = total - sum(counts.values())
    by_remainder = sorted(names, key=lambda n: (-(exact[n] - int(exact[n])), names.index(n)))
    for name in by_remainder[:left]:
        counts[name] += 1
    return counts


def build_population(config: SimulationConfig, book: PlanBook) -> tuple[Account, ...]:
    """The run's accounts, ``rank`` 0 first. Deterministic in (seed, accounts, mix, skew)."""
    rng = stream(config.seed, "population")
    zenmux = round(config.accounts * config.zenmux_share)
    if config.accounts >= 2 and 0 < config.zenmux_share < 1:
        zenmux = min(max(zenmux, 1), config.accounts - 1)
    slots: list[tuple[PlanFamily, str]] = []
    family: PlanFamily
    for family, size in (("zenmux", zenmux), ("lilac", config.accounts - zenmux)):
        weights = {p: PLAN_WEIGHTS.get(f"{family}/{p}", 0.1) for p in book.plans(family)}
        for plan, count in apportion(size, weights).items():
            slots += [(family, plan)] * count
    rng.shuffle(slots)
    raw = [1.0 / (rank + 1) ** config.skew for rank in range(config.accounts)]
    mass = sum(raw)
    width = max(4, len(str(config.accounts - 1)))
    tag = config.tag
    accounts = []
    for rank, (family, plan) in enumerate(slots):
        ident = f"{tag}_{rank:0{width}d}"
        accounts.append(
            Account(
                account_id=f"acct_{ident}",
                rank=rank,
                family=family,
                plan=plan,
                weight=raw[rank] / mass,
                subscription_key_id=f"key_{ident}_sub",
                studio_key_id=f"key_{ident}_studio",
                payg_key_id=f"key_{ident}_payg",
            )
        )
    return tuple(accounts)
