"""``accounts.subscriptions``: an account's subscription lifecycle, keyed by ``account_id``.

One discriminated union on ``type``; every event carries the instant ``at`` it takes effect.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, TypeAdapter, model_validator

from schemas.base import Contract, Identifier, NonNegativeMoney, Timestamp

PlanFamily = Literal["zenmux", "lilac"]


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


PlanName = Annotated[
    str,
    BeforeValidator(_lower),
    Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$"),
]
"""A catalog plan name; the SPEC writes them capitalised ("Pro"), the catalog in lower case."""


class _SubscriptionEvent(Contract):
    schema_version: Literal[1]
    account_id: Identifier
    at: Timestamp


class _Period(_SubscriptionEvent):
    period_start: Timestamp
    period_end: Timestamp

    @model_validator(mode="after")
    def _period_is_forward(self) -> Self:
        if self.period_end <= self.period_start:
            raise ValueError("period_end is not after period_start")
        return self


class SubscriptionStarted(_Period):
    """A new subscription; ``paid_usd`` is what was paid for this first period."""

    type: Literal["started"]
    plan_family: PlanFamily
    plan: PlanName
    paid_usd: NonNegativeMoney


class SubscriptionUpgraded(_SubscriptionEvent):
    """Takes effect at ``at``; ``paid_usd`` is the pro-rated amount added this period."""

    type: Literal["upgraded"]
    plan: PlanName
    paid_usd: NonNegativeMoney


class DowngradeScheduled(_SubscriptionEvent):
    """The plan the account moves to at its next renewal."""

    type: Literal["downgrade_scheduled"]
    plan: PlanName


class SubscriptionRenewed(_Period):
    """A new billing period; ``paid_usd`` is what was paid for it."""

    type: Literal["renewed"]
    paid_usd: NonNegativeMoney


class SubscriptionCanceled(_SubscriptionEvent):
    """The subscription ends at ``at``; later requests are not subscription-funded."""

    type: Literal["canceled"]


class FallbackConfigured(_SubscriptionEvent):
    """Extra Usage (ZenMux) / fallback to credits (Lilac) switched on or off at ``at``."""

    type: Literal["fallback_configured"]
    enabled: bool
    fallback_key_id: Identifier | None = None

    @model_validator(mode="after")
    def _key_when_enabled(self) -> Self:
        if self.enabled and self.fallback_key_id is None:
            raise ValueError("fallback_key_id is required when fallback is enabled")
        return self


SubscriptionEvent = Annotated[
    SubscriptionStarted
    | SubscriptionUpgraded
    | DowngradeScheduled
    | SubscriptionRenewed
    | SubscriptionCanceled
    | FallbackConfigured,
    Field(discriminator="type"),
]

subscription_event_adapter: TypeAdapter[SubscriptionEvent] = TypeAdapter(SubscriptionEvent)
