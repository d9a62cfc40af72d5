"""What the simulator emits: contract models (or, for injected faults, raw bytes) and where each
goes — its topic (without prefix), its Kafka key, its kind and its event time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.events import key_for, topic_for
from schemas.discounts import DiscountChange
from schemas.requests import GatewayRequest
from schemas.subscriptions import (
    DowngradeScheduled,
    FallbackConfigured,
    SubscriptionCanceled,
    SubscriptionRenewed,
    SubscriptionStarted,
    SubscriptionUpgraded,
)

LifecycleEvent = (
    SubscriptionStarted
    | SubscriptionUpgraded
    | DowngradeScheduled
    | SubscriptionRenewed
    | SubscriptionCanceled
    | FallbackConfigured
)
Event = GatewayRequest | DiscountChange | LifecycleEvent

Fault = Literal["duplicate", "straggler", "malformed"]


def topic_of(event: Event) -> str:
    """The contract topic (no prefix) that carries ``event``: the gateway SDK's rule."""
    return topic_for(type(event).model_fields)


def key_of(event: Event) -> str:
    """The Kafka key: the account, or the model for a discount (the gateway SDK's rule)."""
    return key_for(event)


def kind_of(event: Event) -> str:
    """``request``, ``discount``, or the lifecycle ``type`` (``started``, ``upgraded`` …)."""
    if isinstance(event, GatewayRequest):
        return "request"
    if isinstance(event, DiscountChange):
        return "discount"
    return event.type


def event_time(event: Event) -> datetime:
    """When it happened as the billing core sees it: a request at completion (a gateway
    publishes a request once served), a discount at ``effective_at``, lifecycle at ``at``."""
    if isinstance(event, GatewayRequest):
        return event.completed_at
    if isinstance(event, DiscountChange):
        return event.effective_at
    return event.at


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record handed to a sink at simulated instant ``at`` (non-decreasing in a stream).

    ``value`` is a contract model, or ``bytes`` for a malformed payload (always destined for
    ``gateway.requests``). ``fault`` says what was injected: a ``duplicate`` re-delivery, a
    ``straggler`` (delivered late; its own times unchanged) or a ``malformed`` payload.
    """

    at: datetime
    value: Event | bytes
    topic: str
    key: str
    fault: Fault | None = None

    @classmethod
    def of(cls, at: datetime, event: Event, fault: Fault | None = None) -> Delivery:
        return cls(at, event, topic_of(event), key_of(event), fault)

    @property
    def kind(self) -> str:
        return "malformed" if isinstance(self.value, bytes) else kind_of(self.value)

    def payload(self) -> bytes:
        """The exact bytes a sink writes as the record's value."""
        if isinstance(self.value, bytes):
            return self.value
        return self.value.model_dump_json().encode("utf-8")
