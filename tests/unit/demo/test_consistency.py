"""The demo's verdict: ClickHouse against the replay, entry for entry and in total."""

from __future__ import annotations

from decimal import Decimal

from metering.demo.report import compare
from tests.factories import at, request, started
from tests.unit.billing.conftest import run_scenario


def ledger() -> list:  # type: ignore[type-arg]
    return run_scenario(
        [started(), *(request(start=at(n), request_id=f"r{n}") for n in range(3))]
    ).ledger


def test_the_same_entries_match() -> None:
    assert compare(ledger(), ledger()).ok


def test_a_missing_an_extra_and_an_altered_entry_are_each_named() -> None:
    # given the replay's three entries, and a store that lost one and altered another
    replayed = ledger()
    stored = [replayed[0].model_copy(update={"charge_usd": Decimal("9")}), replayed[1]]
    stored.append(run_scenario([started(), request(request_id="zz")]).ledger[0])
    # when compared
    verdict = compare(stored, replayed)
    # then the check fails and says which entry is which
    assert not verdict.ok
    assert verdict.missing == (replayed[2].entry_id,)
    assert verdict.different == (replayed[0].entry_id,)
    assert len(verdict.extra) == 1
