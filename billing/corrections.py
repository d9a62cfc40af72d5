"""Corrections: an adjustment gives back part of one charge as a new ledger entry.

The original entry is never touched. A correction of a subscription-funded charge credits
the windows that charge debited; one that brings an exhausted, still-open window back under
its cap restores it. Refused: an unknown entry, or more than what is left of the charge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from billing.account import AccountState
from billing.clock import advance, unit_of
from billing.dedup import Seen, already_applied, fingerprint
from billing.money import ZERO
from billing.outputs import Duplicate, Emitted, Rejection, quota_event, stable_id
from billing.policy import Policy
from billing.routing import publish
from billing.source import Source
from billing.windows import credit
from schemas import topics
from schemas.adjustments import Adjustment
from schemas.ledger import LedgerEntry


@dataclass(frozen=True, slots=True)
class Adjusted:
    state: AccountState
    seen: Seen
    original: Seen
    emitted: list[Emitted]


def adjustment_entry_id(account_id: str, adjustment_id: str) -> str:
    return stable_id("la", account_id, adjustment_id)


def adjust(
    state: AccountState | None,
    prior: Seen | None,
    original: Seen | None,
    adjustment: Adjustment,
    *,
    policy: Policy,
    source: Source,
) -> Adjusted | Rejection | Duplicate:
    entry_id = adjustment_entry_id(adjustment.account_id, adjustment.adjustment_id)
    print_ = fingerprint(adjustment)
    repeat = already_applied(
        prior,
        print_,
        source.position,
        entry_id,
        f"adjustment {adjustment.adjustment_id} reused with different content",
    )
    if repeat is not None:
        return repeat
    ahead = policy.too_far_ahead(source.ingest_time, adjustment.at)
    if ahead is not None:
        return Rejection("future_timestamp", ahead)
    if state is None:
        return Rejection("unknown_account", f"account {adjustment.account_id} has no subscription")
    memo = original.charge if original is not None else None
    if memo is None:
        return Rejection("unknown_entry", f"no charge entry {adjustment.entry_id} for this account")
    remaining = memo.amount - memo.adjusted
    if remaining <= ZERO:
        return Rejection("adjustment_rejected", f"entry {memo.entry_id} is already fully reversed")
    if adjustment.amount > remaining:
        return Rejection(
            "adjustment_rejected",
            f"amount {adjustment.amount} exceeds the {remaining} {memo.unit} left on {memo.entry_id}",
        )
    state, emitted = advance(state, adjustment.at, policy, by_event=True)
    restored = False
    if memo.funding == "subscription":
        windows = []
        for window in state.windows:
            if window.window_id in memo.window_ids:
                window, lifted = credit(window, adjustment.amount, adjustment.at)
                if lifted:
                    restored = True
                    emitted.append(
                        quota_event(
                            state.account_id,
                            window,
                            memo.unit,
                            "restored",
                            "correction",
                            adjustment.at,
                        )
                    )
            windows.append(window)
        state = replace(state, windows=tuple(windows))
    minus = -adjustment.amount
    entry = LedgerEntry(
        schema_version=1,
        entry_id=entry_id,
        kind="adjustment",
        account_id=adjustment.account_id,
        request_id=memo.request_id,
        api_key_id=memo.api_key_id,
        model=memo.model,
        channel=memo.channel,  # type: ignore[arg-type]
        billing_mode=memo.billing_mode,  # type: ignore[arg-type]
        status=memo.status,  # type: ignore[arg-type]
        started_at=memo.started_at,
        completed_at=adjustment.at,
        input_tokens=0,
        cached_input_tokens=0,
        output_tokens=0,
        images=0,
        plan_family=state.family,
        plan=memo.plan,
        funding=memo.funding,
        fallback_key_id=memo.fallback_key_id,
        list_cost_usd=ZERO,
        multiplier=ZERO,
        supply_state=None,
        discount_effective_at=None,
        catalog_version=memo.catalog_version,
        flows=minus if memo.unit == "flows" else ZERO,
        charge_usd=minus if memo.unit == "usd" else ZERO,
        debit=minus if memo.funding == "subscription" else ZERO,
        unit=unit_of(state),
        window_5h_id=memo.window_ids[0],
        window_7d_id=memo.window_ids[1],
        period_id=memo.window_ids[2],
        overshoot=ZERO,
        late=False,
        adjusts_entry_id=memo.entry_id,
        reason=adjustment.reason,
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
    )
    emitted.append(Emitted(topics.LEDGER, adjustment.account_id, entry))
    if restored:
        state, routes = publish(state, state.now, "correction")
        emitted += routes
    assert original is not None
    updated = replace(original, charge=memo._replace(adjusted=memo.adjusted + adjustment.amount))
    return Adjusted(state, Seen(print_, adjustment.at, None, source.position), updated, emitted)
