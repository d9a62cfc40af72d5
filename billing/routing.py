"""Where an account's traffic must go, derived from its windows and subscription at an instant.

subscription — an active term and no exhausted window; fallback — otherwise, if the account
configured a pay-as-you-go / credits key; blocked — otherwise, ``until`` the latest reset of
the exhausted windows (None when there is no active subscription at all).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from billing.account import AccountState, PublishedRoute
from billing.outputs import Emitted
from billing.subscription import fallback_at, term_at
from schemas import topics
from schemas.routing import Route, RoutingReason, RoutingState


def derive(state: AccountState, at: datetime) -> tuple[Route, str | None, datetime | None]:
    """The route in effect at ``at``: (route, fallback key, until)."""
    term = term_at(state.terms, at)
    if term is None:
        until = None
    else:
        exhausted = [w.resets_at for w in state.windows if w.contains(at) and w.exhausted_at(at)]
        if not exhausted:
            return "subscription", None, None
        until = max(exhausted)
    setting = fallback_at(state.fallback, at)
    if setting is not None and setting.enabled:
        return "fallback", setting.key_id, until
    return "blocked", None, until


def publish(
    state: AccountState, at: datetime, reason: RoutingReason
) -> tuple[AccountState, list[Emitted]]:
    """Emit a routing state if the route at ``at`` differs from the last one published."""
    route, key, until = derive(state, at)
    last = state.route
    if last is not None and (last.route, last.fallback_key_id, last.until) == (route, key, until):
        return state, []
    seq = 1 if last is None else last.seq + 1
    record = RoutingState(
        schema_version=1,
        account_id=state.account_id,
        route=route,
        fallback_key_id=key,
        until=until,
        reason=reason,
        seq=seq,
        at=at,
    )
    published = PublishedRoute(route, key, until, seq)
    return replace(state, route=published), [Emitted(topics.ROUTING, state.account_id, record)]
