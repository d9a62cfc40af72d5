"""Time passing for one account: resets and term ends that fall due, in time order.

Called with the time of each of the account's records (``by_event``) and with ticks. Both
paths run the same code, so a restore is identical whether a tick or the next request
triggered it. Pruning depends only on ``event_clock``, never on ticks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from billing.account import AccountState
from billing.outputs import Emitted, quota_event
from billing.policy import Policy
from billing.routing import publish
from billing.windows import reset_if_due
from schemas.ledger import Unit
from schemas.routing import RoutingReason


def unit_of(state: AccountState) -> Unit:
    return "flows" if state.family == "zenmux" else "usd"


def next_deadline(state: AccountState) -> datetime | None:
    """The next instant at which time alone changes something (a reset, a term's end)."""
    candidates = [w.resets_at for w in state.windows if w.is_exhausted]
    candidates += [t.end for t in state.terms if t.end > state.now]
    return min(candidates, default=None)


def advance(
    state: AccountState, to: datetime, policy: Policy, *, by_event: bool
) -> tuple[AccountState, list[Emitted]]:
    """Apply everything due at or before ``to`` and move the clocks forward."""
    emitted: list[Emitted] = []
    while True:
        due = [w.resets_at for w in state.windows if w.is_exhausted and w.resets_at <= to]
        due += [t.end for t in state.terms if state.now < t.end <= to]
        if not due:
            break
        instant = min(due)
        windows = []
        reset_any = False
        for window in state.windows:
            window, was_reset = reset_if_due(window, instant)
            if was_reset:
                reset_any = True
                emitted.append(
                    quota_event(
                        state.account_id, window, unit_of(state), "restored", "reset", instant
                    )
                )
            windows.append(window)
        state = replace(state, windows=tuple(windows), now=max(state.now, instant))
        ended = [t for t in state.terms if t.end == instant]
        reason: RoutingReason = "period_ended"
        if reset_any:
            reason = "reset"
        elif ended and ended[0].ended_at is not None:
            reason = "canceled"
        state, routes = publish(state, instant, reason)
        emitted += routes
    event_clock = max(state.event_clock, to) if by_event else state.event_clock
    state = replace(state, now=max(state.now, to), event_clock=event_clock)
    return _pruned(state, policy), emitted


def _pruned(state: AccountState, policy: Policy) -> AccountState:
    """Drop what no straggler can reach any more (by the event clock only)."""
    window_floor = state.event_clock - policy.window_retention
    term_floor = state.event_clock - policy.dedup_horizon
    windows = tuple(
        w
        for w in state.windows
        if w.is_exhausted or (w.resets_at >= (term_floor if w.kind == "period" else window_floor))
    )
    terms = state.terms[:-1]
    kept_terms = (*(t for t in terms if t.end >= term_floor), *state.terms[-1:])
    if len(windows) == len(state.windows) and len(kept_terms) == len(state.terms):
        return state
    return replace(state, windows=windows, terms=kept_terms)
