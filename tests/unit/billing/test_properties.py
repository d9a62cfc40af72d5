"""Invariants of the fold over arbitrary logs (hypothesis)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.policy import Policy
from tests.factories import at, discount, lifecycle, request, started
from tests.unit.billing.conftest import run_scenario

MODELS = [
    "openai/gpt-5.2",
    "z-ai/glm-4.7",
    "anthropic/claude-sonnet-4.5",
    "nanobanana/nanobanana-pro",
]
ACCOUNTS = {"acct_z": ("zenmux", "pro", "20"), "acct_l": ("lilac", "basic", "10")}


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A plausible log: both families, out-of-order requests, discounts, lifecycle changes."""
    values: list[dict[str, Any]] = [
        started(acct, family=fam, plan=plan, paid=paid)
        for acct, (fam, plan, paid) in ACCOUNTS.items()
    ]
    n = draw(st.integers(min_value=1, max_value=60))
    for i in range(n):
        kind = draw(st.sampled_from(["req"] * 8 + ["discount", "fallback", "upgrade"]))
        minute = draw(st.integers(min_value=0, max_value=60 * 24 * 3))
        account = draw(st.sampled_from(sorted(ACCOUNTS)))
        if kind == "req":
            values.append(
                request(
                    account,
                    start=at(minute),
                    duration=timedelta(seconds=draw(st.integers(0, 3600))),
                    model=draw(st.sampled_from(MODELS)),
                    input_tokens=draw(st.integers(0, 400_000)),
                    output_tokens=draw(st.integers(0, 200_000)),
                    images=draw(st.integers(0, 2)),
                    mode=draw(st.sampled_from(["subscription"] * 5 + ["payg"])),
                    status=draw(st.sampled_from(["ok", "ok", "ok", "error", "canceled"])),
                    request_id=f"r{i}",
                )
            )
        elif kind == "discount":
            values.append(
                discount(
                    draw(st.sampled_from(MODELS)),
                    draw(st.sampled_from(["low", "medium", "high", "surplus"])),
                    at(minute),
                )
            )
        elif kind == "fallback":
            values.append(
                lifecycle(
                    "fallback_configured",
                    account,
                    when=at(minute),
                    enabled=True,
                    fallback_key_id="kp",
                )
            )
        else:
            values.append(
                lifecycle("upgraded", account, when=at(minute), plan="max", paid_usd="90")
            )
    return values


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dump(values: list[dict[str, Any]]) -> list[str]:
    run = run_scenario(values)
    return [v.model_dump_json() for v in (*run.ledger, *run.quota, *run.routing, *run.dead)]


@PROPERTY
@given(logs())
def test_replaying_the_same_log_twice_gives_identical_output(values: list[dict[str, Any]]) -> None:
    assert dump(values) == dump(values)


@PROPERTY
@given(logs())
def test_subscription_charges_equal_window_debits(values: list[dict[str, Any]]) -> None:
    run = run_scenario(values)
    per_window: dict[str, Decimal] = defaultdict(Decimal)
    for entry in run.ledger:
        assert (entry.debit != 0) <= (entry.funding == "subscription")
        for window in (entry.window_5h_id, entry.window_7d_id, entry.period_id):
            if window is not None and entry.funding == "subscription":
                per_window[window] += entry.debit
    assert run.engine is not None
    for state in run.engine.accounts.values():
        for window in state.windows:
            assert window.consumed == per_window.get(window.window_id, Decimal(0)), window.window_id
    funded = sum((e.debit for e in run.ledger if e.funding == "subscription"), Decimal(0))
    periods = sum(
        (w.consumed for s in run.engine.accounts.values() for w in s.windows if w.kind == "period"),
        Decimal(0),
    )
    assert funded == periods


@PROPERTY
@given(logs())
def test_no_request_is_charged_twice(values: list[dict[str, Any]]) -> None:
    run = run_scenario(values)
    charges = Counter((e.account_id, e.request_id) for e in run.ledger if e.kind == "charge")
    assert all(count == 1 for count in charges.values())
    assert len({e.entry_id for e in run.ledger}) == len(run.ledger)


@PROPERTY
@given(logs(), st.data())
def test_shuffling_duplicates_into_the_log_changes_nothing(
    values: list[dict[str, Any]], data: st.DataObject
) -> None:
    baseline = run_scenario(values)
    noisy = list(values)
    for value in values:
        if "request_id" in value and data.draw(st.booleans()):
            original = next(i for i, v in enumerate(noisy) if v is value)
            position = data.draw(st.integers(min_value=original + 1, max_value=len(noisy)))
            noisy.insert(position, dict(value))
    again = run_scenario(noisy)
    assert [e.model_dump(exclude={"source_offset"}) for e in again.ledger] == [
        e.model_dump(exclude={"source_offset"}) for e in baseline.ledger
    ]
    assert [d.code for d in again.dead] == [d.code for d in baseline.dead]


@PROPERTY
@given(logs(), st.data())
def test_a_fold_that_does_not_tell_conflicts_gives_the_same_ledger_and_windows(
    values: list[dict[str, Any]], data: st.DataObject
) -> None:
    """``Policy.tell_conflicts`` off (the audit's fold) loses only the DLQ's ``conflict``
    code: repeats of request ids, with the same content or another, change nothing else."""
    noisy = list(values)
    for value in values:
        if "request_id" in value and data.draw(st.booleans()):
            repeat = dict(value)
            if data.draw(st.booleans()):  # a conflict: the same id, other usage
                repeat["usage"] = {**value["usage"], "output_tokens": data.draw(st.integers(0, 9))}
            original = next(i for i, v in enumerate(noisy) if v is value)
            noisy.insert(data.draw(st.integers(original + 1, len(noisy))), repeat)
    told = run_scenario(noisy)
    untold = run_scenario(noisy, policy=Policy(tell_conflicts=False))
    assert [e.model_dump() for e in untold.ledger] == [e.model_dump() for e in told.ledger]
    assert untold.quota == told.quota and untold.routing == told.routing
    assert told.engine is not None and untold.engine is not None
    assert untold.engine.accounts == told.engine.accounts
    assert [d.code for d in untold.dead] == [d.code for d in told.dead if d.code != "conflict"]
