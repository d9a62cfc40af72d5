"""``catalog.discounts``: a model's live supply state (Lilac discount), keyed by ``model``."""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, ModelSlug, Timestamp

SupplyState = Literal["low", "medium", "high", "surplus"]


class DiscountChange(Contract):
    """From ``effective_at`` on, requests *starting* on ``model`` use this supply state."""

    schema_version: Literal[1]
    model: ModelSlug
    supply_state: SupplyState
    effective_at: Timestamp
