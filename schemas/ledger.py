"""``metering.ledger``: immutable ledger entries, keyed by ``account_id``.

Each entry records what it was computed from (catalog version, multiplier, supply state and
the discount's effective time, the windows debited) so an audit reproduces it without guessing.
``entry_id`` is a pure function of the account and the request (or adjustment) id, so a
re-delivered input re-emits the identical entry and every consumer can dedup on it.
"""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Count, Identifier, ModelSlug, Money, Timestamp
from schemas.discounts import SupplyState
from schemas.requests import BillingMode, Channel, RequestStatus
from schemas.subscriptions import PlanFamily

EntryKind = Literal["charge", "adjustment"]
Funding = Literal["subscription", "payg", "unfunded"]
Unit = Literal["flows", "usd"]


class LedgerEntry(Contract):
    """One charge (or one correction of a charge) of one request."""

    schema_version: Literal[1]
    entry_id: str
    kind: EntryKind
    account_id: Identifier
    request_id: Identifier
    api_key_id: Identifier
    model: ModelSlug
    channel: Channel
    billing_mode: BillingMode
    status: RequestStatus
    started_at: Timestamp
    completed_at: Timestamp
    input_tokens: Count
    cached_input_tokens: Count
    output_tokens: Count
    images: Count
    plan_family: PlanFamily
    plan: str | None
    funding: Funding
    fallback_key_id: str | None
    list_cost_usd: Money
    multiplier: Money
    supply_state: SupplyState | None
    discount_effective_at: Timestamp | None
    catalog_version: str
    flows: Money
    charge_usd: Money
    debit: Money
    unit: Unit
    window_5h_id: str | None
    window_7d_id: str | None
    period_id: str | None
    overshoot: Money
    late: bool
    adjusts_entry_id: str | None
    reason: str | None
    source_topic: str
    source_partition: int
    source_offset: int
