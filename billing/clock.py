"""Time passing for one account: resets and term ends that fall due, in time order.

Called with the time of each of the account's records (``by_event``) and with ticks. Both
paths run the same code, so a restore is identical whether a tick or the next request
triggered it. Pruning depends only on ``event_clock``, never on ticks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from operator import attrgetter

from billing.account import AccountState
from billing.outputs import Emitted, quota_event
from billing.policy import Policy
from billing.routing import publish
from billing.windows import reset_if_due
from schemas.ledger import Unit
from schemas.routing import RoutingReason

_RESETS_AT = attrgetter("resets_at")


def unit_of(state: AccountState) -> Unit:
    return "flows" if state.family == "zenmux" else "usd"


def advance(
    state: AccountState, to: datetime, policy: Policy, *, by_event: bool
) -> tuple[AccountState, list[Emitted]]:
    """Apply everything due at or before ``to`` and move the clocks forward.

    What is due first is exactly ``AccountState.next_deadline`` when that is at or before ``to``; most
    records have nothing due, and then only the clocks move.
    """
    emitted: list[Emitted] = []
    while (instant := state.next_deadline()) is not None and instant <= to:
        state, changes = _apply_due(state, instant)
        emitted += changes
    now = max(state.now, to)
    event_clock = max(state.event_clock, to) if by_event else state.event_clock
    if now != state.now or event_clock != state.event_clock:
        state = state.with_clocks(now, event_clock)
    return _pruned(state, policy), emitted


def _apply_due(state: AccountState, instant: datetime) -> tuple[AccountState, list[Emitted]]:
    """Reset the exhausted windows due at ``instant``, end the terms ending then, re-route."""
    emitted: list[Emitted] = []
    windows = []
    reset_any = False
    for window in state.windows:
        window, was_reset = reset_if_due(window, instant)
        if was_reset:
            reset_any = True
            emitted.append(
                quota_event(state.account_id, window, unit_of(state), "restored", "reset", instant)
            )
        windows.append(window)
    state = replace(state, windows=tuple(windows), now=max(state.now, instant))
    ended = [t for t in state.terms if t.end == instant]
    reason: RoutingReason = "period_ended"
    if reset_any:
        reason = "reset"
    elif ended and ended[0].ended_at is not None:
        reason = "canceled"
    # Routed as of the account's clock, not the reset: a straggler can make an old window
    # fall due after later ones were exhausted, and the route must not go back in time.
    state, routes = publish(state, state.now, reason)
    return state, emitted + routes


def _pruned(state: AccountState, policy: Policy) -> AccountState:
    """Drop what no straggler can reach any more (by the event clock only).

    Nearly every record drops nothing: when no window resets before both floors (the
    earliest reset found in C), the per-window test is not run at all."""
    window_floor = state.event_clock - policy.window_retention
    term_floor = state.event_clock - policy.dedup_horizon
    windows = state.windows
    if windows and min(map(_RESETS_AT, windows)) < max(window_floor, term_floor):
        windows = tuple(
            w
            for w in windows
            if (w.exhaustions and w.exhaustions[-1].end is None)
            or w.resets_at >= (term_floor if w.kind == "period" else window_floor)
        )
    terms = state.terms
    for term in terms[:-1]:
        if term.end < term_floor:
            terms = (*(t for t in terms[:-1] if t.end >= term_floor), terms[-1])
            break
    if len(windows) == len(state.windows) and terms is state.terms:
        return state
    return replace(state, windows=windows, terms=terms)
