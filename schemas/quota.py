"""``metering.quota``: a window became exhausted or was restored, keyed by ``account_id``."""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Identifier, Money, Timestamp
from schemas.ledger import Unit

WindowKind = Literal["5h", "7d", "period"]
QuotaEventType = Literal["exhausted", "restored"]
QuotaReason = Literal["cap_reached", "downgrade", "reset", "upgrade", "correction", "renewed"]


class QuotaEvent(Contract):
    """The window's state at the instant ``at`` of the change; ``event_id`` is deterministic."""

    schema_version: Literal[1]
    event_id: str
    account_id: Identifier
    type: QuotaEventType
    window_kind: WindowKind
    window_id: str
    opened_at: Timestamp
    resets_at: Timestamp
    consumed: Money
    cap: Money
    unit: Unit
    reason: QuotaReason
    at: Timestamp
