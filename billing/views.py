"""Read-only views a gateway or a user asks for: live supply status, an account's usage.

Pure functions of state and an instant (the shell passes its clock in).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.account import AccountState
from billing.catalog.model import CatalogVersion
from billing.discounts import DiscountTimeline
from billing.routing import derive
from schemas.base import format_timestamp

HUNDRED = Decimal(100)


def supply_status(
    version: CatalogVersion, timelines: Mapping[str, DiscountTimeline], now: datetime
) -> dict[str, Any]:
    """Lilac's public ``GET /status``: every model's supply state, discount and multiplier."""
    models: dict[str, Any] = {}
    updated: datetime | None = None
    for model in sorted(version.lilac.models):
        timeline = timelines.get(model)
        point = timeline.at(now) if timeline is not None else None
        state = point.supply_state if point is not None else version.default_supply_state
        multiplier = version.multiplier(state)
        models[model] = {
            "current_subscription_supply_state": state,
            "current_subscription_discount_percent": format(
                ((1 - multiplier) * HUNDRED).normalize(), "f"
            ),
            "current_subscription_credit_multiplier": format(multiplier, "f"),
        }
        if point is not None and (updated is None or point.effective_at > updated):
            updated = point.effective_at
    return {
        "current_subscription_supply_updated_at": None
        if updated is None
        else format_timestamp(updated),
        "models": models,
    }


def account_usage(state: AccountState, now: datetime) -> dict[str, Any]:
    """Each active window's consumption against its cap, and the route in effect ``now``."""
    route, key, until = derive(state, now)
    windows = []
    for window in state.windows:
        if not window.contains(now):
            continue
        remaining = None if window.cap is None else max(Decimal(0), window.cap - window.consumed)
        windows.append(
            {
                "kind": window.kind,
                "window_id": window.window_id,
                "consumed": format(window.consumed, "f"),
                "cap": None if window.cap is None else format(window.cap, "f"),
                "remaining": None if remaining is None else format(remaining, "f"),
                "opened_at": format_timestamp(window.opened_at),
                "resets_at": format_timestamp(window.resets_at),
                "exhausted": window.exhausted_at(now),
            }
        )
    return {
        "account_id": state.account_id,
        "plan_family": state.family,
        "unit": "flows" if state.family == "zenmux" else "usd",
        "route": {
            "route": route,
            "fallback_key_id": key,
            "until": None if until is None else format_timestamp(until),
        },
        "windows": windows,
    }
