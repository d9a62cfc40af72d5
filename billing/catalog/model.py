"""Typed shape of the catalog file, validated at load so a broken catalog never reaches billing."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("write decimal amounts as quoted strings (e.g. '1.75'), never as floats")
    return value


Exact = BeforeValidator(_no_float)
Amount = Annotated[Decimal, Exact, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[Decimal, Exact, Field(gt=0, le=1, allow_inf_nan=False)]
Positive = Annotated[Decimal, Exact, Field(gt=0, allow_inf_nan=False)]
WindowKind = Literal["5h", "7d"]
SupplyState = Literal["low", "medium", "high", "surplus"]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (use Z for UTC)")
    return value.astimezone(UTC)


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPrice(_Entry):
    """List prices: USD per 1M tokens (input, cached input, output), per image, per request."""

    input: Amount
    cached_input: Amount = Decimal(0)
    output: Amount
    image: Amount = Decimal(0)
    request: Amount = Decimal(0)
    assumption: str | None = None


class FlowFormula(_Entry):
    """``flows = list_cost_usd / usd_per_flow + flows_per_request`` (ZenMux)."""

    usd_per_flow: Positive
    flows_per_request: Amount
    assumption: str | None = None


class ZenmuxCaps(_Entry):
    """Flows per window; ``period`` = None means the billing period has no cap of its own."""

    five_hour: Amount = Field(alias="5h")
    seven_day: Amount = Field(alias="7d")
    period: Amount | None = None


class ZenmuxPlan(_Entry):
    """A Builder Plan: price, caps in Flows, rate limit and the models it allows."""

    rank: int
    price_usd: Amount
    caps: ZenmuxCaps
    rpm: int
    concurrency: int = 2
    models: frozenset[str]
    assumption: str | None = None


class LilacPlan(_Entry):
    """A Lilac plan: included usage = ``included_multiplier`` × what was paid this period."""

    rank: int
    price_usd: Amount
    included_multiplier: Positive
    concurrency: int


class LilacCapShares(_Entry):
    """Each window's cap as a share of the period's included usage."""

    five_hour: Share = Field(alias="5h")
    seven_day: Share = Field(alias="7d")
    period: Share


class LilacFamily(_Entry):
    cap_shares: LilacCapShares
    plans: dict[str, LilacPlan]
    models: frozenset[str]
    assumption: str | None = None


class ZenmuxFamily(_Entry):
    flow: FlowFormula
    plans: dict[str, ZenmuxPlan]


class CatalogVersion(_Entry):
    """Everything needed to price a request that starts at or after ``effective_from``."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    effective_from: Annotated[datetime, AfterValidator(_aware)]
    window_seconds: dict[WindowKind, Annotated[int, Field(gt=0)]]
    supply_multipliers: dict[SupplyState, Share]
    default_supply_state: SupplyState
    default_supply_assumption: str | None = None
    models: dict[str, ModelPrice]
    zenmux: ZenmuxFamily
    lilac: LilacFamily

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if set(self.window_seconds) != {"5h", "7d"}:
            raise ValueError("window_seconds must give exactly 5h and 7d")
        if set(self.supply_multipliers) != {"low", "medium", "high", "surplus"}:
            raise ValueError("supply_multipliers must give low, medium, high and surplus")
        for family, plans in (("zenmux", self.zenmux.plans), ("lilac", self.lilac.plans)):
            ranks = [p.rank for p in plans.values()]
            if len(set(ranks)) != len(ranks):
                raise ValueError(f"{family} plans must have distinct ranks")
        for name, plan in self.zenmux.plans.items():
            unknown = sorted(plan.models - self.models.keys())
            if unknown:
                raise ValueError(f"zenmux plan {name} allows models without a price: {unknown}")
        unknown = sorted(self.lilac.models - self.models.keys())
        if unknown:
            raise ValueError(f"lilac allows models without a price: {unknown}")
        return self

    def window_length(self, kind: WindowKind) -> timedelta:
        return timedelta(seconds=self.window_seconds[kind])

    def multiplier(self, state: SupplyState) -> Decimal:
        return self.supply_multipliers[state]


class Catalog:
    """All catalog versions, ordered by ``effective_from``; looked up by a request's start."""

    def __init__(self, versions: list[CatalogVersion], source: str) -> None:
        self.versions = sorted(versions, key=lambda v: v.effective_from)
        self.source = source
        self._starts = [v.effective_from for v in self.versions]

    def at(self, instant: datetime) -> CatalogVersion | None:
        """The version in effect at ``instant``, or None before the first one."""
        index = bisect_right(self._starts, instant)
        return self.versions[index - 1] if index else None

    @property
    def latest(self) -> CatalogVersion:
        return self.versions[-1]
