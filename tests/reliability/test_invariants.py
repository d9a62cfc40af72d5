"""The harness's checks find each broken invariant, and find nothing on a faithful copy."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from billing.catalog import load_catalog
from billing.engine import Engine
from billing.source import Source
from reliability import invariants
from reliability.bad_input import BadInput
from schemas import topics
from tests.factories import at, encode, request, started
from tests.unit.billing.conftest import Run, run_scenario

SECRET_REQUEST = {**request("acct_1", start=at(3)), "api_key_id": "sk-live-0123456789abcdef"}


@pytest.fixture(scope="module")
def run() -> Run:
    """acct_1 (ZenMux Pro) exhausts its 5h window; one request carries a secret."""
    heavy = [
        request("acct_1", start=at(i), input_tokens=200_000, output_tokens=40_000)
        for i in range(0, 60, 5)
    ]
    return run_scenario([started("acct_1"), *heavy, SECRET_REQUEST])


def test_a_faithful_copy_has_no_findings(run: Run) -> None:
    assert run.engine is not None
    states = run.engine.accounts
    ledger = invariants.check_ledger(run.ledger, run.ledger, raw_rows=len(run.ledger))
    assert (ledger.lost, ledger.extra, ledger.different, ledger.charged_twice) == ((),) * 4
    assert ledger.duplicate_rows == 0 and ledger.double_charged == 0
    checked, wrong = invariants.check_windows(states, states, run.ledger)
    assert checked >= 3 and wrong == []
    letters = invariants.check_dead_letters(run.dead, run.dead, {})
    assert (letters.missing, letters.extra, letters.different) == ((), (), ())
    assert invariants.check_routes(run.routing, states, at(61)) == {}


def test_a_missing_entry_is_lost_and_an_extra_one_double_charged(run: Run) -> None:
    stored = [*run.ledger[1:], run.ledger[0].model_copy(update={"entry_id": "le_other"})]
    found = invariants.check_ledger(stored, run.ledger, raw_rows=len(stored) + 2)
    assert found.lost == (run.ledger[0].entry_id,) and found.extra == ("le_other",)
    assert found.charged_twice == ()  # the first charge is missing, so the request has one
    assert found.duplicate_rows == 2


def test_a_request_charged_under_two_entry_ids_is_charged_twice(run: Run) -> None:
    twin = run.ledger[0].model_copy(update={"entry_id": "le_twin"})
    found = invariants.check_ledger([*run.ledger, twin], run.ledger, len(run.ledger) + 1)
    assert found.charged_twice == (f"acct_1/{run.ledger[0].request_id}",)
    assert found.double_charged == 2  # the extra entry and the second charge of the request


def test_an_entry_with_other_content_is_different(run: Run) -> None:
    changed = run.ledger[2].model_copy(
        update={"charge_usd": run.ledger[2].charge_usd + Decimal("0.01")}
    )
    found = invariants.check_ledger([*run.ledger[:2], changed, *run.ledger[3:]], run.ledger, 0)
    assert found.different == (changed.entry_id,)


def test_a_window_debited_twice_in_the_worker_table_disagrees_with_the_ledger(run: Run) -> None:
    assert run.engine is not None
    state = run.engine.accounts["acct_1"]
    window = state.windows[0]
    doubled = replace(window, consumed=window.consumed * 2)
    worker = {"acct_1": replace(state, windows=(doubled, *state.windows[1:]))}
    _, wrong = invariants.check_windows(worker, run.engine.accounts, run.ledger)
    assert [(w.window_id, w.worker, w.replay) for w in wrong] == [
        (window.window_id, window.consumed * 2, window.consumed)
    ]
    assert wrong[0].ledger == window.consumed


def test_dead_letters_are_matched_by_position_and_bad_input_by_its_redacted_bytes(
    run: Run,
) -> None:
    (letter,) = run.dead
    assert letter.code == "secret"
    bad = {"secret": [BadInput("secret", topics.REQUESTS, "acct_1", encode(SECRET_REQUEST))]}
    found = invariants.check_dead_letters([letter, letter], run.dead, bad)
    assert found.bad_inputs == {"secret": (1, 1)} and found.different == ()
    moved = letter.model_copy(update={"source_offset": letter.source_offset + 1})
    missing = invariants.check_dead_letters([moved], run.dead, bad)
    assert missing.missing == (invariants._position(letter),)
    assert missing.extra == (invariants._position(moved),)
    nothing = invariants.check_dead_letters([], run.dead, bad)
    assert nothing.bad_inputs_missing == 1


def test_two_copies_of_one_dead_letter_must_be_identical(run: Run) -> None:
    (letter,) = run.dead
    other = letter.model_copy(update={"reason": "something else"})
    found = invariants.check_dead_letters([letter, other], run.dead, {})
    assert found.different == (invariants._position(letter),)


def test_the_last_route_by_seq_is_compared_with_the_replayed_windows(run: Run) -> None:
    assert run.engine is not None
    states = run.engine.accounts
    exhausted = run.routing[-1]
    assert exhausted.route != "subscription"
    stale = list(run.routing[:-1])  # the worker never published the change
    wrong = invariants.check_routes(stale, states, exhausted.at + timedelta(seconds=1))
    assert set(wrong) == {"acct_1"}
    reordered = [run.routing[-1], *run.routing[:-1]]  # read out of order: seq decides
    assert invariants.check_routes(reordered, states, exhausted.at + timedelta(seconds=1)) == {}


def test_dead_letter_bytes_are_capped_and_redacted_like_the_core_does() -> None:
    payload = b'{"key": "sk-live-0123456789abcdef"}' + b" " * 70_000
    engine = Engine(load_catalog(), accounts={}, seen={}, discounts={})
    (letter,) = engine.process(Source(topics.REQUESTS, 0, 0), payload).emitted
    assert letter.value.payload_b64 == invariants.kept_bytes(payload)  # type: ignore[attr-defined]
