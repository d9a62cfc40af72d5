"""``metering.routing`` (compacted): where the gateway must send an account's next request.

The latest record per ``account_id`` is the account's route; ``seq`` grows by one per change
so a gateway can ignore a stale record.
"""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Identifier, Timestamp

Route = Literal["subscription", "fallback", "blocked"]
RoutingReason = Literal[
    "started",
    "exhausted",
    "reset",
    "upgrade",
    "downgrade",
    "correction",
    "renewed",
    "canceled",
    "period_ended",
    "fallback_configured",
]


class RoutingState(Contract):
    """``until`` is when a fallback/blocked route is expected to end (a window's reset)."""

    schema_version: Literal[1]
    account_id: Identifier
    route: Route
    fallback_key_id: str | None
    until: Timestamp | None
    reason: RoutingReason
    seq: int
    at: Timestamp
