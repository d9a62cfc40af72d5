"""Subscription lifecycle: start, upgrade, scheduled downgrade, renewal, cancel, fallback.

Upgrades take effect at once (new caps on the windows active at ``at``, which may restore an
exhausted one); downgrades wait for the next renewal; a renewal opens a new billing period.
Every change re-derives the route.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from billing.account import AccountState
from billing.catalog.model import Catalog
from billing.clock import advance, unit_of
from billing.outputs import Emitted, Rejection, quota_event
from billing.policy import Policy
from billing.routing import publish
from billing.subscription import FallbackSetting, Term, caps, plan_rank, term_at
from billing.windows import WINDOW_ORDER, Window, recap, window_id
from schemas.quota import QuotaReason
from schemas.routing import RoutingReason
from schemas.subscriptions import (
    DowngradeScheduled,
    FallbackConfigured,
    SubscriptionCanceled,
    SubscriptionEvent,
    SubscriptionRenewed,
    SubscriptionStarted,
    SubscriptionUpgraded,
)


@dataclass(frozen=True, slots=True)
class Applied:
    state: AccountState
    emitted: list[Emitted]


def apply_subscription(
    state: AccountState | None, event: SubscriptionEvent, catalog: Catalog, policy: Policy
) -> Applied | Rejection:
    """Apply one lifecycle event to its account (creating the account on ``started``)."""
    version = catalog.at(event.at)
    if version is None:
        return Rejection("subscription_rejected", f"no catalog version is in effect at {event.at}")
    if state is None:
        if not isinstance(event, SubscriptionStarted):
            return Rejection("unknown_account", f"account {event.account_id} has no subscription")
        state = AccountState(
            account_id=event.account_id,
            family=event.plan_family,
            terms=(),
            scheduled_plan=None,
            fallback=(),
            windows=(),
            route=None,
            event_clock=event.at,
            now=event.at,
        )
    state, emitted = advance(state, event.at, policy, by_event=True)
    active = term_at(state.terms, event.at)
    family = event.plan_family if isinstance(event, SubscriptionStarted) else state.family
    if hasattr(event, "plan") and plan_rank(version, family, event.plan) is None:
        return Rejection(
            "subscription_rejected", f"plan {event.plan!r} is not a {family} plan in the catalog"
        )
    reason: RoutingReason
    match event:
        case SubscriptionStarted():
            if active is not None:
                return Rejection(
                    "subscription_rejected",
                    f"account {event.account_id} already has an active subscription",
                )
            term = Term(
                event.period_start, event.period_end, event.paid_usd, ((event.at, event.plan),)
            )
            state = replace(
                state, family=event.plan_family, terms=(*state.terms, term), scheduled_plan=None
            )
            state, changes = _open_period(state, term, catalog)
            reason = "started"
        case SubscriptionUpgraded():
            if active is None:
                return Rejection("subscription_rejected", "no active subscription to upgrade")
            current = plan_rank(version, family, active.plan_at(event.at))
            if current is not None and plan_rank(version, family, event.plan) <= current:  # type: ignore[operator]
                return Rejection(
                    "subscription_rejected",
                    f"{event.plan} is not an upgrade from {active.plan_at(event.at)}",
                )
            upgraded = active.with_plan(event.at, event.plan, event.paid_usd)
            state = _replace_term(state, active, upgraded)
            state = replace(state, scheduled_plan=None)
            state, changes = _recap(state, upgraded, event.at, catalog, "upgrade")
            reason = "upgrade"
        case DowngradeScheduled():
            if active is None:
                return Rejection("subscription_rejected", "no active subscription to downgrade")
            current = plan_rank(version, family, active.plan_at(event.at))
            if current is not None and plan_rank(version, family, event.plan) >= current:  # type: ignore[operator]
                return Rejection(
                    "subscription_rejected",
                    f"{event.plan} is not a downgrade from {active.plan_at(event.at)}",
                )
            return Applied(replace(state, scheduled_plan=event.plan), emitted)
        case SubscriptionRenewed():
            return _renew(state, event, catalog, emitted)
        case SubscriptionCanceled():
            if active is None:
                return Rejection("subscription_rejected", "no active subscription to cancel")
            state = _replace_term(state, active, replace(active, ended_at=event.at))
            changes = []
            reason = "canceled"
        case FallbackConfigured():
            setting = FallbackSetting(event.at, event.enabled, event.fallback_key_id)
            state = replace(state, fallback=(*state.fallback, setting))
            changes = []
            reason = "fallback_configured"
    state, routes = publish(state, state.now, reason)
    return Applied(state, emitted + changes + routes)


def _renew(
    state: AccountState, event: SubscriptionRenewed, catalog: Catalog, emitted: list[Emitted]
) -> Applied | Rejection:
    if not state.terms:
        return Rejection("subscription_rejected", "no subscription to renew")
    latest = state.terms[-1]
    if event.period_start <= latest.period_start:
        return Rejection(
            "subscription_rejected",
            f"renewal period starting {event.period_start} does not follow the current one",
        )
    plan = state.scheduled_plan or latest.plan
    term = Term(event.period_start, event.period_end, event.paid_usd, ((event.period_start, plan),))
    closed = replace(latest, period_end=min(latest.period_end, event.period_start))
    state = _replace_term(state, latest, closed)
    state = replace(state, terms=(*state.terms, term), scheduled_plan=None)
    changes: list[Emitted] = []
    windows = []
    previous_id = window_id(state.account_id, "period", latest.period_start)
    for window in state.windows:
        if window.window_id == previous_id and window.resets_at > event.period_start:
            window = replace(window, resets_at=event.period_start)
            if window.is_exhausted:
                ended = max(window.exhaustions[-1].start, event.period_start)
                window = window.end_exhaustion(ended)
                changes.append(
                    quota_event(
                        state.account_id, window, unit_of(state), "restored", "renewed", ended
                    )
                )
        windows.append(window)
    state = replace(state, windows=tuple(windows))
    state, opened = _open_period(state, term, catalog)
    state, recapped = _recap(state, term, event.at, catalog, "downgrade")
    state, routes = publish(state, state.now, "renewed")
    return Applied(state, emitted + changes + opened + recapped + routes)


def _replace_term(state: AccountState, old: Term, new: Term) -> AccountState:
    return replace(state, terms=tuple(new if t is old else t for t in state.terms))


def _open_period(
    state: AccountState, term: Term, catalog: Catalog
) -> tuple[AccountState, list[Emitted]]:
    """The billing period is a window too: capped at the included usage (ZenMux: catalog)."""
    version = catalog.at(term.period_start) or catalog.at(term.plans[0][0]) or catalog.latest
    cap = caps(version, state.family, term.plan, term.paid_usd)["period"]
    window = Window(
        kind="period",
        window_id=window_id(state.account_id, "period", term.period_start),
        opened_at=term.period_start,
        resets_at=term.period_end,
        cap=cap,
    )
    others = tuple(w for w in state.windows if w.window_id != window.window_id)
    ordered = tuple(sorted((*others, window), key=WINDOW_ORDER))
    return replace(state, windows=ordered), []


def _recap(
    state: AccountState, term: Term, at: datetime, catalog: Catalog, why: QuotaReason
) -> tuple[AccountState, list[Emitted]]:
    """New caps for every window active at ``at``; emits what that restores or exhausts."""
    version = catalog.at(at) or catalog.latest
    new_caps = caps(version, state.family, term.plan_at(at), term.paid_usd)
    windows = []
    emitted: list[Emitted] = []
    for window in state.windows:
        if window.contains(at) and (
            window.kind != "period" or window.opened_at == term.period_start
        ):
            window, change = recap(window, new_caps[window.kind], at)
            if change == "restored":
                reason: QuotaReason = "upgrade" if why == "upgrade" else "renewed"
                emitted.append(
                    quota_event(state.account_id, window, unit_of(state), "restored", reason, at)
                )
            elif change == "exhausted":
                emitted.append(
                    quota_event(state.account_id, window, unit_of(state), "exhausted", why, at)
                )
        windows.append(window)
    return replace(state, windows=tuple(windows)), emitted
