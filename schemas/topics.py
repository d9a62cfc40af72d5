"""Topic names (without the configurable prefix) and the contract each one carries."""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from schemas.adjustments import Adjustment
from schemas.discounts import DiscountChange
from schemas.dlq import DeadLetter
from schemas.ledger import LedgerEntry
from schemas.quota import QuotaEvent
from schemas.requests import GatewayRequest
from schemas.routing import RoutingState
from schemas.subscriptions import subscription_event_adapter
from schemas.ticks import Tick

REQUESTS: Final = "gateway.requests"
DISCOUNTS: Final = "catalog.discounts"
SUBSCRIPTIONS: Final = "accounts.subscriptions"
ADJUSTMENTS: Final = "accounts.adjustments"
LEDGER: Final = "metering.ledger"
QUOTA: Final = "metering.quota"
ROUTING: Final = "metering.routing"
DLQ: Final = "metering.dlq"
TICKS: Final = "metering.ticks"

INPUT_TOPICS: Final = (REQUESTS, DISCOUNTS, SUBSCRIPTIONS, ADJUSTMENTS)
OUTPUT_TOPICS: Final = (LEDGER, QUOTA, ROUTING, DLQ)
SAME_INSTANT_ORDER: Final = (SUBSCRIPTIONS, DISCOUNTS, REQUESTS, ADJUSTMENTS)
"""Inputs stamped at one instant are applied in this order — lifecycle and prices before the
traffic they govern, corrections last — by the replay of the topics and the live worker alike."""

CONTRACTS: Final[dict[str, TypeAdapter[Any]]] = {
    REQUESTS: TypeAdapter(GatewayRequest),
    DISCOUNTS: TypeAdapter(DiscountChange),
    SUBSCRIPTIONS: subscription_event_adapter,
    ADJUSTMENTS: TypeAdapter(Adjustment),
    TICKS: TypeAdapter(Tick),
    LEDGER: TypeAdapter(LedgerEntry),
    QUOTA: TypeAdapter(QuotaEvent),
    ROUTING: TypeAdapter(RoutingState),
    DLQ: TypeAdapter(DeadLetter),
}
"""The one contract per topic: inputs are validated with it, outputs serialised with it."""
